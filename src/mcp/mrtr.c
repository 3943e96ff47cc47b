/* Multi-round-trip requests (2026-07-28, SEP-2322): a server that needs
 * something from the client before it can answer a request (an elicitation, a
 * sampling, the roots) answers it with resultType "input_required", its
 * inputRequests ({key: {method, params}}) and optionally an opaque
 * requestState. The client answers each input request through the same
 * handlers as server-to-client requests of the earlier eras (on_request for
 * elicitation and sampling, the configured roots for roots/list), then sends
 * the request again with a fresh JSON-RPC id, "inputResponses" {key: result}
 * and the requestState echoed byte for byte (and none when the server sent
 * none).
 *
 * Isolation: a round belongs to its call alone (its own copy of the request;
 * the answers are collected on the call and the responders point at it), so
 * parallel requests never see each other's inputResponses or requestState.
 * A server cannot keep a request going forever: at most MCP_MRTR_ROUNDS_MAX
 * rounds. The call's timeout bounds the server's time over all rounds; it is
 * paused while the client's own handlers answer (a person may take minutes
 * over an elicitation), which inputTimeoutMs bounds instead. A method the
 * client did not declare a capability for fails the call with the reason
 * rather than being answered with something made up. */
#include "mcp/client_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct mcp_mrtr {
	json_t *responses;        /* key -> result */
	json_t *state;            /* owned or NULL: the server's requestState */
	int pending;              /* answers still to come */
	int dispatching;          /* inside the loop that hands requests out */
	int failed;
};

/* Ends k with the reason (a struct err filled by the caller's err_set). */
#define mrtr_fail(k, rc, ...) do {                              \
		struct err fe_ = { 0 };                         \
		err_set(&fe_, (rc), __VA_ARGS__);               \
		mcp_call_finish((k), (rc), NULL, &fe_);         \
	} while (0)

/* Every answer is in: the retry. */
static void mrtr_retry(struct mcp_call *k)
{
	struct mcp_mrtr *m = k->mrtr;
	json_t *params = json_object_get(k->msg, "params");
	json_object_set(params, "inputResponses", m->responses);
	if (m->state)
		json_object_set(params, "requestState", m->state);
	else
		json_object_del(params, "requestState");
	k->mrtr = NULL;
	json_decref(m->responses);
	json_decref(m->state);
	free(m);
	struct err e = { 0 };
	if (mcp_call_send(k->c, k, &e) < 0)
		mcp_call_finish(k, e.code, NULL, &e);
}

void mcp_mrtr_answer(struct mcp_call *k, const char *key, json_t *result, int code,
		     const char *message)
{
	struct mcp_mrtr *m = k->mrtr;
	if (!m || m->failed) {
		json_decref(result);
		return;
	}
	m->pending--;
	if (!result) {
		m->failed = 1;
		json_decref(result);
		struct err e = { 0 };
		err_set(&e, -EPROTO, "%s: the server asked for input '%.64s' and the client "
			"could not give it (%d: %.200s)", k->method, key, code,
			message ? message : "no reason");
		mcp_call_finish(k, -EPROTO, NULL, &e);
		return;
	}
	json_object_set_new(m->responses, key, result);
	if (m->pending == 0 && !m->dispatching)
		mrtr_retry(k);
}

/* The handlers took longer than inputTimeoutMs: the call fails (the server
 * holds nothing for it between rounds, so there is nothing to cancel). */
static void mrtr_on_input_timeout(uv_timer_t *t)
{
	struct mcp_call *k = t->data;
	mrtr_fail(k, -ETIMEDOUT, "%s: the client's handler did not answer the server's input "
		  "request within %ld ms (hint: raise \"inputTimeoutMs\")", k->method,
		  mcp_client_input_timeout(k->c));
}

void mcp_mrtr_on_input_required(struct mcp_call *k, json_t *result)
{
	struct mcp_client *c = k->c;
	json_t *reqs = json_object_get(result, "inputRequests");
	if (!json_is_object(reqs) || json_object_size(reqs) == 0) {
		mrtr_fail(k, -EPROTO, "%s: the server said input_required without any "
			  "inputRequests", k->method);
		return;
	}
	if (++k->rounds > MCP_MRTR_ROUNDS_MAX) {
		mrtr_fail(k, -ELOOP, "%s: the server asked for input more than %d times; "
			  "giving up", k->method, MCP_MRTR_ROUNDS_MAX);
		return;
	}
	/* The server's clock stops here; what is left goes to the retry. */
	long used = (long)(uv_now(c->loop) - k->armed_at);
	k->left_ms = k->armed_ms - used > 0 ? k->armed_ms - used : 1;
	uv_timer_stop(&k->timer);
	struct mcp_mrtr *m = calloc(1, sizeof(*m));
	if (!m || !(m->responses = json_object())) {
		free(m);
		mrtr_fail(k, -ENOMEM, "%s: out of memory", k->method);
		return;
	}
	json_t *state = json_object_get(result, "requestState");
	m->state = state ? json_incref(state) : NULL;
	k->mrtr = m;
	m->dispatching = 1;
	const char *key;
	json_t *req;
	json_object_foreach(reqs, key, req) {
		const char *method = json_string_value(json_object_get(req, "method"));
		json_t *params = json_object_get(req, "params");
		if (!method) {
			mrtr_fail(k, -EPROTO, "%s: input request '%.64s' has no method", k->method,
				  key);
			return;
		}
		if (strlen(key) >= sizeof(((struct mcp_responder *)0)->key)) {
			mrtr_fail(k, -EPROTO, "%s: an input request key is too long (%.64s...)",
				  k->method, key);
			return;
		}
		if (!strcmp(method, "roots/list")) {
			if (!c->roots) {
				mrtr_fail(k, -EPROTO, "%s: the server asked for roots, but none are "
					  "configured (hint: add \"roots\" to the server's config)",
					  k->method);
				return;
			}
			json_object_set_new(m->responses, key, json_pack("{s:O}", "roots", c->roots));
			continue;
		}
		if (!c->ev.on_request || (strcmp(method, "elicitation/create") &&
					  strcmp(method, "sampling/createMessage"))) {
			mrtr_fail(k, -EPROTO, "%s: the server asked for '%.64s', which this client "
				  "does not offer", k->method, method);
			return;
		}
		struct mcp_responder *r = mcp_responder_new(c, json_null(), k, key);
		if (!r) {
			mrtr_fail(k, -ENOMEM, "%s: out of memory", k->method);
			return;
		}
		m->pending++;
		c->ev.on_request(c->ev.opaque, r, method, params);
		if (k->mrtr != m || m->failed)
			return;   /* the answer failed the call */
	}
	m->dispatching = 0;
	if (m->pending == 0)
		mrtr_retry(k);
	else
		uv_timer_start(&k->timer, mrtr_on_input_timeout,
			       (uint64_t)mcp_client_input_timeout(c), 0);
}

void mcp_mrtr_release(struct mcp_call *k)
{
	struct mcp_mrtr *m = k->mrtr;
	for (struct mcp_responder *r = k->c->responders; r; r = r->next)
		if (r->is_mrtr && r->call == k)
			r->call = NULL;   /* its answer is dropped */
	if (!m)
		return;
	k->mrtr = NULL;
	json_decref(m->responses);
	json_decref(m->state);
	free(m);
}
