/* Subscriptions (2026-07-28, subscriptions/listen): the stateless era's only
 * channel for messages the server starts on its own. The client opens one
 * long-lived request whose "notifications" filter opts in to tools, prompts
 * and resources list changes and to updates of named resources (this replaces
 * resources/subscribe and the HTTP GET stream). The server acknowledges with
 * notifications/subscriptions/acknowledged, carrying the subset it honours,
 * and stamps every notification of the stream with the subscription id (the
 * listen request's JSON-RPC id) in _meta; notifications stamped with any other
 * id (an old stream's) are dropped.
 *
 * The request has no timeout: it lives until we cancel it (HTTP: the stream is
 * closed; stdio: notifications/cancelled), until the server answers it (a
 * result is a graceful end, not reconnected; an error, e.g. -32601 from a
 * server without subscriptions, ends it with the reason), or until the stream
 * drops. A drop, or no acknowledgment within the request timeout, reopens it
 * after a capped exponential backoff with jitter (LISTEN_BACKOFF_*_MS), reset
 * by each acknowledgment; the server keeps no subscription state, so a reopen
 * is a new subscription, and what changed meanwhile was missed: the tools
 * cache is dropped on every re-acknowledgment. A dead transport (a stdio
 * server gone) ends the subscription with the transport's error. */
#include "mcp/client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define SUB_ID_KEY "io.modelcontextprotocol/subscriptionId"

static int listen_open(struct mcp_client *c, struct err *e);

/* Reports the end of the subscription (ack NULL) or an acknowledgment. */
static void listen_report(struct mcp_client *c, json_t *ack, int rc, const struct err *e)
{
	if (c->ev.on_subscription)
		c->ev.on_subscription(c->ev.opaque, ack, rc, e);
}

/* Ends the open request on our side: the transport closes its stream (HTTP),
 * or the server is told (stdio). Its id is remembered so that a late answer
 * is dropped, not mistaken for something else. */
static void listen_cancel(struct mcp_client *c)
{
	struct mcp_sub *s = &c->sub;
	if (!s->id)
		return;
	long long id = s->id;
	s->id = 0;
	c->cancelled[c->cancelled_next++ % CANCELLED_RING] = id;
	if (c->dead || !c->tp || c->stage == ST_CLOSING)
		return;
	if (c->tp->ops->cancel && c->tp->ops->cancel(c->tp, id))
		return;
	json_t *params = json_pack("{s:I,s:s}", "requestId", (json_int_t)id, "reason",
				   "subscription closed by the client");
	mcp_client_add_envelope(c, params);
	struct err e = { 0 };
	if (mcp_client_notify(c, "notifications/cancelled", params, &e) < 0)
		log_debug("mcp: could not cancel the subscription: %s", e.msg);
}

static void listen_on_timer(uv_timer_t *t)
{
	struct mcp_client *c = t->data;
	struct mcp_sub *s = &c->sub;
	if (s->state == SUB_BACKOFF) {
		struct err e = { 0 };
		int rc = listen_open(c, &e);
		if (rc < 0) {
			s->state = SUB_IDLE;
			s->want = 0;
			listen_report(c, NULL, rc, &e);
		}
		return;
	}
	if (s->state == SUB_OPENING) {
		struct err e = { 0 };
		err_set(&e, -ETIMEDOUT, "no acknowledgment within %ld ms", mcp_client_timeout(c));
		mcp_listen_on_failure(c, &e);
	}
}

/* Sends a new listen request and arms the acknowledgment deadline. */
static int listen_open(struct mcp_client *c, struct err *e)
{
	struct mcp_sub *s = &c->sub;
	struct err se = { 0 };
	json_t *params = json_pack("{s:O}", "notifications", s->filter);
	if (params)
		mcp_client_add_envelope(c, params);
	long long id = c->next_id++;
	json_t *msg = params ? json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id",
					 (json_int_t)id, "method", "subscriptions/listen",
					 "params", params) : NULL;
	int rc = msg ? mcp_client_send_msg(c, msg, NULL, &se) : err_set(&se, -ENOMEM,
								       "out of memory");
	json_decref(msg);
	if (rc < 0)
		return err_set(e, rc, "server '%s': cannot open the subscription: %s",
			       c->cfg->name, se.msg);
	s->id = id;
	s->state = SUB_OPENING;
	uv_timer_start(&s->timer, listen_on_timer, (uint64_t)mcp_client_timeout(c), 0);
	return 0;
}

int mcp_client_listen(struct mcp_client *c, const struct mcp_listen_filter *f, struct err *e)
{
	if (!c->connected || c->stage != ST_OPEN)
		return err_set(e, -ENOTCONN, "server '%s': subscribe after connecting",
			       c->cfg->name);
	if (!c->modern)
		return err_set(e, -ENOTSUP, "server '%s' speaks %s, which has no "
			       "subscriptions/listen (its list changes arrive without one)",
			       c->cfg->name, c->version);
	json_t *filter = json_object();
	if (!filter)
		return err_set(e, -ENOMEM, "out of memory");
	if (f->tools)
		json_object_set_new(filter, "toolsListChanged", json_true());
	if (f->prompts)
		json_object_set_new(filter, "promptsListChanged", json_true());
	if (f->resources)
		json_object_set_new(filter, "resourcesListChanged", json_true());
	size_t n = 0;
	for (const char *const *u = f->resource_uris; u && *u; u++, n++) {
		if (n >= MCP_LISTEN_URIS_MAX || strlen(*u) > 4096) {
			json_decref(filter);
			return err_set(e, -E2BIG, "at most %d resource subscriptions of at most "
				       "4096 bytes each", MCP_LISTEN_URIS_MAX);
		}
		json_t *a = json_object_get(filter, "resourceSubscriptions");
		if (!a) {
			a = json_array();
			json_object_set_new(filter, "resourceSubscriptions", a);
		}
		if (json_array_append_new(a, json_string(*u)) < 0) {
			json_decref(filter);
			return err_set(e, -EINVAL, "resource URI '%.64s' is not UTF-8", *u);
		}
	}
	mcp_client_unlisten(c);
	struct mcp_sub *s = &c->sub;
	s->filter = filter;
	s->want = 1;
	s->failures = 0;
	s->was_open = 0;
	int rc = listen_open(c, e);
	if (rc < 0)
		mcp_client_unlisten(c);
	return rc;
}

void mcp_client_unlisten(struct mcp_client *c)
{
	struct mcp_sub *s = &c->sub;
	listen_cancel(c);
	uv_timer_stop(&s->timer);
	s->state = SUB_IDLE;
	s->want = 0;
	json_decref(s->filter);
	json_decref(s->ack);
	s->filter = s->ack = NULL;
}

json_t *mcp_client_subscription(const struct mcp_client *c)
{
	return c->sub.state == SUB_OPEN ? c->sub.ack : NULL;
}

/* The stream dropped, or no acknowledgment came: reopen after the backoff. */
void mcp_listen_on_failure(struct mcp_client *c, const struct err *why)
{
	struct mcp_sub *s = &c->sub;
	listen_cancel(c);
	uv_timer_stop(&s->timer);
	if (!s->want || c->stage != ST_OPEN)
		return;
	if (c->dead) {
		s->state = SUB_IDLE;
		s->want = 0;
		struct err e = { 0 };
		err_set(&e, c->dead_err.code, "server '%s': subscription ended: %s", c->cfg->name,
			c->dead_err.msg);
		listen_report(c, NULL, e.code, &e);
		return;
	}
	uint64_t d = LISTEN_BACKOFF_FIRST_MS;
	for (int i = 0; i < s->failures && d < LISTEN_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > LISTEN_BACKOFF_MAX_MS)
		d = LISTEN_BACKOFF_MAX_MS;
	/* +-25%, so that many clients of one restarted server do not come back
	 * in step. */
	d = d - d / 4 + uv_hrtime() % (d / 2 + 1);
	s->failures++;
	s->state = SUB_BACKOFF;
	log_info("mcp: server '%s': subscription dropped (%s); reopening in %llu ms",
		 c->cfg->name, why && why->msg[0] ? why->msg : "stream ended",
		 (unsigned long long)d);
	uv_timer_start(&s->timer, listen_on_timer, d, 0);
}

int mcp_listen_is_ours(struct mcp_client *c, json_t *id)
{
	return c->sub.id && json_is_integer(id) && json_integer_value(id) == c->sub.id;
}

/* The server answered the listen request: it ended the subscription. */
void mcp_listen_on_response(struct mcp_client *c, json_t *error)
{
	struct mcp_sub *s = &c->sub;
	s->id = 0;
	uv_timer_stop(&s->timer);
	s->state = SUB_IDLE;
	s->want = 0;
	struct err e = { 0 };
	if (error) {
		json_t *msg = json_object_get(error, "message");
		err_set(&e, -EPROTO, "server '%s' refused subscriptions/listen: error %lld: %.200s",
			c->cfg->name, (long long)json_integer_value(json_object_get(error, "code")),
			json_is_string(msg) ? json_string_value(msg) : "(no message)");
		log_warn("mcp: %s", e.msg);
		listen_report(c, NULL, -EPROTO, &e);
		return;
	}
	log_info("mcp: server '%s' ended the subscription", c->cfg->name);
	listen_report(c, NULL, 0, NULL);
}

/* Whether a notification belongs to the current subscription, or to none (not
 * stamped); a stamped one of another subscription returns 0. */
int mcp_listen_accepts(struct mcp_client *c, json_t *params)
{
	json_t *meta = json_object_get(params, "_meta");
	json_t *sid = json_object_get(meta, SUB_ID_KEY);
	if (!sid)
		return 1;
	return mcp_listen_is_ours(c, sid);
}

void mcp_listen_on_ack(struct mcp_client *c, json_t *params)
{
	struct mcp_sub *s = &c->sub;
	json_t *sid = json_object_get(json_object_get(params, "_meta"), SUB_ID_KEY);
	json_t *honored = json_object_get(params, "notifications");
	if (!mcp_listen_is_ours(c, sid) || !json_is_object(honored)) {
		log_debug("mcp: acknowledgment of no open subscription, dropped");
		return;
	}
	uv_timer_stop(&s->timer);
	json_decref(s->ack);
	s->ack = json_deep_copy(honored);
	s->state = SUB_OPEN;
	s->failures = 0;
	static const char *const kinds[] = { "toolsListChanged", "promptsListChanged",
					     "resourcesListChanged", "resourceSubscriptions" };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (json_object_get(s->filter, kinds[i]) && !json_object_get(honored, kinds[i]))
			log_info("mcp: server '%s' does not honour %s on its subscription",
				 c->cfg->name, kinds[i]);
	if (s->was_open)
		c->tools_fresh_until = 0;   /* changes while we were away went unnoticed */
	s->was_open = 1;
	listen_report(c, s->ack, 0, NULL);
}
