/* MCP operations on top of the session: listing with pagination, tool calls,
 * resources and prompts, each asynchronous like mcp_client_request().
 *
 * Lists follow nextCursor until the server stops giving one, with a page limit
 * and a check that a cursor never repeats, so a server cannot keep us paging
 * forever. tools/call goes out exactly once: a failure is reported, never
 * retried, since the tool may have had effects. Each result's shape is checked
 * before the caller sees it.
 *
 * Tools: a listing keeps only well-formed definitions (tooldefs.c; a skipped
 * one is a warning) and the client remembers them, for the Mcp-Param-*
 * headers of a later tools/call and to refuse calling a skipped tool. A list
 * result's ttlMs (2026-07-28) is honoured: within it, listing the tools again
 * returns the remembered list without asking the server (cacheScope only says
 * who else may share a cache; ours belongs to one client, which suits both
 * "private" and "shared"); notifications/tools/list_changed ends it early.
 * Over 2026-07-28 HTTP a tools/call of a tool the client has not listed yet
 * lists the tools first, so its header-mirrored parameters are known. */
#include "mcp/client_int.h"
#include "mcp/mcp.h"
#include "mcp/tooldefs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- pagination ---- */

struct list_op {
	struct mcp_client *c;
	char method[64];
	char key[32];
	json_t *all;
	json_t *seen;             /* cursors already followed */
	int page;
	long ttl_ms;              /* the first page's ttlMs, -1 when absent */
	mcp_result_cb cb;
	void *opaque;
};

static void list_op_free(struct list_op *op)
{
	json_decref(op->all);
	json_decref(op->seen);
	free(op);
}

static void list_on_page(void *opaque, int rc, json_t *res, const struct err *e);

static int list_next(struct list_op *op, const char *cursor, struct err *e)
{
	if (++op->page > MCP_PAGES_MAX)
		return err_set(e, -E2BIG, "%s: more than %d pages; giving up", op->method,
			       MCP_PAGES_MAX);
	json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
	return mcp_client_request(op->c, op->method, params, 0, 0, list_on_page, op, NULL, e);
}

static void list_end(struct list_op *op, int rc, const struct err *e)
{
	if (rc == 0 && !strcmp(op->key, "tools")) {
		json_t *kept = mcp_tooldefs_filter(op->c->cfg->name, op->all);
		json_t *skipped = json_object();
		size_t i;
		json_t *t;
		json_array_foreach(op->all, i, t) {
			char why[256];
			const char *name = json_string_value(json_object_get(t, "name"));
			if (name && mcp_tooldef_check(t, why, sizeof(why)) < 0)
				json_object_set_new(skipped, name, json_string(why));
		}
		if (kept) {
			json_decref(op->all);
			op->all = kept;
			mcp_client_set_tools(op->c, kept, skipped, op->ttl_ms);
		}
		json_decref(skipped);
	}
	op->cb(op->opaque, rc, rc < 0 ? NULL : op->all, e);
	list_op_free(op);
}

static void list_on_page(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct list_op *op = opaque;
	struct err le = { 0 };
	if (rc < 0) {
		list_end(op, rc, e);
		return;
	}
	json_t *arr = json_object_get(res, op->key);
	if (!json_is_array(arr)) {
		rc = err_set(&le, -EPROTO, "%s: the result has no \"%s\" array", op->method, op->key);
		list_end(op, rc, &le);
		return;
	}
	json_array_extend(op->all, arr);
	json_t *ttl = json_object_get(res, "ttlMs");
	if (op->page == 1)
		op->ttl_ms = json_is_integer(ttl) && json_integer_value(ttl) > 0 ?
			(long)(json_integer_value(ttl) > 86400000 ? 86400000 :
			       json_integer_value(ttl)) : -1;
	json_t *next = json_object_get(res, "nextCursor");
	if (!json_is_string(next)) {
		list_end(op, 0, NULL);
		return;
	}
	const char *n = json_string_value(next);
	if (json_object_get(op->seen, n)) {
		rc = err_set(&le, -ELOOP, "%s: the server repeated cursor '%.64s'", op->method, n);
		list_end(op, rc, &le);
		return;
	}
	json_object_set_new(op->seen, n, json_true());
	if ((rc = list_next(op, n, &le)) < 0)
		list_end(op, rc, &le);
}

/* A fresh remembered tool list answers on the next loop turn (a completion
 * never fires inside the call that started it). */
struct cached_list {
	uv_idle_t idle;
	json_t *items;
	mcp_result_cb cb;
	void *opaque;
};

static void cached_closed(uv_handle_t *h)
{
	struct cached_list *cl = h->data;
	json_decref(cl->items);
	free(cl);
}

static void cached_on_idle(uv_idle_t *h)
{
	struct cached_list *cl = h->data;
	uv_idle_stop(h);
	cl->cb(cl->opaque, 0, cl->items, NULL);
	uv_close((uv_handle_t *)h, cached_closed);
}

static int list_from_cache(struct mcp_client *c, mcp_result_cb cb, void *opaque)
{
	if (!c->tools || c->tools_fresh_until == 0 || uv_now(c->loop) >= c->tools_fresh_until)
		return 0;
	struct cached_list *cl = calloc(1, sizeof(*cl));
	if (!cl || !(cl->items = json_array())) {
		free(cl);
		return 0;
	}
	const char *k;
	json_t *t;
	json_object_foreach(c->tools, k, t)
		json_array_append(cl->items, t);
	cl->cb = cb;
	cl->opaque = opaque;
	uv_idle_init(c->loop, &cl->idle);
	cl->idle.data = cl;
	uv_idle_start(&cl->idle, cached_on_idle);
	return 1;
}

int mcp_list_all(struct mcp_client *c, const char *what, mcp_result_cb cb, void *opaque,
		 struct err *e)
{
	if (!strcmp(what, "tools") && list_from_cache(c, cb, opaque))
		return 0;
	struct list_op *op = calloc(1, sizeof(*op));
	if (!op)
		return err_set(e, -ENOMEM, "out of memory");
	op->c = c;
	op->cb = cb;
	op->opaque = opaque;
	snprintf(op->key, sizeof(op->key), "%s", what);
	if (!strcmp(what, "resourceTemplates"))
		snprintf(op->method, sizeof(op->method), "resources/templates/list");
	else
		snprintf(op->method, sizeof(op->method), "%s/list", what);
	op->all = json_array();
	op->seen = json_object();
	int rc = op->all && op->seen ? list_next(op, NULL, e) : err_set(e, -ENOMEM, "out of memory");
	if (rc < 0)
		list_op_free(op);
	return rc;
}

/* ---- single requests with a checked result ---- */

enum shape { SHAPE_TOOL, SHAPE_RESOURCE, SHAPE_PROMPT };

struct one_op {
	enum shape shape;
	char what[256];           /* tool, URI or prompt: for messages */
	mcp_result_cb cb;
	void *opaque;
};

static int one_shape_ok(enum shape s, json_t *res)
{
	switch (s) {
	case SHAPE_TOOL:
		return json_is_object(res) && (json_is_array(json_object_get(res, "content")) ||
					       json_object_get(res, "structuredContent"));
	case SHAPE_RESOURCE:
		return json_is_array(json_object_get(res, "contents"));
	case SHAPE_PROMPT:
		return json_is_array(json_object_get(res, "messages"));
	}
	return 0;
}

static void one_on_result(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct one_op *op = opaque;
	static const char *const ctx[] = { "calling tool", "reading resource", "getting prompt" };
	static const char *const field[] = { "content", "contents", "messages" };
	struct err oe = { 0 };
	if (rc < 0) {
		oe = *e;
		err_wrap(&oe, "%s '%s'", ctx[op->shape], op->what);
	} else if (!one_shape_ok(op->shape, res)) {
		rc = err_set(&oe, -EPROTO, "%s '%s': the result has no \"%s\"", ctx[op->shape],
			     op->what, field[op->shape]);
	}
	op->cb(op->opaque, rc, rc < 0 ? NULL : res, &oe);
	free(op);
}

static int one_start(struct mcp_client *c, enum shape shape, const char *what,
		     const char *method, json_t *params, json_t *headers, int flags,
		     mcp_result_cb cb, void *opaque, struct err *e)
{
	struct one_op *op = calloc(1, sizeof(*op));
	if (!op) {
		json_decref(headers);
		json_decref(params);
		return err_set(e, -ENOMEM, "out of memory");
	}
	op->shape = shape;
	snprintf(op->what, sizeof(op->what), "%s", what);
	op->cb = cb;
	op->opaque = opaque;
	int rc = mcp_call_start(c, method, params, headers, 0, flags, one_on_result, op, NULL, e);
	if (rc < 0)
		free(op);
	return rc;
}

/* The call itself, once the tool's definition is known (or need not be). */
static int tool_call_now(struct mcp_client *c, const char *tool, json_t *args,
			 mcp_result_cb cb, void *opaque, struct err *e)
{
	json_t *why = json_object_get(c->tools_skipped, tool);
	if (why) {
		json_decref(args);
		return err_set(e, -EINVAL, "tool '%s' was skipped because its definition is "
			       "malformed (%s); ask the server's maintainers to fix it", tool,
			       json_string_value(why));
	}
	json_t *def = json_object_get(c->tools, tool);
	json_t *headers = def && c->cfg->kind == MCP_HTTP ?
		mcp_tooldef_param_headers(def, args) : NULL;
	json_t *params = json_pack("{s:s,s:o}", "name", tool, "arguments",
				   args ? args : json_object());
	/* A progress token only when someone listens: servers do real work for it
	 * (measured: about 150 us per call on server-everything). */
	return one_start(c, SHAPE_TOOL, tool, "tools/call", params, headers,
			 mcp_client_wants_progress(c) ? MCP_CALL_PROGRESS : 0, cb, opaque, e);
}

struct tool_after_list {
	struct mcp_client *c;
	char tool[256];
	json_t *args;
	mcp_result_cb cb;
	void *opaque;
};

static void tool_on_listed(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct tool_after_list *t = opaque;
	struct err ce = { 0 };
	(void)res;
	if (rc < 0) {
		ce = *e;
		err_wrap(&ce, "calling tool '%s' (listing the tools first)", t->tool);
		json_decref(t->args);
	} else if ((rc = tool_call_now(t->c, t->tool, t->args, t->cb, t->opaque, &ce)) < 0) {
		err_wrap(&ce, "calling tool '%s'", t->tool);
	}
	if (rc < 0)
		t->cb(t->opaque, rc, NULL, &ce);
	free(t);
}

int mcp_call_tool(struct mcp_client *c, const char *tool, json_t *args, mcp_result_cb cb,
		  void *opaque, struct err *e)
{
	if (args && !json_is_object(args)) {
		json_decref(args);
		return err_set(e, -EINVAL, "tool arguments must be a JSON object");
	}
	if (c->modern && c->cfg->kind == MCP_HTTP && strlen(tool) < 256 &&
	    !json_object_get(c->tools, tool) && !json_object_get(c->tools_skipped, tool)) {
		struct tool_after_list *t = calloc(1, sizeof(*t));
		if (!t) {
			json_decref(args);
			return err_set(e, -ENOMEM, "out of memory");
		}
		t->c = c;
		snprintf(t->tool, sizeof(t->tool), "%s", tool);
		t->args = args;
		t->cb = cb;
		t->opaque = opaque;
		int rc = mcp_list_all(c, "tools", tool_on_listed, t, e);
		if (rc < 0) {
			json_decref(args);
			free(t);
			return err_wrap(e, "calling tool '%s' (listing the tools first)", tool);
		}
		return 0;
	}
	int rc = tool_call_now(c, tool, args, cb, opaque, e);
	return rc < 0 ? err_wrap(e, "calling tool '%s'", tool) : 0;
}

int mcp_read_resource(struct mcp_client *c, const char *uri, mcp_result_cb cb, void *opaque,
		      struct err *e)
{
	int rc = one_start(c, SHAPE_RESOURCE, uri, "resources/read",
			   json_pack("{s:s}", "uri", uri), NULL, 0, cb, opaque, e);
	return rc < 0 ? err_wrap(e, "reading resource '%s'", uri) : 0;
}

int mcp_get_prompt(struct mcp_client *c, const char *name, json_t *args, mcp_result_cb cb,
		   void *opaque, struct err *e)
{
	json_t *params = json_pack("{s:s}", "name", name);
	if (args)
		json_object_set_new(params, "arguments", args);
	int rc = one_start(c, SHAPE_PROMPT, name, "prompts/get", params, NULL, 0, cb, opaque, e);
	return rc < 0 ? err_wrap(e, "getting prompt '%s'", name) : 0;
}

int mcp_result_is_error(json_t *result)
{
	return json_is_true(json_object_get(result, "isError"));
}
