/* The run's MCP servers: see mcp_tools.h. */
#include "agent/mcp_tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/mcp.h"

#define MCP_SERVERS_MAX 16

struct server {
	struct agent_mcp *m;
	char *name;
	struct mcp_server_config cfg;
	struct mcp_client *client;
	json_t *tools;           /* owned array from tools/list */
	int connected;
};

struct agent_mcp {
	uv_loop_t *loop;
	struct server s[MCP_SERVERS_MAX];
	size_t n;
	size_t pending;          /* servers not yet listed */
	struct err first;
	json_t *offered;         /* owned array for the model */
	agent_mcp_ready_cb ready;
	void *ready_ctx;
	size_t closing;
	void (*closed)(void *ctx);
	void *closed_ctx;
};

static void mcp_one_done(struct agent_mcp *m, const struct err *e)
{
	if (e && !m->first.code)
		m->first = *e;
	if (--m->pending)
		return;
	if (!m->first.code) {
		for (size_t i = 0; i < m->n; i++) {
			size_t k;
			json_t *t;
			json_array_foreach(m->s[i].tools, k, t) {
				const char *tn = json_string_value(json_object_get(t, "name"));
				if (!tn)
					continue;
				char full[256];
				snprintf(full, sizeof(full), "%s__%s", m->s[i].name, tn);
				json_t *schema = json_object_get(t, "inputSchema");
				json_t *d = json_object_get(t, "description");
				json_array_append_new(m->offered,
					json_pack("{s:s,s:s,s:O}", "name", full, "description",
						  json_is_string(d) ? json_string_value(d) : "",
						  "input_schema", json_is_object(schema) ? schema : json_object()));
			}
		}
	}
	m->ready(m->ready_ctx, m->first.code ? &m->first : NULL);
}

static void mcp_on_listed(void *opaque, int rc, json_t *result, const struct err *e)
{
	struct server *s = opaque;
	struct err we = { 0 };
	if (rc < 0) {
		we = *e;
		err_wrap(&we, "listing the tools of MCP server '%s'", s->name);
		mcp_one_done(s->m, &we);
		return;
	}
	s->tools = json_is_array(result) ? json_incref(result) : json_array();
	mcp_one_done(s->m, NULL);
}

static void mcp_on_connected(void *opaque, int rc, const struct err *e)
{
	struct server *s = opaque;
	struct err we = { 0 };
	if (rc < 0) {
		we = *e;
		err_wrap(&we, "connecting MCP server '%s' (hint: `ironclaw mcp list-tools --server %s`)",
			 s->name, s->name);
		mcp_one_done(s->m, &we);
		return;
	}
	s->connected = 1;
	if (mcp_list_all(s->client, "tools", mcp_on_listed, s, &we) < 0) {
		err_wrap(&we, "listing the tools of MCP server '%s'", s->name);
		mcp_one_done(s->m, &we);
	}
}

static void mcp_on_ready_idle(uv_idle_t *h)
{
	/* A run with no servers answers on the next loop turn, never inside start. */
	struct agent_mcp *m = h->data;
	uv_idle_stop(h);
	uv_close((uv_handle_t *)h, (uv_close_cb)free);
	m->ready(m->ready_ctx, NULL);
}

int agent_mcp_start(uv_loop_t *loop, const char *config_path, const char *const *names, size_t n,
		    int all, agent_mcp_ready_cb cb, void *ctx, struct agent_mcp **out, struct err *e)
{
	char **listed = NULL;
	struct agent_mcp *m = calloc(1, sizeof(*m));
	if (!m)
		return err_set(e, -ENOMEM, "out of memory");
	m->loop = loop;
	m->ready = cb;
	m->ready_ctx = ctx;
	m->offered = json_array();
	int rc = 0;
	if (all && config_path && mcp_config_list(config_path, &listed, e) == 0) {
		names = (const char *const *)listed;
		for (n = 0; listed[n]; n++)
			;
	} else if (all) {
		n = 0;   /* no config file: no servers */
		err_clear(e);
	}
	if (n > MCP_SERVERS_MAX) {
		rc = err_set(e, -E2BIG, "%zu MCP servers, at most %d", n, MCP_SERVERS_MAX);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		struct server *s = &m->s[m->n];
		s->m = m;
		if (strchr(names[i], '_') && strstr(names[i], "__")) {
			rc = err_set(e, -EINVAL, "MCP server name '%s' contains '__', which separates server and tool", names[i]);
			goto fail;
		}
		if (!(s->name = strdup(names[i]))) {
			rc = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
		if ((rc = mcp_config_load(config_path, names[i], &s->cfg, e)) < 0)
			goto fail;
		m->n++;
		if ((rc = mcp_client_new(loop, &s->cfg, NULL, &s->client, e)) < 0)
			goto fail;
	}
	m->pending = m->n;
	for (size_t i = 0; i < m->n; i++) {
		if ((rc = mcp_client_connect(m->s[i].client, mcp_on_connected, &m->s[i], e)) < 0) {
			/* The others may already be connecting: report through cb. */
			struct err we = *e;
			err_wrap(&we, "connecting MCP server '%s'", m->s[i].name);
			mcp_one_done(m, &we);
		}
	}
	if (!m->n) {
		uv_idle_t *idle = malloc(sizeof(*idle));
		if (!idle) {
			rc = err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
		uv_idle_init(loop, idle);
		idle->data = m;
		uv_idle_start(idle, mcp_on_ready_idle);
	}
	mcp_strv_free(listed);
	*out = m;
	return 0;
fail:
	mcp_strv_free(listed);
	for (size_t i = 0; i < MCP_SERVERS_MAX; i++) {
		if (m->s[i].client)
			mcp_client_close(m->s[i].client, NULL, NULL);
		if (m->s[i].name)
			mcp_server_config_free(&m->s[i].cfg);
		free(m->s[i].name);
	}
	json_decref(m->offered);
	free(m);
	return rc;
}

json_t *agent_mcp_tools(struct agent_mcp *m)
{
	return m->offered;
}

static struct server *mcp_split(struct agent_mcp *m, const char *name, const char **tool)
{
	const char *sep = strstr(name, "__");
	if (!sep)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->s[i].name) == (size_t)(sep - name) && !strncmp(m->s[i].name, name, (size_t)(sep - name))) {
			*tool = sep + 2;
			return &m->s[i];
		}
	return NULL;
}

const json_t *agent_mcp_tool_entry(struct agent_mcp *m, const char *name)
{
	const char *tool;
	struct server *s = mcp_split(m, name, &tool);
	if (!s)
		return NULL;
	size_t k;
	json_t *t;
	json_array_foreach(s->tools, k, t) {
		const char *tn = json_string_value(json_object_get(t, "name"));
		if (tn && !strcmp(tn, tool))
			return t;
	}
	return NULL;
}

struct mcp_call_ctx {
	agent_mcp_result_cb cb;
	void *ctx;
};

/* The result's content as text for the model: text blocks as they are, other
 * blocks described, structured content as JSON. */
static char *mcp_result_text(json_t *result)
{
	json_t *content = json_object_get(result, "content");
	size_t cap = AGENT_MCP_RESULT_MAX, len = 0;
	char *out = malloc(cap + 1);
	if (!out)
		return NULL;
	size_t k;
	json_t *c;
	json_array_foreach(content, k, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		char *piece = NULL;
		if (type && !strcmp(type, "text")) {
			const char *t = json_string_value(json_object_get(c, "text"));
			piece = strdup(t ? t : "");
		} else if (type && (!strcmp(type, "image") || !strcmp(type, "audio"))) {
			const char *mt = json_string_value(json_object_get(c, "mimeType"));
			if (asprintf(&piece, "[%s content, %s]", type, mt ? mt : "unknown type") < 0)
				piece = NULL;
		} else {
			piece = json_dumps(c, JSON_COMPACT);
		}
		if (piece) {
			size_t n = strlen(piece);
			if (len && len < cap)
				out[len++] = '\n';
			size_t take = n < cap - len ? n : cap - len;
			memcpy(out + len, piece, take);
			len += take;
			free(piece);
		}
	}
	if (!len) {
		json_t *sc = json_object_get(result, "structuredContent");
		char *j = sc ? json_dumps(sc, JSON_COMPACT) : NULL;
		if (j) {
			size_t n = strlen(j) < cap ? strlen(j) : cap;
			memcpy(out, j, n);
			len = n;
			free(j);
		}
	}
	out[len] = '\0';
	return out;
}

static void mcp_on_called(void *opaque, int rc, json_t *result, const struct err *e)
{
	struct mcp_call_ctx *cc = opaque;
	if (rc < 0) {
		char *msg = NULL;
		if (asprintf(&msg, "the MCP call failed: %s", e ? e->msg : strerror(-rc)) < 0)
			msg = NULL;
		cc->cb(cc->ctx, 1, msg ? msg : "the MCP call failed");
		free(msg);
	} else {
		char *text = mcp_result_text(result);
		cc->cb(cc->ctx, mcp_result_is_error(result), text ? text : "(no content)");
		free(text);
	}
	free(cc);
}

struct mcp_deferred {
	uv_idle_t idle;
	agent_mcp_result_cb cb;
	void *ctx;
	char *text;
};

static void mcp_deferred_closed(uv_handle_t *h)
{
	struct mcp_deferred *d = h->data;
	free(d->text);
	free(d);
}

static void mcp_deferred_fire(uv_idle_t *h)
{
	struct mcp_deferred *d = h->data;
	uv_idle_stop(h);
	d->cb(d->ctx, 1, d->text ? d->text : "the MCP call could not start");
	uv_close((uv_handle_t *)h, mcp_deferred_closed);
}

/* An error before the call went out: still reported from the loop, not inside
 * agent_mcp_call, as promised. */
static void mcp_defer_error(struct agent_mcp *m, agent_mcp_result_cb cb, void *ctx, char *text)
{
	struct mcp_deferred *d = calloc(1, sizeof(*d));
	if (!d) {
		cb(ctx, 1, text ? text : "out of memory");
		free(text);
		return;
	}
	d->cb = cb;
	d->ctx = ctx;
	d->text = text;
	uv_idle_init(m->loop, &d->idle);
	d->idle.data = d;
	uv_idle_start(&d->idle, mcp_deferred_fire);
}

void agent_mcp_call(struct agent_mcp *m, const char *name, json_t *args, agent_mcp_result_cb cb,
		    void *ctx)
{
	const char *tool;
	struct server *s = mcp_split(m, name, &tool);
	char *msg = NULL;
	if (!s) {
		if (asprintf(&msg, "unknown tool '%.100s'", name) < 0)
			msg = NULL;
		mcp_defer_error(m, cb, ctx, msg);
		return;
	}
	struct mcp_call_ctx *cc = calloc(1, sizeof(*cc));
	struct err e = { 0 };
	if (!cc) {
		mcp_defer_error(m, cb, ctx, strdup("out of memory"));
		return;
	}
	cc->cb = cb;
	cc->ctx = ctx;
	if (mcp_call_tool(s->client, tool, json_deep_copy(args), mcp_on_called, cc, &e) < 0) {
		free(cc);
		if (asprintf(&msg, "the MCP call failed: %s", e.msg) < 0)
			msg = NULL;
		mcp_defer_error(m, cb, ctx, msg);
	}
}

static void mcp_on_client_closed(void *opaque)
{
	struct agent_mcp *m = opaque;
	if (--m->closing)
		return;
	for (size_t i = 0; i < m->n; i++) {
		json_decref(m->s[i].tools);
		mcp_server_config_free(&m->s[i].cfg);
		free(m->s[i].name);
	}
	json_decref(m->offered);
	void (*done)(void *) = m->closed;
	void *ctx = m->closed_ctx;
	free(m);
	if (done)
		done(ctx);
}

void agent_mcp_close(struct agent_mcp *m, void (*done)(void *ctx), void *ctx)
{
	m->closed = done;
	m->closed_ctx = ctx;
	m->closing = m->n + 1;
	for (size_t i = 0; i < m->n; i++)
		mcp_client_close(m->s[i].client, mcp_on_client_closed, m);
	mcp_on_client_closed(m);
}
