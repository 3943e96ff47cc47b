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
	json_t *result;           /* owned once done */
	int done;
	int rc;
	int with_progress;
	int stale;                /* the server ended the session */
	int reinit_done;
	int no_cancel;            /* don't announce a timeout (the discover probe) */
	long timeout_ms;
	char why[512];
	uv_timer_t timer;
	int freed_on_close;
};

struct mcp_client {
	const struct mcp_server_config *cfg;
	struct mcp_events ev;
	uv_loop_t loop;
	struct mcp_transport *tp;
	long long next_id;
	struct mcp_call *calls;
	int calls_open;           /* calls whose timer handle is not closed yet */
	char version[32];
	int modern;
	int connected;
	json_t *server_info;
	json_t *server_caps;
	json_t *roots;            /* [{uri, name}] or NULL when none are configured */
	int roots_declared;       /* the roots capability went out at connect */
	int dead;
	char dead_why[256];
	long long cancelled[CANCELLED_RING];
	unsigned cancelled_next;
	unsigned long dropped;
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
	char why[300];
	if (c->dead)
		return err_set(e, -EPIPE, "%s", c->dead_why);
	int rc = c->tp->ops->send(c->tp, msg, why, sizeof(why));
	if (rc < 0)
		return err_set(e, rc, "%s", why);
	return 0;
}

static struct mcp_call *client_find(struct mcp_client *c, json_t *id)
{
	if (!json_is_integer(id))
		return NULL;
	long long v = json_integer_value(id);
	for (struct mcp_call *k = c->calls; k; k = k->next)
		if (k->id == v && !k->done)
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

static void call_finish(struct mcp_call *k, int rc, const char *why)
{
	if (k->done)
		return;
	k->done = 1;
	k->rc = rc;
	if (why)
		snprintf(k->why, sizeof(k->why), "%s", why);
	uv_timer_stop(&k->timer);
}

/* ---- incoming ---- */

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

static void client_on_server_request(struct mcp_client *c, struct mcp_msg *m)
{
	if (!strcmp(m->method, "ping")) {
		client_reply(c, m->id, json_object(), 0, NULL);
	} else if (!strcmp(m->method, "roots/list") && c->roots) {
		client_reply(c, m->id, json_pack("{s:O}", "roots", c->roots), 0, NULL);
	} else if (c->ev.on_request && (!strcmp(m->method, "sampling/createMessage") ||
					 !strcmp(m->method, "elicitation/create"))) {
		int code = -32603;
		const char *message = "the client could not handle the request";
		json_t *res = c->ev.on_request(c->ev.opaque, m->method, m->params, &code, &message);
		client_reply(c, m->id, res, code, message);
	} else {
		client_reply(c, m->id, NULL, -32601, "Method not found");
	}
}

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
		char why[400];
		snprintf(why, sizeof(why), "server error %lld on %s: %s",
			 (long long)json_integer_value(json_object_get(m->error, "code")), k->method,
			 json_is_string(msg) ? json_string_value(msg) : "(no message)");
		k->result = json_incref(m->error);   /* kept for the caller's inspection */
		call_finish(k, -EPROTO, why);
		return;
	}
	k->result = json_incref(m->result);
	call_finish(k, 0, NULL);
}

static void client_on_message(void *opaque, json_t *msg)
{
	struct mcp_client *c = opaque;
	struct mcp_msg m;
	char why[200];
	if (mcp_msg_classify(msg, &m, why, sizeof(why)) < 0) {
		log_warn("mcp: server '%s' sent an invalid message, skipped: %s", c->cfg->name, why);
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

static void client_on_failure(void *opaque, json_t *id, int code, const char *why)
{
	struct mcp_client *c = opaque;
	if (!id) {
		c->dead = 1;
		snprintf(c->dead_why, sizeof(c->dead_why), "%s", why);
		for (struct mcp_call *k = c->calls; k; k = k->next)
			call_finish(k, code, why);
		return;
	}
	struct mcp_call *k = client_find(c, id);
	if (!k)
		return;
	if (code == -ESTALE)
		k->stale = 1;
	call_finish(k, code, why);
}

/* ---- calls ---- */

static void call_on_timeout(uv_timer_t *t)
{
	struct mcp_call *k = t->data;
	struct mcp_client *c = k->c;
	if (k->done)
		return;
	c->cancelled[c->cancelled_next++ % CANCELLED_RING] = k->id;
	if (!k->no_cancel && !c->dead) {
		char reason[96];
		snprintf(reason, sizeof(reason), "timed out after %ld ms", k->timeout_ms);
		json_t *params = json_pack("{s:I,s:s}", "requestId", (json_int_t)k->id, "reason", reason);
		if (c->modern)
			client_add_envelope(c, params);
		json_t *n = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method",
				      "notifications/cancelled", "params", params);
		struct err e = { 0 };
		if (n && client_send(c, n, &e) < 0)
			log_debug("mcp: could not send the cancellation: %s", e.msg);
		json_decref(n);
	}
	char why[160];
	snprintf(why, sizeof(why), "%s timed out after %ld ms (the request was cancelled; "
		 "hint: raise \"timeoutMs\")", k->method, k->timeout_ms);
	call_finish(k, -ETIMEDOUT, why);
}

static void call_timer_closed(uv_handle_t *h)
{
	struct mcp_call *k = h->data;
	k->c->calls_open--;
	json_decref(k->msg);
	json_decref(k->result);
	free(k);
}

static void call_release(struct mcp_client *c, struct mcp_call *k)
{
	for (struct mcp_call **pp = &c->calls; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	uv_close((uv_handle_t *)&k->timer, call_timer_closed);
}

/* (Re)sends k's request with a fresh id and arms its timer. */
static int call_send(struct mcp_client *c, struct mcp_call *k, struct err *e)
{
	k->id = c->next_id++;
	k->done = 0;
	k->rc = 0;
	k->stale = 0;
	k->why[0] = '\0';
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
	uv_timer_start(&k->timer, call_on_timeout, (uint64_t)k->timeout_ms, 0);
	int rc = client_send(c, k->msg, e);
	if (rc < 0) {
		uv_timer_stop(&k->timer);
		k->done = 1;
		k->rc = rc;
	}
	return rc;
}

int mcp_call_start(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		   int with_progress, struct mcp_call **out, struct err *e)
{
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
	snprintf(k->method, sizeof(k->method), "%s", method);
	k->with_progress = with_progress;
	k->timeout_ms = timeout_ms > 0 ? timeout_ms : c->cfg->timeout_ms > 0 ?
		c->cfg->timeout_ms : MCP_TIMEOUT_MS_DEFAULT;
	k->msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
	if (!k->msg) {
		free(k);
		return err_set(e, -ENOMEM, "out of memory");
	}
	uv_timer_init(&c->loop, &k->timer);
	k->timer.data = k;
	c->calls_open++;
	k->next = c->calls;
	c->calls = k;
	*out = k;
	int rc = call_send(c, k, e);
	if (rc < 0) {
		call_release(c, k);
		*out = NULL;
	}
	return rc;
}

int mcp_client_wants_progress(const struct mcp_client *c)
{
	return c->ev.on_progress != NULL;
}

long long mcp_call_id(const struct mcp_call *call)
{
	return call->id;
}

static int client_handshake(struct mcp_client *c, struct err *e);

int mcp_call_wait(struct mcp_client *c, struct mcp_call *k, json_t **result, struct err *e)
{
	int rc;
	if (result)
		*result = NULL;
	for (;;) {
		while (!k->done)
			uv_run(&c->loop, UV_RUN_ONCE);
		if (!k->stale || k->reinit_done)
			break;
		/* The server forgot the session: a new one, once. */
		k->reinit_done = 1;
		log_info("mcp: server '%s' ended the session; re-initializing", c->cfg->name);
		c->tp->ops->reset_session(c->tp);
		struct err he = { 0 };
		if ((rc = client_handshake(c, &he)) < 0) {
			snprintf(k->why, sizeof(k->why), "the server ended the session and "
				 "re-initializing failed: %.400s", he.msg);
			k->rc = rc;
			break;
		}
		if (!strcmp(k->method, "tools/call")) {
			snprintf(k->why, sizeof(k->why), "the server ended the session; a new one "
				 "is open, but tools/call is never retried automatically (it may "
				 "not be idempotent): call the tool again");
			k->rc = -ESTALE;
			break;
		}
		if ((rc = call_send(c, k, e)) < 0) {
			call_release(c, k);
			return rc;
		}
	}
	rc = k->rc;
	if (rc < 0)
		err_set(e, rc, "%s", k->why[0] ? k->why : "request failed");
	else if (result)
		*result = json_incref(k->result);
	call_release(c, k);
	return rc;
}

int mcp_client_request(struct mcp_client *c, const char *method, json_t *params,
		       long timeout_ms, json_t **result, struct err *e)
{
	struct mcp_call *k;
	int rc = mcp_call_start(c, method, params, timeout_ms, 0, &k, e);
	if (rc < 0)
		return rc;
	return mcp_call_wait(c, k, result, e);
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

static void pump_timer_cb(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

static void pump_timer_closed(uv_handle_t *h)
{
	(void)h;
}

void mcp_client_pump(struct mcp_client *c, long ms)
{
	uv_timer_t t;
	int fired = 0;
	uv_timer_init(&c->loop, &t);
	t.data = &fired;
	uv_timer_start(&t, pump_timer_cb, ms > 0 ? (uint64_t)ms : 0, 0);
	while (!fired)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, pump_timer_closed);
	uv_run(&c->loop, UV_RUN_NOWAIT);
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

/* Returns 1 when the server speaks the modern era, 0 to fall back, <0 if dead. */
static int client_try_discover(struct mcp_client *c, long timeout)
{
	struct mcp_call *k;
	struct err e = { 0 };
	json_t *params = json_object();
	client_add_envelope(c, params);
	if (mcp_call_start(c, "server/discover", params, timeout, 0, &k, &e) < 0)
		return c->dead ? -EPIPE : 0;
	k->no_cancel = 1;
	json_t *res = NULL;
	int rc = mcp_call_wait(c, k, &res, &e);
	if (rc < 0) {
		log_debug("mcp: server/discover: %s; falling back to initialize", e.msg);
		return c->dead ? -EPIPE : 0;
	}
	json_t *vers = json_object_get(res, "supportedVersions");
	int ok = 0;
	size_t i;
	json_t *v;
	json_array_foreach(vers, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), MCP_VERSION_MODERN))
			ok = 1;
	if (ok) {
		json_t *meta = json_object_get(res, "_meta");
		client_set_server(c, json_object_get(meta, "io.modelcontextprotocol/serverInfo"),
				  json_object_get(res, "capabilities"));
	}
	json_decref(res);
	return ok;
}

static int client_initialize(struct mcp_client *c, const char *offer, struct err *e)
{
	json_t *params = json_pack("{s:s,s:o,s:o}", "protocolVersion", offer, "capabilities",
				   client_capabilities(c), "clientInfo", client_info());
	json_t *res = NULL;
	int rc = mcp_client_request(c, "initialize", params, 0, &res, e);
	if (rc < 0)
		return err_wrap(e, "initializing server '%s'", c->cfg->name);
	json_t *pv = json_object_get(res, "protocolVersion");
	if (!json_is_string(pv) || !version_is_legacy(json_string_value(pv))) {
		rc = err_set(e, -EPROTO, "server '%s' answered initialize with protocol version "
			     "'%s', which this client does not speak (it speaks 2024-11-05 to %s "
			     "and %s)", c->cfg->name, json_is_string(pv) ? json_string_value(pv) :
			     "(none)", MCP_VERSION_LATEST_LEGACY, MCP_VERSION_MODERN);
		goto out;
	}
	snprintf(c->version, sizeof(c->version), "%s", json_string_value(pv));
	client_set_server(c, json_object_get(res, "serverInfo"), json_object_get(res, "capabilities"));
	c->tp->ops->set_version(c->tp, c->version);
	rc = mcp_client_notify(c, "notifications/initialized", NULL, e);
	if (rc == 0 && c->tp->ops->listen)
		c->tp->ops->listen(c->tp);
out:
	json_decref(res);
	return rc;
}

static int client_handshake(struct mcp_client *c, struct err *e)
{
	const char *forced = c->cfg->protocol_version;
	c->modern = 0;
	c->version[0] = '\0';
	if (forced && strcmp(forced, MCP_VERSION_MODERN) && !version_is_legacy(forced))
		return err_set(e, -EINVAL, "server '%s': unknown \"protocolVersion\" '%s'",
			       c->cfg->name, forced);
	if (!forced || !strcmp(forced, MCP_VERSION_MODERN)) {
		long t = c->cfg->timeout_ms < DISCOVER_TIMEOUT_MS ? c->cfg->timeout_ms :
			DISCOVER_TIMEOUT_MS;
		c->tp->ops->set_version(c->tp, MCP_VERSION_MODERN);
		int rc = client_try_discover(c, t);
		if (rc < 0)
			return err_set(e, rc, "connecting to server '%s': %s", c->cfg->name,
				       c->dead_why);
		if (rc == 1) {
			c->modern = 1;
			snprintf(c->version, sizeof(c->version), "%s", MCP_VERSION_MODERN);
			return 0;
		}
		if (forced)
			return err_set(e, -EPROTO, "server '%s' does not speak %s (server/discover "
				       "failed)", c->cfg->name, MCP_VERSION_MODERN);
		c->tp->ops->set_version(c->tp, NULL);
	}
	return client_initialize(c, forced ? forced : MCP_VERSION_LATEST_LEGACY, e);
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

int mcp_client_new(const struct mcp_server_config *cfg, const struct mcp_events *ev,
		   struct mcp_client **out, struct err *e)
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
	int rc = uv_loop_init(&c->loop);
	if (rc < 0) {
		free(c);
		return err_set(e, -EIO, "event loop: %s", uv_strerror(rc));
	}
	if (client_roots_from(c, cfg->roots) < 0) {
		uv_loop_close(&c->loop);
		free(c);
		return err_set(e, -ENOMEM, "out of memory");
	}
	*out = c;
	return 0;
}

int mcp_client_connect(struct mcp_client *c, struct err *e)
{
	char why[400];
	struct mcp_transport_events tev = {
		.on_message = client_on_message,
		.on_failure = client_on_failure,
		.opaque = c,
	};
	int rc = c->cfg->kind == MCP_STDIO ?
		mcp_stdio_open(&c->loop, c->cfg, &tev, &c->tp, why, sizeof(why)) :
		mcp_http_open(&c->loop, c->cfg, &tev, &c->tp, why, sizeof(why));
	if (rc < 0)
		return err_set(e, rc, "%s", why);
	c->roots_declared = c->roots != NULL;
	rc = client_handshake(c, e);
	if (rc == 0)
		c->connected = 1;
	return rc;
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

static void drain_timer_cb(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

void mcp_client_close(struct mcp_client *c)
{
	if (!c)
		return;
	if (c->tp) {
		/* Read outstanding responses first (bounded), then close. */
		uv_timer_t t;
		int fired = 0;
		uv_timer_init(&c->loop, &t);
		t.data = &fired;
		uv_timer_start(&t, drain_timer_cb, CLOSE_DRAIN_MS, 0);
		for (;;) {
			int pending = 0;
			for (struct mcp_call *k = c->calls; k; k = k->next)
				pending |= !k->done;
			if (!pending || fired || c->dead)
				break;
			uv_run(&c->loop, UV_RUN_ONCE);
		}
		uv_close((uv_handle_t *)&t, pump_timer_closed);
		while (c->tp->ops->closing(c->tp))
			uv_run(&c->loop, UV_RUN_ONCE);
	}
	while (c->calls)
		call_release(c, c->calls);
	while (c->calls_open > 0 || uv_loop_alive(&c->loop))
		if (uv_run(&c->loop, UV_RUN_ONCE) == 0 && c->calls_open == 0)
			break;
	if (c->tp)
		c->tp->ops->destroy(c->tp);
	uv_loop_close(&c->loop);
	json_decref(c->server_info);
	json_decref(c->server_caps);
	json_decref(c->roots);
	free(c);
}
