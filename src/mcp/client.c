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
 * Everything is a state machine on the caller's loop: the handshake and a
 * re-initialization (handshake.c), a multi-round-trip request (mrtr.c), and
 * close (drain, fail the rest, close the transport, then free once every
 * handle is closed) all advance from callbacks.
 *
 * In the 2026-07-28 era every result says what it is in "resultType":
 * absent or "complete" is the answer, "input_required" starts another round
 * (mrtr.c), anything else is refused rather than mistaken for an answer. */
#include "mcp/client_int.h"
#include "mcp/mcp.h"
#include "mcp/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define CLIENT_NAME "ironclaw"
#define CLIENT_VERSION "0.1.0"
#define CLOSE_DRAIN_MS 2000

/* ---- helpers ---- */

json_t *mcp_client_caps_json(struct mcp_client *c)
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

json_t *mcp_client_info_json(void)
{
	return json_pack("{s:s,s:s}", "name", CLIENT_NAME, "version", CLIENT_VERSION);
}

/* The 2026-07-28 per-request envelope, merged into params._meta. */
void mcp_client_add_envelope(struct mcp_client *c, json_t *params)
{
	json_t *meta = json_object_get(params, "_meta");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(params, "_meta", meta);
	}
	json_object_set_new(meta, "io.modelcontextprotocol/protocolVersion",
			    json_string(MCP_VERSION_MODERN));
	json_object_set_new(meta, "io.modelcontextprotocol/clientInfo", mcp_client_info_json());
	json_object_set_new(meta, "io.modelcontextprotocol/clientCapabilities",
			    mcp_client_caps_json(c));
}

int mcp_client_send_msg(struct mcp_client *c, json_t *msg, json_t *headers, struct err *e)
{
	if (c->dead)
		return err_set(e, c->dead_err.code, "%s", c->dead_err.msg);
	if (!c->tp || c->stage == ST_CLOSING)
		return err_set(e, -ENOTCONN, "server '%s': not connected", c->cfg->name);
	return c->tp->ops->send(c->tp, msg, headers, e);
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
	json_decref(c->tools);
	json_decref(c->tools_skipped);
	json_decref(c->sub.filter);
	json_decref(c->sub.ack);
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
	json_decref(k->headers);
	free(k);
	client_handle_gone(c);
}

static void client_maybe_drained(struct mcp_client *c);

/* Ends k: unlinks it, reports to its owner, releases it. */
void mcp_call_finish(struct mcp_call *k, int rc, json_t *result, const struct err *e)
{
	struct mcp_client *c = k->c;
	for (struct mcp_call **pp = &c->calls; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	uv_timer_stop(&k->timer);
	mcp_mrtr_release(k);
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
	if (mcp_client_send_msg(c, msg, NULL, &e) < 0)
		log_warn("mcp: answering the server failed: %s", e.msg);
	json_decref(msg);
}

struct mcp_responder *mcp_responder_new(struct mcp_client *c, json_t *id, struct mcp_call *k,
					const char *key)
{
	struct mcp_responder *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->c = c;
	r->id = json_incref(id);
	if (k) {
		r->is_mrtr = 1;
		r->call = k;
		snprintf(r->key, sizeof(r->key), "%s", key);
	}
	r->next = c->responders;
	c->responders = r;
	return r;
}

static void responder_done(struct mcp_responder *r, json_t *result, int code, const char *message)
{
	struct mcp_client *c = r->c;
	if (c && r->is_mrtr) {
		for (struct mcp_responder **pp = &c->responders; *pp; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		struct mcp_call *k = r->call;
		char key[sizeof(r->key)];
		memcpy(key, r->key, sizeof(key));
		json_decref(r->id);
		free(r);
		if (k && c->stage != ST_CLOSING && !c->dead)
			mcp_mrtr_answer(k, key, result, code, message);   /* steals result */
		else
			json_decref(result);
		return;
	}
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
		struct mcp_responder *r = mcp_responder_new(c, m->id, NULL, NULL);
		if (!r) {
			client_reply(c, m->id, NULL, -32603, "out of memory");
			return;
		}
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
	if (!mcp_listen_accepts(c, m->params)) {
		log_debug("mcp: %s of a subscription that is no longer open, dropped", meth);
		return;
	}
	if (!strcmp(meth, "notifications/subscriptions/acknowledged")) {
		mcp_listen_on_ack(c, m->params);
	} else if (!strcmp(meth, "notifications/resources/updated")) {
		json_t *uri = json_object_get(m->params, "uri");
		if (json_is_string(uri) && c->ev.on_resource_updated)
			c->ev.on_resource_updated(c->ev.opaque, json_string_value(uri));
	} else if (!strcmp(meth, "notifications/progress")) {
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
		if (!strcmp(what, "tools"))
			c->tools_fresh_until = 0;   /* the next list asks the server again */
		if (c->ev.on_list_changed)
			c->ev.on_list_changed(c->ev.opaque, what);
		log_info("mcp: server '%s' says its %s changed", c->cfg->name, what);
	} else {
		log_debug("mcp: ignoring notification %s", meth);
	}
}

static void client_on_response(struct mcp_client *c, struct mcp_msg *m)
{
	if (mcp_listen_is_ours(c, m->id)) {
		mcp_listen_on_response(c, m->error);
		return;
	}
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
		c->rpc_error = m->error;
		mcp_call_finish(k, -EPROTO, NULL, &e);
		c->rpc_error = NULL;
		return;
	}
	json_t *rt = json_object_get(m->result, "resultType");
	const char *type = json_is_string(rt) ? json_string_value(rt) : "complete";
	if (c->modern && !strcmp(type, "input_required")) {
		mcp_mrtr_on_input_required(k, m->result);
		return;
	}
	if (c->modern && strcmp(type, "complete")) {
		struct err e = { 0 };
		err_set(&e, -EPROTO, "server '%s' answered %s with resultType '%.64s', which this "
			"client does not support", c->cfg->name, k->method, type);
		mcp_call_finish(k, -EPROTO, NULL, &e);
		return;
	}
	mcp_call_finish(k, 0, m->result, NULL);
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

static void client_on_failure(void *opaque, json_t *id, const struct err *e)
{
	struct mcp_client *c = opaque;
	if (!id) {
		c->dead = 1;
		c->dead_err = *e;
		/* Fail every pending call; a callback may start (failing) new ones. */
		while (c->calls)
			mcp_call_finish(c->calls, e->code, NULL, e);
		mcp_listen_on_failure(c, e);
		return;
	}
	if (mcp_listen_is_ours(c, id)) {
		mcp_listen_on_failure(c, e);
		return;
	}
	struct mcp_call *k = client_find(c, id);
	if (!k)
		return;
	if (e->code == -ESTALE && !k->no_reinit)
		mcp_hs_reinit(c, k);
	else
		mcp_call_finish(k, e->code, NULL, e);
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
			mcp_client_add_envelope(c, params);
		json_t *n = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method",
				      "notifications/cancelled", "params", params);
		struct err se = { 0 };
		if (n && mcp_client_send_msg(c, n, NULL, &se) < 0)
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
	mcp_call_finish(k, -ETIMEDOUT, NULL, &e);
}

static void call_on_authorization_timeout(uv_timer_t *t)
{
	struct mcp_call *k = t->data;
	struct err e = { 0 };
	err_set(&e, -ETIMEDOUT, "%s: no authorization for server '%s' within %ld ms (hint: "
		"run `ironclaw mcp login --server %s` first)", k->method, k->c->cfg->name,
		mcp_client_input_timeout(k->c), k->c->cfg->name);
	mcp_call_finish(k, -ETIMEDOUT, NULL, &e);
}

/* The transport parked the request for an authorization (a person in a
 * browser may take minutes): the server's clock stops, as in a
 * multi-round-trip round, and inputTimeoutMs bounds the wait instead. */
static void client_on_authorizing(void *opaque, json_t *id, int waiting)
{
	struct mcp_client *c = opaque;
	struct mcp_call *k = client_find(c, id);
	if (!k)
		return;
	uv_timer_stop(&k->timer);
	if (waiting) {
		long used = (long)(uv_now(c->loop) - k->armed_at);
		k->left_ms = k->armed_ms - used > 0 ? k->armed_ms - used : 1;
		uv_timer_start(&k->timer, call_on_authorization_timeout,
			       (uint64_t)mcp_client_input_timeout(c), 0);
		return;
	}
	k->armed_ms = k->left_ms > 0 ? k->left_ms : k->timeout_ms;
	k->left_ms = 0;
	k->armed_at = uv_now(c->loop);
	uv_timer_start(&k->timer, call_on_timeout, (uint64_t)k->armed_ms, 0);
}

/* (Re)sends k's request with a fresh id and arms its timer. */
int mcp_call_send(struct mcp_client *c, struct mcp_call *k, struct err *e)
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
	int rc = mcp_client_send_msg(c, k->msg, k->headers, e);
	if (rc == 0) {
		/* After a paused multi-round-trip round: what was left of it. */
		k->armed_ms = k->left_ms > 0 ? k->left_ms : k->timeout_ms;
		k->left_ms = 0;
		k->armed_at = uv_now(c->loop);
		uv_timer_start(&k->timer, call_on_timeout, (uint64_t)k->armed_ms, 0);
	}
	return rc;
}

int mcp_call_start(struct mcp_client *c, const char *method, json_t *params, json_t *headers,
		   long timeout_ms, int flags, mcp_result_cb cb, void *opaque,
		   struct mcp_call **out, struct err *e)
{
	if (c->stage != ST_OPEN) {
		json_decref(headers);
		json_decref(params);
		return err_set(e, -ESHUTDOWN, "server '%s': the client is closing", c->cfg->name);
	}
	struct mcp_call *k = calloc(1, sizeof(*k));
	if (!k) {
		json_decref(headers);
		json_decref(params);
		return err_set(e, -ENOMEM, "out of memory");
	}
	k->headers = headers;
	if (!params)
		params = json_object();
	if (c->modern && json_is_object(params))
		mcp_client_add_envelope(c, params);
	k->c = c;
	k->cb = cb;
	k->opaque = opaque;
	snprintf(k->method, sizeof(k->method), "%s", method);
	k->with_progress = (flags & MCP_CALL_PROGRESS) != 0;
	k->timeout_ms = timeout_ms > 0 ? timeout_ms : mcp_client_timeout(c);
	k->msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
	if (!k->msg) {
		json_decref(k->headers);
		free(k);
		return err_set(e, -ENOMEM, "out of memory");
	}
	uv_timer_init(c->loop, &k->timer);
	k->timer.data = k;
	c->handles++;
	k->next = c->calls;
	c->calls = k;
	int rc = mcp_call_send(c, k, e);
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
	return mcp_call_start(c, method, params, NULL, timeout_ms, flags, cb, opaque, out, e);
}

long mcp_client_timeout(const struct mcp_client *c)
{
	return c->cfg->timeout_ms > 0 ? c->cfg->timeout_ms : MCP_TIMEOUT_MS_DEFAULT;
}

long mcp_client_input_timeout(const struct mcp_client *c)
{
	return c->cfg->input_timeout_ms > 0 ? c->cfg->input_timeout_ms :
		MCP_INPUT_TIMEOUT_MS_DEFAULT;
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
		mcp_client_add_envelope(c, params);
	json_t *n = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
	if (!n)
		return err_set(e, -ENOMEM, "out of memory");
	int rc = mcp_client_send_msg(c, n, NULL, e);
	json_decref(n);
	return rc;
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
	uv_timer_init(loop, &c->sub.timer);
	c->sub.timer.data = c;
	c->handles = 2;   /* the drain and subscription timers */
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
		.on_authorizing = client_on_authorizing,
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
	return mcp_hs_start(c, e);
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

void mcp_client_set_tools(struct mcp_client *c, json_t *kept, json_t *skipped, long ttl_ms)
{
	json_t *byname = json_object();
	size_t i;
	json_t *t;
	json_array_foreach(kept, i, t)
		json_object_set(byname, json_string_value(json_object_get(t, "name")), t);
	json_decref(c->tools);
	json_decref(c->tools_skipped);
	c->tools = byname;
	c->tools_skipped = json_incref(skipped);
	c->tools_fresh_until = ttl_ms > 0 ? uv_now(c->loop) + (uint64_t)ttl_ms : 0;
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
		mcp_call_finish(c->calls, -ECANCELED, NULL, &e);
	/* The transport's close ends the subscription's stream too. */
	c->sub.want = 0;
	c->sub.id = 0;
	c->sub.state = SUB_IDLE;
	uv_close((uv_handle_t *)&c->drain, drain_timer_closed);
	uv_close((uv_handle_t *)&c->sub.timer, drain_timer_closed);
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
