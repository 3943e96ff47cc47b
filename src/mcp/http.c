/* Streamable HTTP transport (libcurl on the caller's loop, through src/net).
 *
 * Every client message is one POST. The reply is either a JSON body (one
 * message or a batch), an SSE stream carrying the response plus any related
 * requests and notifications, or 202 for notifications and responses. The
 * session id the server hands out on initialize is echoed on every later
 * request, with MCP-Protocol-Version once negotiated. A stream that ends before
 * its response (the server may close it to free resources, after a priming
 * event with an id) is resumed with a GET carrying Last-Event-ID, after the
 * server's `retry` delay. A 404, or a 400 naming the session, on a request that
 * carried a session id means the session is gone: reported as -ESTALE so the
 * session layer can re-initialize once. The session is DELETEd on close.
 *
 * curl callbacks only queue what they parse; messages are handed to the
 * session after curl returns (net's after-action hook), so the session may
 * send, or close us, from its handlers.
 *
 * OAuth (oauth.h): unless the config gives a static token, every exchange
 * carries the server's current access token, and a request answered 401 or
 * 403 is parked while mcp_oauth gets a better one, then sent again (at most
 * OAUTH_AUTH_ATTEMPTS_MAX times, so a server that keeps refusing cannot loop
 * us). A request also waits before its first send while the token store is
 * read or an expired token is refreshed. */
#include "mcp/mcp.h"
#include "mcp/oauth.h"
#include "mcp/tooldefs.h"
#include "mcp/wire.h"
#include "net/net.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/b64.h"
#include "core/log.h"

#define HTTP_RESUME_MAX 5
#define HTTP_RETRY_DEFAULT_MS 1000
#define HTTP_RETRY_MAX_MS 60000
#define HTTP_INBOX_MAX 10000
#define HTTP_CLOSE_WAIT_MS 1500

enum req_kind { REQ_POST, REQ_GET, REQ_DELETE };

struct http_tp;

struct http_req {
	struct http_tp *h;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	enum req_kind kind;
	json_t *id;               /* owned: the request id this exchange must answer */
	int is_request;
	int standalone;           /* the GET stream for server-initiated messages */
	int ctype_known;
	int is_sse;
	int got_response;
	int sent_session;
	int active;               /* added to the multi, not finished yet */
	long status;
	struct buf json;
	struct net_sse sse;
	char session[256];
	char www_auth[2048];      /* WWW-Authenticate of a 401/403 */
	json_t *msg;              /* owned (POST): sent again after an authorization */
	json_t *extra;            /* owned or NULL: its extra headers */
	int auth_tries;
	char *sent_token;         /* owned or NULL: the bearer it carried */
	struct http_req *next;
};

struct http_tp {
	struct mcp_transport t;
	struct net_curl *net;
	uv_timer_t resume_timer;
	uv_timer_t listen_timer;
	int open_handles;
	int listen_attempts;
	char listen_last_id[256];
	char *url;
	char **cfg_headers;       /* borrowed from the config */
	char session[256];
	char version[32];
	struct http_req *reqs;
	json_t *inbox;            /* parsed messages waiting for dispatch */
	json_t *failures;         /* [id, code, why] waiting for dispatch */
	/* Resumption of one broken stream. */
	json_t *resume_id;
	char resume_last_id[256];
	int resume_attempts;
	int resume_armed;
	int closing;
	void (*close_done)(void *opaque);
	void *close_opaque;
	char name[64];
	struct mcp_oauth *oauth;  /* NULL: no OAuth (a static token, or none) */
	struct http_park *parked;
};

/* A request waiting for mcp_oauth (the waiter's opaque). */
struct http_park {
	struct http_tp *h;
	json_t *msg;
	json_t *extra;
	int tries;
	int cancelled;            /* its request was cancelled meanwhile: not sent */
	int announced;            /* on_authorizing(1) told the client; (0) follows */
	struct http_park *next;
};

static void http_deliver(struct http_tp *h);
static void http_on_done(void *opaque, CURL *easy, CURLcode res);

/* ---- queueing from curl callbacks ---- */

static void http_queue_failure(struct http_tp *h, json_t *id, int code, const char *why)
{
	/* Queued, not called: failures reach the session after curl returned. */
	json_t *f = json_pack("[Ois]", id ? id : json_null(), code, why);
	if (f)
		json_array_append_new(h->failures, f);
}

static void http_queue_message(struct http_req *r, json_t *msg)
{
	struct http_tp *h = r->h;
	if (json_array_size(h->inbox) >= HTTP_INBOX_MAX) {
		log_warn("mcp: server '%s' sent too many messages at once; dropping", h->name);
		return;
	}
	/* Note a response to the request this exchange carries. */
	if (r->id && json_is_object(msg) && !json_object_get(msg, "method") &&
	    json_equal(json_object_get(msg, "id"), r->id))
		r->got_response = 1;
	json_array_append(h->inbox, msg);
}

static void http_queue_body(struct http_req *r, json_t *v)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m)
			http_queue_message(r, m);
	} else {
		http_queue_message(r, v);
	}
}

static void http_on_sse_event(void *opaque, const struct net_sse_event *ev)
{
	struct http_req *r = opaque;
	struct err e = { 0 };
	if (strcmp(ev->event, "message")) {
		log_debug("mcp: ignoring SSE event of type '%s'", ev->event);
		return;
	}
	json_t *v = mcp_json_parse(ev->data, ev->data_len, &e);
	if (!v) {
		log_warn("mcp: server '%s' sent an SSE event that is not JSON, skipped (%s)",
			 r->h->name, e.msg);
		return;
	}
	http_queue_body(r, v);
	json_decref(v);
}

static size_t http_on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_req *r = ud;
	size_t n = size * nmemb;
	if (!r->ctype_known) {
		r->is_sse = net_curl_is_event_stream(r->easy, &r->status);
		r->ctype_known = 1;
	}
	if (r->is_sse) {
		net_sse_feed(&r->sse, p, n);
		return n;
	}
	if (buf_append(&r->json, p, n) < 0)
		return 0;   /* over the cap: abort this transfer */
	return n;
}

static size_t http_on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_req *r = ud;
	size_t n = size * nmemb;
	static const char key[] = "mcp-session-id:";
	static const char wa[] = "www-authenticate:";
	if (n > sizeof(wa) - 1 && !strncasecmp(p, wa, sizeof(wa) - 1)) {
		size_t vl = n - (sizeof(wa) - 1);
		const char *v = p + sizeof(wa) - 1;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
			vl--;
		if (vl >= sizeof(r->www_auth))
			vl = sizeof(r->www_auth) - 1;
		memcpy(r->www_auth, v, vl);
		r->www_auth[vl] = '\0';
	}
	if (n > sizeof(key) - 1 && !strncasecmp(p, key, sizeof(key) - 1)) {
		const char *v = p + sizeof(key) - 1;
		size_t vl = n - (sizeof(key) - 1);
		while (vl > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		/* Visible ASCII only, as the spec requires; anything else is refused. */
		int ok = vl > 0 && vl < sizeof(r->session);
		for (size_t i = 0; ok && i < vl; i++)
			ok = v[i] > 0x20 && v[i] < 0x7f;
		if (ok) {
			memcpy(r->session, v, vl);
			r->session[vl] = '\0';
		} else {
			log_warn("mcp: ignoring an invalid Mcp-Session-Id header");
		}
	}
	return n;
}

static void http_handle_closed(uv_handle_t *hd);

/* net's after-action hook: every batch of curl activity ends here. */
static void http_after_action(void *opaque)
{
	http_deliver(opaque);
}

/* ---- requests ---- */

static void http_req_free(struct http_req *r)
{
	if (!r)
		return;
	if (r->easy) {
		if (r->active)
			net_curl_remove(r->h->net, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->hdrs);
	free(r->body);
	json_decref(r->id);
	json_decref(r->msg);
	json_decref(r->extra);
	if (r->sent_token) {
		memset(r->sent_token, 0, strlen(r->sent_token));
		free(r->sent_token);
	}
	buf_free(&r->json);
	net_sse_free(&r->sse);
	free(r);
}

static struct curl_slist *http_add_header(struct curl_slist *l, const char *name, const char *v)
{
	char line[4200];
	snprintf(line, sizeof(line), "%s%s", name, v);
	struct curl_slist *n = curl_slist_append(l, line);
	if (!n) {
		curl_slist_free_all(l);
		return NULL;
	}
	return n;
}

/* A header whose value is encoded as the 2026-07-28 binding says
 * (tooldefs.c); an empty value goes out as "Name;", curl's way to send a
 * header with nothing after the colon. */
static struct curl_slist *http_add_param_header(struct curl_slist *l, const char *name,
						const char *v)
{
	char enc[1024];
	size_t n = strlen(name);
	if (!*v) {
		char line[128];
		snprintf(line, sizeof(line), "%.*s;", (int)(n > 2 ? n - 2 : n), name);
		struct curl_slist *x = curl_slist_append(l, line);
		if (!x)
			curl_slist_free_all(l);
		return x;
	}
	if (mcp_header_encode(v, strlen(v), enc, sizeof(enc)) < 0)
		return l;   /* too long for a header: the body still carries it */
	return http_add_header(l, name, enc);
}

/* The 2026-07-28 binding repeats the method, and the name a request acts on,
 * in headers so that intermediaries can route without parsing the body. */
static struct curl_slist *http_add_modern_headers(struct curl_slist *l, json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	if (!method || !l)
		return l;
	l = http_add_param_header(l, "Mcp-Method: ", method);
	json_t *params = json_object_get(msg, "params");
	const char *field = !strcmp(method, "tools/call") || !strcmp(method, "prompts/get") ?
		"name" : !strcmp(method, "resources/read") ? "uri" : NULL;
	const char *name = field ? json_string_value(json_object_get(params, field)) : NULL;
	if (l && name)
		l = http_add_param_header(l, "Mcp-Name: ", name);
	return l;
}

/* Starts one exchange; returns the request (owned by h->reqs) or NULL with e. */
static struct http_req *http_start(struct http_tp *h, enum req_kind kind, json_t *msg,
				   json_t *extra, const char *last_id, struct err *e)
{
	struct http_req *r = calloc(1, sizeof(*r));
	if (!r) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	r->h = h;
	r->kind = kind;
	buf_init(&r->json, MCP_BODY_MAX);
	net_sse_init(&r->sse, MCP_BODY_MAX, http_on_sse_event, r);
	r->easy = curl_easy_init();
	if (!r->easy)
		goto nomem;
	struct curl_slist *hl = NULL;
	if (kind == REQ_POST) {
		hl = curl_slist_append(hl, "Content-Type: application/json");
		if (hl)
			hl = http_add_header(hl, "Accept: ", "application/json, text/event-stream");
	} else if (kind == REQ_GET) {
		hl = curl_slist_append(hl, "Accept: text/event-stream");
		if (hl && last_id && *last_id)
			hl = http_add_header(hl, "Last-Event-ID: ", last_id);
	} else {
		hl = curl_slist_append(hl, "Accept: application/json, text/event-stream");
	}
	if (hl && h->session[0]) {
		hl = http_add_header(hl, "Mcp-Session-Id: ", h->session);
		r->sent_session = 1;
	}
	if (hl && h->version[0])
		hl = http_add_header(hl, "MCP-Protocol-Version: ", h->version);
	if (hl && msg && !strcmp(h->version, MCP_VERSION_MODERN))
		hl = http_add_modern_headers(hl, msg);
	size_t xi;
	json_t *xh;
	json_array_foreach(extra, xi, xh) {
		if (!hl)
			break;
		char name[96];
		snprintf(name, sizeof(name), "%s: ", json_string_value(json_array_get(xh, 0)));
		hl = http_add_param_header(hl, name, json_string_value(json_array_get(xh, 1)));
	}
	for (char **p = h->cfg_headers; hl && p && *p; p++)
		hl = http_add_header(hl, "", *p);
	const char *bearer = h->oauth ? mcp_oauth_bearer(h->oauth) : NULL;
	if (hl && bearer) {
		hl = http_add_header(hl, "Authorization: Bearer ", bearer);
		if (!(r->sent_token = strdup(bearer)))
			goto nomem;
	}
	if (!hl)
		goto nomem;
	r->hdrs = hl;
	if (msg) {
		r->body = json_dumps(msg, JSON_COMPACT);
		if (!r->body)
			goto nomem;
		if (kind == REQ_POST && h->oauth) {
			r->msg = json_incref(msg);
			r->extra = json_incref(extra);
		}
		json_t *method = json_object_get(msg, "method");
		json_t *id = json_object_get(msg, "id");
		if (method && id) {
			r->is_request = 1;
			r->id = json_incref(id);
		}
	}
	CURL *ez = r->easy;
	curl_easy_setopt(ez, CURLOPT_URL, h->url);
	curl_easy_setopt(ez, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, http_on_write);
	curl_easy_setopt(ez, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(ez, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(ez, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(ez, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ez, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(ez, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(ez, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(ez, CURLOPT_USERAGENT, "ironclaw-mcp/1");
	curl_easy_setopt(ez, CURLOPT_TCP_NODELAY, 1L);
	/* A long-lived stream (subscriptions/listen) to a host that vanished
	 * without a FIN ends instead of hanging forever. */
	curl_easy_setopt(ez, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(ez, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(ez, CURLOPT_TCP_KEEPINTVL, 10L);
	if (kind == REQ_POST) {
		curl_easy_setopt(ez, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(ez, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	} else if (kind == REQ_DELETE) {
		curl_easy_setopt(ez, CURLOPT_CUSTOMREQUEST, "DELETE");
		curl_easy_setopt(ez, CURLOPT_TIMEOUT_MS, (long)HTTP_CLOSE_WAIT_MS);
	}
	if (net_curl_add(h->net, ez, http_on_done, r, e) < 0) {
		http_req_free(r);
		return NULL;
	}
	r->active = 1;
	r->next = h->reqs;
	h->reqs = r;
	return r;
nomem:
	http_req_free(r);
	err_set(e, -ENOMEM, "cannot start an HTTP request (out of memory)");
	return NULL;
}

static void http_on_resume_timer(uv_timer_t *t)
{
	struct http_tp *h = t->data;
	struct err e = { 0 };
	h->resume_armed = 0;
	if (!h->resume_id || h->closing)
		return;
	struct http_req *r = http_start(h, REQ_GET, NULL, NULL, h->resume_last_id, &e);
	if (!r) {
		http_queue_failure(h, h->resume_id, e.code, e.msg);
		json_decref(h->resume_id);
		h->resume_id = NULL;
	} else {
		/* The GET carries the wait for this id. */
		r->id = json_incref(h->resume_id);
	}
	http_deliver(h);
}

/* A stream ended before the response to r->id: resume it, or give up. */
static void http_resume(struct http_tp *h, struct http_req *r)
{
	const char *last = r->sse.has_id ? r->sse.last_id : NULL;
	/* The 2026-07-28 binding has no resumption: the request just failed. */
	if (!strcmp(h->version, MCP_VERSION_MODERN))
		last = NULL;
	/* It goes back in a header: visible ASCII only (no control bytes). */
	for (const char *p = last; p && *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			log_warn("mcp: the server's event id is not visible ASCII; not resuming");
			last = NULL;
			break;
		}
	if (!last || h->resume_attempts >= HTTP_RESUME_MAX || h->closing) {
		http_queue_failure(h, r->id, -EPROTO, last ? "the server's event stream kept "
				   "ending before the response" : "the server closed the event "
				   "stream before sending the response");
		return;
	}
	long wait = r->sse.retry_ms >= 0 ? r->sse.retry_ms : HTTP_RETRY_DEFAULT_MS;
	if (wait > HTTP_RETRY_MAX_MS)
		wait = HTTP_RETRY_MAX_MS;
	if (h->resume_id && !json_equal(h->resume_id, r->id)) {
		http_queue_failure(h, r->id, -EPROTO, "a second broken event stream while "
				   "another one is being resumed");
		return;
	}
	json_decref(h->resume_id);
	h->resume_id = json_incref(r->id);
	snprintf(h->resume_last_id, sizeof(h->resume_last_id), "%s", last);
	h->resume_attempts++;
	h->resume_armed = 1;
	log_info("mcp: event stream ended early; resuming after %ld ms from event '%s'", wait,
		 last);
	uv_timer_start(&h->resume_timer, http_on_resume_timer, (uint64_t)wait, 0);
}

static void http_listen_start(struct http_tp *h)
{
	struct err e = { 0 };
	if (h->closing)
		return;
	struct http_req *r = http_start(h, REQ_GET, NULL, NULL, h->listen_last_id, &e);
	if (!r) {
		log_debug("mcp: cannot open the server's event stream: %s", e.msg);
		return;
	}
	r->standalone = 1;
}

static void http_on_listen_timer(uv_timer_t *t)
{
	http_listen_start(t->data);
}

/* The standalone stream ended: a server without one answers 405; a stream that
 * ended cleanly is re-opened after the server's retry delay, a few times. */
static void http_listen_ended(struct http_tp *h, struct http_req *r, CURLcode res)
{
	if (h->closing || res != CURLE_OK || r->status != 200 || !r->is_sse) {
		log_debug("mcp: no server event stream (HTTP %ld)", r->status);
		return;
	}
	if (r->sse.has_id)
		snprintf(h->listen_last_id, sizeof(h->listen_last_id), "%s", r->sse.last_id);
	if (++h->listen_attempts > HTTP_RESUME_MAX)
		return;
	long wait = r->sse.retry_ms >= 0 ? r->sse.retry_ms : HTTP_RETRY_DEFAULT_MS;
	uv_timer_start(&h->listen_timer, http_on_listen_timer,
		       (uint64_t)(wait > HTTP_RETRY_MAX_MS ? HTTP_RETRY_MAX_MS : wait), 0);
}

static int http_body_mentions_session(struct http_req *r)
{
	const char *p = (const char *)r->json.data;
	if (!p)
		return 0;
	return strcasestr(p, "session") != NULL;
}

static void http_delete_done(struct http_tp *h);

static void http_park_free(struct http_tp *h, struct http_park *p)
{
	for (struct http_park **pp = &h->parked; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	json_decref(p->msg);
	json_decref(p->extra);
	free(p);
}

/* mcp_oauth answered a parked request: send it again, or fail it. */
static void http_on_authorized(void *opaque, int rc, const struct err *oe)
{
	struct http_park *p = opaque;
	struct http_tp *h = p->h;
	struct err e = { 0 };
	json_t *id = json_object_get(p->msg, "id");
	if (p->cancelled) {
		http_park_free(h, p);
		return;
	}
	if (rc == 0) {
		struct http_req *r = http_start(h, REQ_POST, p->msg, p->extra, NULL, &e);
		if (r)
			r->auth_tries = p->tries;
		if (r && id && p->announced && h->t.ev.on_authorizing)
			h->t.ev.on_authorizing(h->t.ev.opaque, id, 0);
		else if (!r && id)
			http_queue_failure(h, id, e.code, e.msg);
	} else if (id) {
		http_queue_failure(h, id, oe->code, oe->msg);
	}
	http_park_free(h, p);
	http_deliver(h);
}

/* Parks msg until mcp_oauth has a token for it (status 0: before its first
 * send). Returns 0, or -errno when it could not be parked. */
static int http_park(struct http_tp *h, json_t *msg, json_t *extra, int tries, long status,
		     const char *www_auth, const char *sent)
{
	struct err e = { 0 };
	struct http_park *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->h = h;
	p->msg = json_incref(msg);
	p->extra = json_incref(extra);
	p->tries = tries;
	p->next = h->parked;
	h->parked = p;
	int rc = mcp_oauth_need(h->oauth, status, www_auth && *www_auth ? www_auth : NULL, sent,
				http_on_authorized, p, &e);
	if (rc < 0) {
		log_warn("mcp: %s", e.msg);
		http_park_free(h, p);
		return rc;
	}
	/* After a 401/403 (never inside send): the wait may be a person's. */
	json_t *id = json_object_get(msg, "id");
	if (status && id && h->t.ev.on_authorizing) {
		p->announced = 1;
		h->t.ev.on_authorizing(h->t.ev.opaque, id, 1);
	}
	return 0;
}

/* 401/403 that OAuth cannot (or may no longer) answer. What the server names
 * (RFC 9728's resource_metadata, a scope) goes into the error. Only printable
 * ASCII of the server's header reaches the message. */
static void http_auth_failure(struct http_tp *h, struct http_req *r, long st)
{
	char md[300] = "", scope[200] = "";
	const char *p = strcasestr(r->www_auth, "resource_metadata=\"");
	if (p) {
		p += 19;
		size_t i = 0;
		while (p[i] && p[i] != '"' && i < sizeof(md) - 1 && p[i] > 0x20 && p[i] < 0x7f) {
			md[i] = p[i];
			i++;
		}
		md[i] = '\0';
	}
	p = strcasestr(r->www_auth, "scope=\"");
	if (p) {
		p += 7;
		size_t i = 0;
		while (p[i] && p[i] != '"' && i < sizeof(scope) - 1 && p[i] >= 0x20 && p[i] < 0x7f) {
			scope[i] = p[i];
			i++;
		}
		scope[i] = '\0';
	}
	struct err e = { 0 };
	if (h->oauth)
		err_set(&e, -EACCES, "HTTP %ld from %s: still refused after %d authorizations%s%s "
			"(hint: the account may lack the permission; `ironclaw mcp login --server "
			"%s` starts over)", st, h->url, r->auth_tries, scope[0] ? "; scope: " : "",
			scope, h->name);
	else
		err_set(&e, -EACCES, "HTTP %ld from %s: the server requires authorization%s%s%s%s%s "
			"(hint: the configured token was refused; check \"bearerTokenEnv\", or drop "
			"it to use OAuth with `ironclaw mcp login`)", st,
			h->url, md[0] ? " (protected resource metadata: " : "", md, md[0] ? ")" : "",
			scope[0] ? "; scope: " : "", scope);
	http_queue_failure(h, r->id, e.code, e.msg);
}

static void http_finish(struct http_tp *h, struct http_req *r, CURLcode res)
{
	struct err e = { 0 };
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->session[0] && r->kind == REQ_POST && strcmp(r->session, h->session))
		snprintf(h->session, sizeof(h->session), "%s", r->session);
	if (r->kind == REQ_DELETE)
		return;
	if (r->standalone) {
		http_listen_ended(h, r, res);
		return;
	}
	if (res != CURLE_OK && r->is_sse && r->id && !r->got_response && r->sse.has_id &&
	    res != CURLE_WRITE_ERROR) {
		/* The stream broke mid-way after giving an event id: resumable. */
		http_resume(h, r);
		return;
	}
	if (res != CURLE_OK) {
		err_set(&e, res == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EPIPE,
			"HTTP request to %s failed: %s", h->url, res == CURLE_WRITE_ERROR ?
			"reply larger than the cap" : curl_easy_strerror(res));
		if (r->id)
			http_queue_failure(h, r->id, e.code, e.msg);
		else if (r->kind == REQ_POST)
			log_warn("mcp: %s", e.msg);
		return;
	}
	long st = r->status;
	if ((st == 404 || (st == 400 && http_body_mentions_session(r))) && r->sent_session) {
		if (r->id) {
			err_set(&e, -ESTALE, "the server ended the session (HTTP %ld)", st);
			http_queue_failure(h, r->id, e.code, e.msg);
		}
		return;
	}
	if ((st == 401 || st == 403) && r->id) {
		if (h->oauth && r->msg && r->auth_tries < OAUTH_AUTH_ATTEMPTS_MAX &&
		    http_park(h, r->msg, r->extra, r->auth_tries + 1, st, r->www_auth,
			      r->sent_token) == 0)
			return;
		http_auth_failure(h, r, st);
		return;
	}
	if (st >= 300) {
		/* A JSON-RPC error in the body answers the request; pass it on. */
		struct err je = { 0 };
		json_t *v = r->json.len ? mcp_json_parse((const char *)r->json.data, r->json.len,
							 &je) : NULL;
		if (v && json_is_object(v) && json_object_get(v, "error") && r->id &&
		    json_equal(json_object_get(v, "id"), r->id)) {
			http_queue_message(r, v);
		} else if (r->id) {
			err_set(&e, -EPROTO, "HTTP %ld from %s%s%.120s", st, h->url,
				r->json.len ? ": " : "", r->json.len ? (char *)r->json.data : "");
			http_queue_failure(h, r->id, e.code, e.msg);
		} else if (r->kind == REQ_POST) {
			log_info("mcp: HTTP %ld for a notification or response", st);
		}
		json_decref(v);
		return;
	}
	if (r->is_sse) {
		/* Flush an event not followed by a blank line at end of stream. */
		net_sse_feed(&r->sse, "\n\n", r->sse.line.len || r->sse.has_data ? 2 : 0);
		if (r->id && !r->got_response)
			http_resume(h, r);
		return;
	}
	if (r->json.len > 0) {
		json_t *v = mcp_json_parse((const char *)r->json.data, r->json.len, &e);
		if (v) {
			http_queue_body(r, v);
			json_decref(v);
		} else if (r->id) {
			http_queue_failure(h, r->id, -EPROTO, e.msg);
			return;
		}
	}
	if (r->id && !r->got_response) {
		err_set(&e, -EPROTO, "HTTP %ld with no response to the request", st);
		http_queue_failure(h, r->id, e.code, e.msg);
	}
}

static void http_unlink(struct http_tp *h, struct http_req *r)
{
	for (struct http_req **pp = &h->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

/* net: one exchange ended (outside curl; the easy handle is out of the multi). */
static void http_on_done(void *opaque, CURL *easy, CURLcode res)
{
	struct http_req *r = opaque;
	struct http_tp *h = r->h;
	(void)easy;
	r->active = 0;
	int was_delete = r->kind == REQ_DELETE;
	http_finish(h, r, res);
	http_unlink(h, r);
	http_req_free(r);
	if (was_delete && h->closing)
		http_delete_done(h);
}

/* Hands queued messages and failures to the session, outside curl. */
static void http_deliver(struct http_tp *h)
{
	while (json_array_size(h->inbox) > 0) {
		json_t *m = json_incref(json_array_get(h->inbox, 0));
		json_array_remove(h->inbox, 0);
		/* A response that ends a resumed wait stops the resumption. */
		if (h->resume_id && !json_object_get(m, "method") &&
		    json_equal(json_object_get(m, "id"), h->resume_id)) {
			json_decref(h->resume_id);
			h->resume_id = NULL;
			h->resume_attempts = 0;
		}
		if (!h->closing)
			h->t.ev.on_message(h->t.ev.opaque, m);
		json_decref(m);
	}
	while (json_array_size(h->failures) > 0) {
		json_t *f = json_incref(json_array_get(h->failures, 0));
		json_array_remove(h->failures, 0);
		json_t *id = json_array_get(f, 0);
		struct err e = { 0 };
		const char *why = json_string_value(json_array_get(f, 2));
		err_set(&e, (int)json_integer_value(json_array_get(f, 1)), "%s",
			why ? why : "HTTP exchange failed");
		if (!h->closing)
			h->t.ev.on_failure(h->t.ev.opaque, json_is_null(id) ? NULL : id, &e);
		json_decref(f);
	}
}

/* ---- transport ops ---- */

static int http_send(struct mcp_transport *t, json_t *msg, json_t *headers, struct err *e)
{
	struct http_tp *h = (struct http_tp *)t;
	if (h->closing)
		return err_set(e, -EPIPE, "the connection to server '%s' is closing", h->name);
	/* Before the token store is read, or while a token is refreshed, wait. */
	if (h->oauth && !mcp_oauth_ready(h->oauth) &&
	    http_park(h, msg, headers, 0, 0, NULL, NULL) == 0)
		return 0;
	/* The transfer starts on the next loop turn (net's 0 ms timer). */
	return http_start(h, REQ_POST, msg, headers, NULL, e) ? 0 : e->code;
}

static int http_cancel(struct mcp_transport *t, long long id)
{
	struct http_tp *h = (struct http_tp *)t;
	for (struct http_req *r = h->reqs; r; r = r->next)
		if (r->kind == REQ_POST && json_is_integer(r->id) &&
		    json_integer_value(r->id) == id) {
			/* Closing the stream is the cancellation (and nothing is queued
			 * for it: the exchange is gone before it finished). */
			http_unlink(h, r);
			http_req_free(r);
			return 1;
		}
	/* Still parked for a token: forget it there. */
	for (struct http_park *p = h->parked; p; p = p->next) {
		json_t *pid = json_object_get(p->msg, "id");
		if (json_is_integer(pid) && json_integer_value(pid) == id) {
			p->cancelled = 1;   /* mcp_oauth holds p until it answers */
			return 1;
		}
	}
	return 0;
}

static void http_listen(struct mcp_transport *t)
{
	struct http_tp *h = (struct http_tp *)t;
	h->listen_attempts = 0;
	h->listen_last_id[0] = '\0';
	http_listen_start(h);
}

static void http_set_version(struct mcp_transport *t, const char *version)
{
	struct http_tp *h = (struct http_tp *)t;
	snprintf(h->version, sizeof(h->version), "%s", version ? version : "");
}

static void http_reset_session(struct mcp_transport *t)
{
	struct http_tp *h = (struct http_tp *)t;
	h->session[0] = '\0';
	h->version[0] = '\0';
}

static unsigned long http_dropped(struct mcp_transport *t)
{
	(void)t;
	return 0;
}

static void http_free(struct http_tp *h)
{
	void (*done)(void *) = h->close_done;
	void *op = h->close_opaque;
	json_decref(h->inbox);
	json_decref(h->failures);
	json_decref(h->resume_id);
	free(h->url);
	free(h);
	if (done)
		done(op);
}

static void http_handle_closed(uv_handle_t *hd)
{
	struct http_tp *h = hd->data;
	if (--h->open_handles == 0)
		http_free(h);
}

static void http_oauth_closed(void *opaque)
{
	struct http_tp *h = opaque;
	h->oauth = NULL;
	if (--h->open_handles == 0)
		http_free(h);
}

static void http_net_closed(void *opaque)
{
	struct http_tp *h = opaque;
	h->net = NULL;
	if (--h->open_handles == 0)
		http_free(h);
}

/* The DELETE ended (answered, failed or timed out by curl): release all. */
static void http_delete_done(struct http_tp *h)
{
	while (h->reqs) {
		struct http_req *r = h->reqs;
		h->reqs = r->next;
		http_req_free(r);
	}
	while (h->parked)
		http_park_free(h, h->parked);
	if (h->oauth)
		mcp_oauth_close(h->oauth, http_oauth_closed, h);
	net_curl_close(h->net, http_net_closed, h);
	uv_close((uv_handle_t *)&h->resume_timer, http_handle_closed);
	uv_close((uv_handle_t *)&h->listen_timer, http_handle_closed);
}

static void http_close(struct mcp_transport *t, void (*done)(void *opaque), void *opaque)
{
	struct http_tp *h = (struct http_tp *)t;
	struct err e = { 0 };
	if (h->closing)
		return;
	h->closing = 1;
	h->close_done = done;
	h->close_opaque = opaque;
	uv_timer_stop(&h->resume_timer);
	uv_timer_stop(&h->listen_timer);
	/* Abort open streams; they have nothing more we wait for. */
	while (h->reqs) {
		struct http_req *r = h->reqs;
		h->reqs = r->next;
		http_req_free(r);
	}
	/* The DELETE is bounded by its own CURLOPT_TIMEOUT_MS. */
	if (!h->session[0] || !http_start(h, REQ_DELETE, NULL, NULL, NULL, &e))
		http_delete_done(h);
}

static const struct mcp_transport_ops http_ops = {
	.send = http_send,
	.set_version = http_set_version,
	.listen = http_listen,
	.cancel = http_cancel,
	.reset_session = http_reset_session,
	.dropped = http_dropped,
	.close = http_close,
};

int mcp_http_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		  const struct mcp_transport_events *ev, struct mcp_transport **out,
		  struct err *e)
{
	struct http_tp *h = calloc(1, sizeof(*h));
	if (!h)
		return err_set(e, -ENOMEM, "out of memory");
	h->t.ops = &http_ops;
	h->t.ev = *ev;
	h->t.loop = loop;
	h->cfg_headers = cfg->headers;
	snprintf(h->name, sizeof(h->name), "%s", cfg->name ? cfg->name : "?");
	h->url = strdup(cfg->url);
	h->inbox = json_array();
	h->failures = json_array();
	if (!h->url || !h->inbox || !h->failures ||
	    net_curl_new(loop, http_after_action, h, &h->net, e) < 0) {
		json_decref(h->inbox);
		json_decref(h->failures);
		free(h->url);
		free(h);
		return e && e->code ? e->code : err_set(e, -ENOMEM, "out of memory");
	}
	uv_timer_init(loop, &h->resume_timer);
	uv_timer_init(loop, &h->listen_timer);
	h->resume_timer.data = h->listen_timer.data = h;
	h->open_handles = 3;   /* two timers and the net multi */
	if (!cfg->oauth_off && mcp_oauth_new(loop, cfg, &h->oauth, e) == 0)
		h->open_handles++;
	else
		h->oauth = NULL;
	*out = &h->t;
	return 0;
}
