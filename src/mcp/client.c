/* MCP session: requests and their responses, server-to-client requests,
 * notifications, timeouts, and the opening handshake of each protocol era.
 *
 * Our request ids are integers from 1 and every response is matched by id, so
 * replies may arrive in any order. The server's requests to us carry their own
 * ids (any integer, including 0, or a string) and are answered with that id
 * verbatim. When a request times out we send notifications/cancelled and
 * remember its id, so its late response and late progress are dropped, counted,
 * and never mistaken for another call's. A session that the server ended (HTTP
 * 404) is re-initialized once; the request is then re-sent, except tools/call,
 * which is never retried because it may not be idempotent.
 *
 * Everything is a state machine on the caller's loop: the handshake, a
 * re-initialization, and close (drain, fail the rest, close the transport,
 * then free once every handle is closed) all advance from callbacks.
 *
 * Eras: we first try the stateless 2026-07-28 era (server/discover with the
 * per-request _meta envelope). Any error that is not a modern answer, or a
 * timeout, falls back to initialize + notifications/initialized, offering
 * 2025-11-25 and accepting any revision back to 2024-11-05. */
#include "mcp/mcp.h"
#include "mcp/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define CLIENT_NAME "ironclaw"
#define CLIENT_VERSION "0.1.0"
#define DISCOVER_TIMEOUT_MS 5000
#define CANCELLED_RING 64
#define CLOSE_DRAIN_MS 2000

static const char *const legacy_versions[] = {
	"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", NULL,
};

struct mcp_call {
	struct mcp_client *c;
	struct mcp_call *next;
	long long id;
	char method[64];
	json_t *msg;              /* owned: the request as sent (for a re-send) */
	mcp_result_cb cb;
	void *opaque;
	int with_progress;
	int no_reinit;            /* the handshake's own calls: a stale session just fails */
	int waiting_reinit;       /* the server ended the session; waiting for a new one */
	int no_cancel;            /* don't announce a timeout (the discover probe) */
	long timeout_ms;
	unsigned long dropped_at_start;
	uv_timer_t timer;
};

struct mcp_responder {
	struct mcp_client *c;     /* NULL once the client is gone: the answer is dropped */
	struct mcp_responder *next;
	json_t *id;               /* owned: the server's id, echoed verbatim */
};

enum client_stage { ST_OPEN, ST_DRAINING, ST_CLOSING };

struct mcp_client {
	const struct mcp_server_config *cfg;
	struct mcp_events ev;
	uv_loop_t *loop;
	int owns_loop;
	struct mcp_transport *tp;
	long long next_id;
	struct mcp_call *calls;
	struct mcp_responder *responders;
	char version[32];
	int modern;
	int connected;
	json_t *server_info;
	json_t *server_caps;
	json_t *roots;            /* [{uri, name}] or NULL when none are configured */
	int roots_declared;       /* the roots capability went out at connect */
	int dead;
	struct err dead_err;
	long long cancelled[CANCELLED_RING];
	unsigned cancelled_next;
	unsigned long dropped;
	/* handshake in progress: where it goes when done */
	int hs_active;
	void (*hs_next)(struct mcp_client *c, int rc, const struct err *e);
	mcp_done_cb connect_cb;
	void *connect_opaque;
	/* close */
	enum client_stage stage;
	uv_timer_t drain;
	int handles;              /* drain timer + call timers + transport, until closed */
	void (*close_done)(void *opaque);
	void *close_opaque;
};

/* ---- helpers ---- */

static json_t *client_capabilities(struct mcp_client *c)
{
	json_t *caps = json_object();
	if (c->roots)
		json_object_set_new(caps, "roots", json_pack("{s:b}", "listChanged", 1));
	if (c->ev.on_request) {
		json_object_set_new(caps, "sampling", json_object());
		json_object_set_new(caps, "elicitation", json_object());
	}
	return caps;
}

static json_t *client_info(void)
{
	return json_pack("{s:s,s:s}", "name", CLIENT_NAME, "version", CLIENT_VERSION);
}

/* The 2026-07-28 per-request envelope, merged into params._meta. */
static void client_add_envelope(struct mcp_client *c, json_t *params)
{
	json_t *meta = json_object_get(params, "_meta");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(params, "_meta", meta);
	}
	json_object_set_new(meta, "io.modelcontextprotocol/protocolVersion",
			    json_string(MCP_VERSION_MODERN));
	json_object_set_new(meta, "io.modelcontextprotocol/clientInfo", client_info());
	json_object_set_new(meta, "io.modelcontextprotocol/clientCapabilities",
			    client_capabilities(c));
}

static int client_send(struct mcp_client *c, json_t *msg, struct err *e)
{
	if (c->dead)
		return err_set(e, c->dead_err.code, "%s", c->dead_err.msg);
	if (!c->tp || c->stage == ST_CLOSING)
		return err_set(e, -ENOTCONN, "server '%s': not connected", c->cfg->name);
	return c->tp->ops->send(c->tp, msg, e);
}

static struct mcp_call *client_find(struct mcp_client *c, json_t *id)
{
	if (!json_is_integer(id))
		return NULL;
	long long v = json_integer_value(id);
	for (struct mcp_call *k = c->calls; k; k = k->next)
		if (k->id == v && !k->waiting_reinit)
			return k;
	return NULL;
}

static int client_was_cancelled(struct mcp_client *c, json_t *id)
{
	if (!json_is_integer(id))
		return 0;
	for (unsigned i = 0; i < CANCELLED_RING; i++)
		if (c->cancelled[i] == json_integer_value(id))
			return 1;
	return 0;
}

/* ---- lifetime of handles ---- */

static void client_free(struct mcp_client *c)
{
	void (*done)(void *) = c->close_done;
	void *op = c->close_opaque;
	for (struct mcp_responder *r = c->responders; r; r = r->next)
		r->c = NULL;
	json_decref(c->server_info);
	json_decref(c->server_caps);
	json_decref(c->roots);
	free(c);
	if (done)
		done(op);
}

static void client_handle_gone(struct mcp_client *c)
{
	if (--c->handles == 0 && c->stage == ST_CLOSING)
		client_free(c);
}

static void call_timer_closed(uv_handle_t *h)
{
	struct mcp_call *k = h->data;
	struct mcp_client *c = k->c;
	json_decref(k->msg);
	free(k);
	client_handle_gone(c);
}

static void client_maybe_drained(struct mcp_client *c);

/* Ends k: unlinks it, reports to its owner, releases it. */
static void call_finish(struct mcp_call *k, int rc, json_t *result, const struct err *e)
{
	struct mcp_client *c = k->c;
	for (struct mcp_call **pp = &c->calls; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	uv_timer_stop(&k->timer);
	struct err fallback = { 0 };
	if (rc < 0 && (!e || !e->msg[0])) {
		err_set(&fallback, rc, "%s failed", k->method);
		e = &fallback;
	}
	if (k->cb)
		k->cb(k->opaque, rc, rc < 0 ? NULL : result, e);
	uv_close((uv_handle_t *)&k->timer, call_timer_closed);
	client_maybe_drained(c);
}

/* ---- server-to-client requests ---- */

/* Answers a server request; result (may be NULL: an error) is stolen. */
static void client_reply(struct mcp_client *c, json_t *id, json_t *result, int code,
			 const char *message)
{
	json_t *msg = result ?
		json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result) :
		json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code", code,
			  "message", message ? message : "error");
	if (!msg)
		return;
	struct err e = { 0 };
	if (client_send(c, msg, &e) < 0)
		log_warn("mcp: answering the server failed: %s", e.msg);
	json_decref(msg);
}

static void responder_done(struct mcp_responder *r, json_t *result, int code, const char *message)
{
	struct mcp_client *c = r->c;
	if (c) {
		for (struct mcp_responder **pp = &c->responders; *pp; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		if (c->stage != ST_CLOSING && !c->dead) {
			client_reply(c, r->id, result, code, message);   /* steals result */
			result = NULL;
		}
	}
	json_decref(result);
	json_decref(r->id);
	free(r);
}

void mcp_respond(struct mcp_responder *r, json_t *result)
{
	if (!result)
		responder_done(r, NULL, -32603, "the client could not handle the request");
	else
		responder_done(r, result, 0, NULL);
}

void mcp_respond_error(struct mcp_responder *r, int code, const char *message)
{
	responder_done(r, NULL, code, message);
}

static void client_on_server_request(struct mcp_client *c, struct mcp_msg *m)
{
	if (!strcmp(m->method, "ping")) {
		client_reply(c, m->id, json_object(), 0, NULL);
	} else if (!strcmp(m->method, "roots/list") && c->roots) {
		client_reply(c, m->id, json_pack("{s:O}", "roots", c->roots), 0, NULL);
	} else if (c->ev.on_request && (!strcmp(m->method, "sampling/createMessage") ||
					 !strcmp(m->method, "elicitation/create"))) {
		struct mcp_responder *r = calloc(1, sizeof(*r));
		if (!r) {
			client_reply(c, m->id, NULL, -32603, "out of memory");
			return;
		}
		r->c = c;
		r->id = json_incref(m->id);
		r->next = c->responders;
		c->responders = r;
		c->ev.on_request(c->ev.opaque, r, m->method, m->params);
	} else {
		client_reply(c, m->id, NULL, -32601, "Method not found");
	}
}

/* ---- notifications and responses ---- */

static void client_on_progress(struct mcp_client *c, json_t *params)
{
	json_t *token = json_object_get(params, "progressToken");
	struct mcp_call *k = client_find(c, token);
	if (!k || !k->with_progress) {
		if (client_was_cancelled(c, token))
			c->dropped++;
		log_debug("mcp: progress for no pending call, dropped");
		return;
	}
	json_t *p = json_object_get(params, "progress");
	json_t *t = json_object_get(params, "total");
	json_t *msg = json_object_get(params, "message");
	if (!json_is_number(p))
		return;
	if (c->ev.on_progress)
		c->ev.on_progress(c->ev.opaque, k, json_number_value(p),
				  json_is_number(t) ? json_number_value(t) : -1,
				  json_is_string(msg) ? json_string_value(msg) : NULL);
}

static void client_on_notification(struct mcp_client *c, struct mcp_msg *m)
{
	const char *meth = m->method;
	size_t n = strlen(meth);
	static const char lc[] = "/list_changed";
	if (!strcmp(meth, "notifications/progress")) {
		client_on_progress(c, m->params);
	} else if (!strcmp(meth, "notifications/message")) {
		json_t *lvl = json_object_get(m->params, "level");
		const char *level = json_is_string(lvl) ? json_string_value(lvl) : "info";
		json_t *data = json_object_get(m->params, "data");
		if (c->ev.on_log) {
			c->ev.on_log(c->ev.opaque, level, data);
		} else if (log_enabled(LOG_INFO)) {
			char *s = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
			log_info("mcp: server '%s' [%s] %s", c->cfg->name, level, s ? s : "");
			free(s);
		}
	} else if (n > sizeof(lc) - 1 && !strcmp(meth + n - (sizeof(lc) - 1), lc) &&
		   !strncmp(meth, "notifications/", 14)) {
		char what[32];
		size_t wl = n - 14 - (sizeof(lc) - 1);
		if (wl >= sizeof(what))
			wl = sizeof(what) - 1;
		memcpy(what, meth + 14, wl);
		what[wl] = '\0';
		if (c->ev.on_list_changed)
			c->ev.on_list_changed(c->ev.opaque, what);
		log_info("mcp: server '%s' says its %s changed", c->cfg->name, what);
	} else {
		log_debug("mcp: ignoring notification %s", meth);
	}
}

static void client_on_response(struct mcp_client *c, struct mcp_msg *m)
{
	struct mcp_call *k = client_find(c, m->id);
	if (!k) {
		if (client_was_cancelled(c, m->id)) {
			c->dropped++;
			log_debug("mcp: late response to a cancelled request, dropped");
		} else {
			log_warn("mcp: server '%s' answered an id we did not send; ignored",
				 c->cfg->name);
		}
		return;
	}
	if (m->error) {
		json_t *msg = json_object_get(m->error, "message");
		struct err e = { 0 };
		err_set(&e, -EPROTO, "server error %lld on %s: %s",
			(long long)json_integer_value(json_object_get(m->error, "code")), k->method,
			json_is_string(msg) ? json_string_value(msg) : "(no message)");
		call_finish(k, -EPROTO, NULL, &e);
		return;
	}
	call_finish(k, 0, m->result, NULL);
}

static void client_on_message(void *opaque, json_t *msg)
{
	struct mcp_client *c = opaque;
	struct mcp_msg m;
	struct err e = { 0 };
	if (mcp_msg_classify(msg, &m, &e) < 0) {
		log_warn("mcp: server '%s' sent an invalid message, skipped: %s", c->cfg->name,
			 e.msg);
		return;
	}
	switch (m.kind) {
	case MCP_MSG_REQUEST:
		client_on_server_request(c, &m);
		break;
	case MCP_MSG_NOTIFICATION:
		client_on_notification(c, &m);
		break;
	case MCP_MSG_RESPONSE:
		client_on_response(c, &m);
		break;
	}
}

static void client_reinit(struct mcp_client *c, struct mcp_call *k);

static void client_on_failure(void *opaque, json_t *id, const struct err *e)
{
	struct mcp_client *c = opaque;
	if (!id) {
		c->dead = 1;
		c->dead_err = *e;
		/* Fail every pending call; a callback may start (failing) new ones. */
		while (c->calls)
			call_finish(c->calls, e->code, NULL, e);
		return;
	}
	struct mcp_call *k = client_find(c, id);
	if (!k)
		return;
	if (e->code == -ESTALE && !k->no_reinit)
		client_reinit(c, k);
	else
		call_finish(k, e->code, NULL, e);
}

/* ---- calls ---- */

static void call_on_timeout(uv_timer_t *t)
{
	struct mcp_call *k = t->data;
	struct mcp_client *c = k->c;
	c->cancelled[c->cancelled_next++ % CANCELLED_RING] = k->id;
	if (!k->no_cancel && !c->dead && !k->waiting_reinit) {
		char reason[96];
		snprintf(reason, sizeof(reason), "timed out after %ld ms", k->timeout_ms);
		json_t *params = json_pack("{s:I,s:s}", "requestId", (json_int_t)k->id, "reason", reason);
		if (c->modern)
			client_add_envelope(c, params);
		json_t *n = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method",
				      "notifications/cancelled", "params", params);
		struct err se = { 0 };
		if (n && client_send(c, n, &se) < 0)
			log_debug("mcp: could not send the cancellation: %s", se.msg);
		json_decref(n);
	}
	struct err e = { 0 };
	unsigned long over = c->tp ? c->tp->ops->dropped(c->tp) - k->dropped_at_start : 0;
	if (over)
		err_set(&e, -ETIMEDOUT, "%s timed out after %ld ms; meanwhile the server sent %lu "
			"message line(s) over the %zu-byte cap, which were dropped (hint: raise "
			"\"maxLineBytes\")", k->method, k->timeout_ms, over, c->cfg->line_max ?
			c->cfg->line_max : (size_t)MCP_LINE_MAX_DEFAULT);
	else
		err_set(&e, -ETIMEDOUT, "%s timed out after %ld ms (the request was cancelled; "
			"hint: raise \"timeoutMs\")", k->method, k->timeout_ms);
	call_finish(k, -ETIMEDOUT, NULL, &e);
}

/* (Re)sends k's request with a fresh id and arms its timer. */
static int call_send(struct mcp_client *c, struct mcp_call *k, struct err *e)
{
	k->id = c->next_id++;
	k->waiting_reinit = 0;
	k->dropped_at_start = c->tp ? c->tp->ops->dropped(c->tp) : 0;
	json_object_set_new(k->msg, "id", json_integer(k->id));
	json_t *params = json_object_get(k->msg, "params");
	if (k->with_progress && json_is_object(params)) {
		json_t *meta = json_object_get(params, "_meta");
		if (!json_is_object(meta)) {
			meta = json_object();
			json_object_set_new(params, "_meta", meta);
		}
		json_object_set_new(meta, "progressToken", json_integer(k->id));
	}
	int rc = client_send(c, k->msg, e);
	if (rc == 0)
		uv_timer_start(&k->timer, call_on_timeout, (uint64_t)k->timeout_ms, 0);
	return rc;
}

static int call_start(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		      int flags, mcp_result_cb cb, void *opaque, struct mcp_call **out,
		      struct err *e)
{
	if (c->stage != ST_OPEN) {
		json_decref(params);
		return err_set(e, -ESHUTDOWN, "server '%s': the client is closing", c->cfg->name);
	}
	struct mcp_call *k = calloc(1, sizeof(*k));
	if (!k) {
		json_decref(params);
		return err_set(e, -ENOMEM, "out of memory");
	}
	if (!params)
		params = json_object();
	if (c->modern && json_is_object(params))
		client_add_envelope(c, params);
	k->c = c;
	k->cb = cb;
	k->opaque = opaque;
	snprintf(k->method, sizeof(k->method), "%s", method);
	k->with_progress = (flags & MCP_CALL_PROGRESS) != 0;
	k->timeout_ms = timeout_ms > 0 ? timeout_ms : c->cfg->timeout_ms > 0 ?
		c->cfg->timeout_ms : MCP_TIMEOUT_MS_DEFAULT;
	k->msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
	if (!k->msg) {
		free(k);
		return err_set(e, -ENOMEM, "out of memory");
	}
	uv_timer_init(c->loop, &k->timer);
	k->timer.data = k;
	c->handles++;
	k->next = c->calls;
	c->calls = k;
	int rc = call_send(c, k, e);
	if (rc < 0) {
		/* Never reported through cb: the failure is this call's return value. */
		c->calls = k->next;
		uv_close((uv_handle_t *)&k->timer, call_timer_closed);
		return rc;
	}
	if (out)
		*out = k;
	return 0;
}

int mcp_client_request(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		       int flags, mcp_result_cb cb, void *opaque, struct mcp_call **out,
		       struct err *e)
{
	return call_start(c, method, params, timeout_ms, flags, cb, opaque, out, e);
}

int mcp_client_wants_progress(const struct mcp_client *c)
{
	return c->ev.on_progress != NULL;
}

long long mcp_call_id(const struct mcp_call *call)
{
	return call->id;
}

int mcp_client_notify(struct mcp_client *c, const char *method, json_t *params, struct err *e)
{
	if (!params)
		params = json_object();
	if (c->modern && json_is_object(params))
		client_add_envelope(c, params);
	json_t *n = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
	if (!n)
		return err_set(e, -ENOMEM, "out of memory");
	int rc = client_send(c, n, e);
	json_decref(n);
	return rc;
}

/* ---- handshake ---- */

static int version_is_legacy(const char *v)
{
	for (int i = 0; legacy_versions[i]; i++)
		if (!strcmp(v, legacy_versions[i]))
			return 1;
	return 0;
}

static void client_set_server(struct mcp_client *c, json_t *info, json_t *caps)
{
	json_decref(c->server_info);
	json_decref(c->server_caps);
	c->server_info = json_is_object(info) ? json_incref(info) : NULL;
	c->server_caps = json_is_object(caps) ? json_incref(caps) : NULL;
}

static void hs_finish(struct mcp_client *c, int rc, const struct err *e)
{
	c->hs_active = 0;
	if (c->hs_next)
		c->hs_next(c, rc, e);
}

static void hs_on_initialize(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct mcp_client *c = opaque;
	struct err he = { 0 };
	if (rc < 0) {
		he = *e;
		err_wrap(&he, "initializing server '%s'", c->cfg->name);
		hs_finish(c, rc, &he);
		return;
	}
	json_t *pv = json_object_get(res, "protocolVersion");
	if (!json_is_string(pv) || !version_is_legacy(json_string_value(pv))) {
		rc = err_set(&he, -EPROTO, "server '%s' answered initialize with protocol version "
			     "'%s', which this client does not speak (it speaks 2024-11-05 to %s "
			     "and %s)", c->cfg->name, json_is_string(pv) ? json_string_value(pv) :
			     "(none)", MCP_VERSION_LATEST_LEGACY, MCP_VERSION_MODERN);
		hs_finish(c, rc, &he);
		return;
	}
	snprintf(c->version, sizeof(c->version), "%s", json_string_value(pv));
	client_set_server(c, json_object_get(res, "serverInfo"), json_object_get(res, "capabilities"));
	c->tp->ops->set_version(c->tp, c->version);
	rc = mcp_client_notify(c, "notifications/initialized", NULL, &he);
	if (rc == 0 && c->tp->ops->listen)
		c->tp->ops->listen(c->tp);
	hs_finish(c, rc, &he);
}

static int hs_call(struct mcp_client *c, const char *method, json_t *params, long timeout,
		   int no_cancel, mcp_result_cb cb, struct err *e)
{
	struct mcp_call *k;
	int rc = call_start(c, method, params, timeout, 0, cb, c, &k, e);
	if (rc == 0) {
		k->no_reinit = 1;
		k->no_cancel = no_cancel;
	}
	return rc;
}

static int hs_initialize(struct mcp_client *c, const char *offer, struct err *e)
{
	json_t *params = json_pack("{s:s,s:o,s:o}", "protocolVersion", offer, "capabilities",
				   client_capabilities(c), "clientInfo", client_info());
	int rc = hs_call(c, "initialize", params, 0, 0, hs_on_initialize, e);
	if (rc < 0)
		err_wrap(e, "initializing server '%s'", c->cfg->name);
	return rc;
}

static void hs_on_discover(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct mcp_client *c = opaque;
	struct err he = { 0 };
	int ok = 0;
	if (rc < 0) {
		log_debug("mcp: server/discover: %s; falling back to initialize", e->msg);
		if (c->dead) {
			err_set(&he, -EPIPE, "connecting to server '%s': %s", c->cfg->name,
				c->dead_err.msg);
			hs_finish(c, -EPIPE, &he);
			return;
		}
	} else {
		json_t *vers = json_object_get(res, "supportedVersions");
		size_t i;
		json_t *v;
		json_array_foreach(vers, i, v)
			if (json_is_string(v) && !strcmp(json_string_value(v), MCP_VERSION_MODERN))
				ok = 1;
	}
	if (ok) {
		json_t *meta = json_object_get(res, "_meta");
		client_set_server(c, json_object_get(meta, "io.modelcontextprotocol/serverInfo"),
				  json_object_get(res, "capabilities"));
		c->modern = 1;
		snprintf(c->version, sizeof(c->version), "%s", MCP_VERSION_MODERN);
		hs_finish(c, 0, NULL);
		return;
	}
	if (c->cfg->protocol_version) {
		err_set(&he, -EPROTO, "server '%s' does not speak %s (server/discover failed)",
			c->cfg->name, MCP_VERSION_MODERN);
		hs_finish(c, -EPROTO, &he);
		return;
	}
	c->tp->ops->set_version(c->tp, NULL);
	if ((rc = hs_initialize(c, MCP_VERSION_LATEST_LEGACY, &he)) < 0)
		hs_finish(c, rc, &he);
}

/* Starts the handshake; hs_next runs when it ends (never inside this call).
 * Returns <0 when it could not start. */
static int hs_start(struct mcp_client *c, struct err *e)
{
	const char *forced = c->cfg->protocol_version;
	c->modern = 0;
	c->version[0] = '\0';
	if (forced && strcmp(forced, MCP_VERSION_MODERN) && !version_is_legacy(forced))
		return err_set(e, -EINVAL, "server '%s': unknown \"protocolVersion\" '%s'",
			       c->cfg->name, forced);
	int rc;
	if (!forced || !strcmp(forced, MCP_VERSION_MODERN)) {
		long t = c->cfg->timeout_ms < DISCOVER_TIMEOUT_MS ? c->cfg->timeout_ms :
			DISCOVER_TIMEOUT_MS;
		c->tp->ops->set_version(c->tp, MCP_VERSION_MODERN);
		json_t *params = json_object();
		client_add_envelope(c, params);
		rc = hs_call(c, "server/discover", params, t, 1, hs_on_discover, e);
		if (rc < 0)
			err_wrap(e, "connecting to server '%s'", c->cfg->name);
	} else {
		rc = hs_initialize(c, forced, e);
	}
	if (rc == 0)
		c->hs_active = 1;
	return rc;
}

/* ---- re-initialization after the server ended the session ---- */

static void reinit_done(struct mcp_client *c, int rc, const struct err *he)
{
	for (;;) {
		struct mcp_call *k = c->calls;
		while (k && !k->waiting_reinit)
			k = k->next;
		if (!k)
			break;
		k->waiting_reinit = 0;
		k->no_reinit = 1;   /* once */
		struct err e = { 0 };
		if (rc < 0) {
			err_set(&e, rc, "the server ended the session and re-initializing failed: "
				"%.900s", he ? he->msg : "");
			call_finish(k, rc, NULL, &e);
		} else if (!strcmp(k->method, "tools/call")) {
			err_set(&e, -ESTALE, "the server ended the session; a new one is open, but "
				"tools/call is never retried automatically (it may not be "
				"idempotent): call the tool again");
			call_finish(k, -ESTALE, NULL, &e);
		} else if (call_send(c, k, &e) < 0) {
			call_finish(k, e.code, NULL, &e);
		}
	}
}

static void client_reinit(struct mcp_client *c, struct mcp_call *k)
{
	k->waiting_reinit = 1;
	if (c->hs_active)
		return;   /* the new session under way serves this call too */
	log_info("mcp: server '%s' ended the session; re-initializing", c->cfg->name);
	c->tp->ops->reset_session(c->tp);
	c->hs_next = reinit_done;
	struct err e = { 0 };
	int rc = hs_start(c, &e);
	if (rc < 0)
		reinit_done(c, rc, &e);
}

/* ---- lifecycle ---- */

static int client_roots_from(struct mcp_client *c, char **uris)
{
	json_decref(c->roots);
	c->roots = NULL;
	if (!uris)
		return 0;
	c->roots = json_array();
	if (!c->roots)
		return -ENOMEM;
	for (char **p = uris; *p; p++) {
		const char *base = strrchr(*p, '/');
		json_array_append_new(c->roots, json_pack("{s:s,s:s}", "uri", *p, "name",
							  base && base[1] ? base + 1 : *p));
	}
	return 0;
}

static void drain_timer_closed(uv_handle_t *h)
{
	client_handle_gone(h->data);
}

int mcp_client_new(uv_loop_t *loop, const struct mcp_server_config *cfg,
		   const struct mcp_events *ev, struct mcp_client **out, struct err *e)
{
	struct mcp_client *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->cfg = cfg;
	if (ev)
		c->ev = *ev;
	c->next_id = 1;
	for (unsigned i = 0; i < CANCELLED_RING; i++)
		c->cancelled[i] = -1;
	if (!loop) {
		loop = malloc(sizeof(*loop));
		int rc = loop ? uv_loop_init(loop) : UV_ENOMEM;
		if (rc < 0) {
			free(loop);
			free(c);
			return err_set(e, -EIO, "event loop: %s", uv_strerror(rc));
		}
		c->owns_loop = 1;
	}
	c->loop = loop;
	if (client_roots_from(c, cfg->roots) < 0) {
		if (c->owns_loop) {
			uv_loop_close(loop);
			free(loop);
		}
		json_decref(c->roots);
		free(c);
		return err_set(e, -ENOMEM, "out of memory");
	}
	uv_timer_init(loop, &c->drain);
	c->drain.data = c;
	c->handles = 1;
	*out = c;
	return 0;
}

static void connect_done(struct mcp_client *c, int rc, const struct err *e)
{
	if (rc == 0)
		c->connected = 1;
	c->hs_next = NULL;
	if (c->connect_cb)
		c->connect_cb(c->connect_opaque, rc, e);
}

int mcp_client_connect(struct mcp_client *c, mcp_done_cb cb, void *opaque, struct err *e)
{
	if (c->tp || c->stage != ST_OPEN)
		return err_set(e, -EALREADY, "server '%s': connect was already called",
			       c->cfg->name);
	struct mcp_transport_events tev = {
		.on_message = client_on_message,
		.on_failure = client_on_failure,
		.opaque = c,
	};
	int rc = c->cfg->kind == MCP_HTTP ?
		mcp_http_open(c->loop, c->cfg, &tev, &c->tp, e) :
		mcp_stdio_open(c->loop, c->cfg, &tev, &c->tp, e);
	if (rc < 0) {
		c->tp = NULL;
		return rc;
	}
	c->handles++;   /* the transport, until its close completes */
	c->roots_declared = c->roots != NULL;
	c->connect_cb = cb;
	c->connect_opaque = opaque;
	c->hs_next = connect_done;
	return hs_start(c, e);
}

int mcp_client_set_roots(struct mcp_client *c, const char *const *dirs_or_uris, struct err *e)
{
	struct mcp_server_config tmp = { 0 };
	if (c->connected && !c->roots_declared)
		return err_set(e, -ENOTSUP, "roots can change only on a connection that started "
			       "with roots (the capability is declared when connecting; hint: "
			       "configure \"roots\", even an empty list)");
	for (size_t i = 0; dirs_or_uris && dirs_or_uris[i]; i++) {
		int rc = mcp_config_add_root(&tmp, dirs_or_uris[i]);
		if (rc < 0) {
			mcp_strv_free(tmp.roots);
			return err_set(e, rc, "root '%s' does not resolve (hint: it must be an "
				       "existing directory)", dirs_or_uris[i]);
		}
	}
	if (!tmp.roots)
		tmp.roots = calloc(1, sizeof(char *));
	int rc = client_roots_from(c, tmp.roots);
	mcp_strv_free(tmp.roots);
	if (rc < 0)
		return err_set(e, rc, "out of memory");
	if (!c->connected)
		return 0;
	return mcp_client_notify(c, "notifications/roots/list_changed", NULL, e);
}

uv_loop_t *mcp_client_loop(const struct mcp_client *c)
{
	return c->loop;
}

int mcp_client_owns_loop(const struct mcp_client *c)
{
	return c->owns_loop;
}

const char *mcp_client_protocol_version(const struct mcp_client *c)
{
	return c->version;
}

json_t *mcp_client_server_info(const struct mcp_client *c)
{
	return c->server_info;
}

json_t *mcp_client_server_capabilities(const struct mcp_client *c)
{
	return c->server_caps;
}

int mcp_client_is_modern(const struct mcp_client *c)
{
	return c->modern;
}

unsigned long mcp_client_dropped_late(const struct mcp_client *c)
{
	return c->dropped;
}

/* ---- close ---- */

static void client_tp_closed(void *opaque)
{
	struct mcp_client *c = opaque;
	c->tp = NULL;
	client_handle_gone(c);
}

/* Draining is over (every call answered, or the drain timer fired). */
static void client_shut(struct mcp_client *c)
{
	struct err e = { 0 };
	c->stage = ST_CLOSING;
	err_set(&e, -ECANCELED, "server '%s': the client was closed before the answer",
		c->cfg->name);
	while (c->calls)
		call_finish(c->calls, -ECANCELED, NULL, &e);
	uv_close((uv_handle_t *)&c->drain, drain_timer_closed);
	if (c->tp)
		c->tp->ops->close(c->tp, client_tp_closed, c);
}

static void client_maybe_drained(struct mcp_client *c)
{
	if (c->stage == ST_DRAINING && !c->calls)
		client_shut(c);
}

static void drain_on_timer(uv_timer_t *t)
{
	struct mcp_client *c = t->data;
	if (c->stage == ST_DRAINING)
		client_shut(c);
}

void mcp_client_close(struct mcp_client *c, void (*done)(void *opaque), void *opaque)
{
	if (!c || c->stage != ST_OPEN)
		return;
	c->close_done = done;
	c->close_opaque = opaque;
	c->stage = ST_DRAINING;
	if (c->calls && !c->dead) {
		/* Read outstanding responses first (bounded), then close. */
		uv_timer_start(&c->drain, drain_on_timer, CLOSE_DRAIN_MS, 0);
		return;
	}
	client_shut(c);
}
