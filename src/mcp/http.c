/* Streamable HTTP transport (libcurl's multi interface driven by libuv).
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
 * session after curl returns, so the session may send from its handlers. */
#include "mcp/mcp.h"
#include "mcp/wire.h"

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
	long status;
	struct buf json;
	struct mcp_sse sse;
	char session[256];
	struct http_req *next;
};

struct http_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct http_tp *h;
};

struct http_tp {
	struct mcp_transport t;
	CURLM *multi;
	uv_timer_t timer;
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
	int deleted;
	uint64_t close_started;
	char name[64];
};

static void http_check_done(struct http_tp *h);
static void http_deliver(struct http_tp *h);

/* ---- queueing from curl callbacks ---- */

static void http_queue_failure(struct http_tp *h, json_t *id, int code, const char *why)
{
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

static void http_on_sse_event(void *opaque, const struct mcp_sse_event *ev)
{
	struct http_req *r = opaque;
	char why[200];
	if (strcmp(ev->event, "message")) {
		log_debug("mcp: ignoring SSE event of type '%s'", ev->event);
		return;
	}
	json_t *v = mcp_json_parse(ev->data, ev->data_len, why, sizeof(why));
	if (!v) {
		log_warn("mcp: server '%s' sent an SSE event that is not JSON, skipped (%s)",
			 r->h->name, why);
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
		char *ct = NULL;
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
		r->is_sse = ct && !strncasecmp(ct, "text/event-stream", 17) && r->status < 300;
		r->ctype_known = 1;
	}
	if (r->is_sse) {
		mcp_sse_feed(&r->sse, p, n);
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

/* ---- libuv <-> curl glue ---- */

static void http_handle_closed(uv_handle_t *hd)
{
	struct http_tp *h = hd->data;
	h->open_handles--;
}

static void http_sock_closed(uv_handle_t *hd)
{
	struct http_sock *s = hd->data;
	s->h->open_handles--;
	free(s);
}

static void http_after_action(struct http_tp *h)
{
	http_check_done(h);
	http_deliver(h);
}

static void http_on_poll(uv_poll_t *p, int status, int events)
{
	struct http_sock *s = p->data;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	struct http_tp *h = s->h;
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	http_after_action(h);
}

static int http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_tp *h = userp;
	struct http_sock *s = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, http_sock_closed);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		s->h = h;
		if (uv_poll_init_socket(h->t.loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		h->open_handles++;
		curl_multi_assign(h->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, http_on_poll);
	return 0;
}

static void http_on_timeout(uv_timer_t *t)
{
	struct http_tp *h = t->data;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_after_action(h);
}

static int http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_tp *h = userp;
	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, http_on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- requests ---- */

static void http_req_free(struct http_req *r)
{
	if (!r)
		return;
	if (r->easy) {
		curl_multi_remove_handle(r->h->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->hdrs);
	free(r->body);
	json_decref(r->id);
	buf_free(&r->json);
	mcp_sse_free(&r->sse);
	free(r);
}

static struct curl_slist *http_add_header(struct curl_slist *l, const char *name, const char *v)
{
	char line[1024];
	snprintf(line, sizeof(line), "%s%s", name, v);
	struct curl_slist *n = curl_slist_append(l, line);
	if (!n) {
		curl_slist_free_all(l);
		return NULL;
	}
	return n;
}

/* A header value as the 2026-07-28 HTTP binding carries it: visible ASCII as
 * is, anything else (or edge whitespace) as =?base64?...?= of its UTF-8. */
static struct curl_slist *http_add_param_header(struct curl_slist *l, const char *name,
						const char *v)
{
	size_t n = strlen(v);
	int plain = n > 0 && v[0] != ' ' && v[n - 1] != ' ';
	for (size_t i = 0; plain && i < n; i++)
		plain = (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] < 0x7f;
	if (plain)
		return n < 900 ? http_add_header(l, name, v) : l;
	if (n > 600)
		return l;   /* too long for a header: the body still carries it */
	char enc[820 + 16];
	memcpy(enc, "=?base64?", 9);
	b64_encode((const uint8_t *)v, n, enc + 9);
	strcat(enc, "?=");
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

static int http_start(struct http_tp *h, enum req_kind kind, json_t *msg, const char *last_id,
		      char *why, size_t why_len)
{
	struct http_req *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	r->h = h;
	r->kind = kind;
	buf_init(&r->json, MCP_BODY_MAX);
	mcp_sse_init(&r->sse, MCP_BODY_MAX, http_on_sse_event, r);
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
	for (char **p = h->cfg_headers; hl && p && *p; p++)
		hl = http_add_header(hl, "", *p);
	if (!hl)
		goto nomem;
	r->hdrs = hl;
	if (msg) {
		r->body = json_dumps(msg, JSON_COMPACT);
		if (!r->body)
			goto nomem;
		json_t *method = json_object_get(msg, "method");
		json_t *id = json_object_get(msg, "id");
		if (method && id) {
			r->is_request = 1;
			r->id = json_incref(id);
		}
	}
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "ironclaw-mcp/1");
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	if (kind == REQ_POST) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	} else if (kind == REQ_DELETE) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HTTP_CLOSE_WAIT_MS);
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
		goto nomem;
	r->next = h->reqs;
	h->reqs = r;
	return 0;
nomem:
	http_req_free(r);
	snprintf(why, why_len, "cannot start an HTTP request (out of memory)");
	return -ENOMEM;
}

static void http_on_resume_timer(uv_timer_t *t)
{
	struct http_tp *h = t->data;
	char why[200];
	h->resume_armed = 0;
	if (!h->resume_id || h->closing)
		return;
	int rc = http_start(h, REQ_GET, NULL, h->resume_last_id, why, sizeof(why));
	if (rc < 0) {
		http_queue_failure(h, h->resume_id, rc, why);
		json_decref(h->resume_id);
		h->resume_id = NULL;
	} else {
		/* The GET carries the wait for this id. */
		h->reqs->id = json_incref(h->resume_id);
	}
	http_deliver(h);
}

/* A stream ended before the response to r->id: resume it, or give up. */
static void http_resume(struct http_tp *h, struct http_req *r)
{
	const char *last = r->sse.has_id ? r->sse.last_id : NULL;
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
	char why[100];
	if (h->closing)
		return;
	if (http_start(h, REQ_GET, NULL, h->listen_last_id, why, sizeof(why)) < 0) {
		log_debug("mcp: cannot open the server's event stream: %s", why);
		return;
	}
	h->reqs->standalone = 1;
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

static void http_finish(struct http_tp *h, struct http_req *r, CURLcode res)
{
	char why[300];
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->session[0] && r->kind == REQ_POST && strcmp(r->session, h->session))
		snprintf(h->session, sizeof(h->session), "%s", r->session);
	if (r->kind == REQ_DELETE) {
		h->deleted = 1;
		return;
	}
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
		snprintf(why, sizeof(why), "HTTP request to %s failed: %s", h->url,
			 res == CURLE_WRITE_ERROR ? "reply larger than the cap" :
			 curl_easy_strerror(res));
		if (r->id)
			http_queue_failure(h, r->id, res == CURLE_COULDNT_CONNECT ? -ECONNREFUSED :
					   -EPIPE, why);
		else if (r->kind == REQ_POST)
			log_warn("mcp: %s", why);
		return;
	}
	long st = r->status;
	if ((st == 404 || (st == 400 && http_body_mentions_session(r))) && r->sent_session) {
		if (r->id) {
			snprintf(why, sizeof(why), "the server ended the session (HTTP %ld)", st);
			http_queue_failure(h, r->id, -ESTALE, why);
		}
		return;
	}
	if (st >= 300) {
		/* A JSON-RPC error in the body answers the request; pass it on. */
		char jwhy[100];
		json_t *v = r->json.len ? mcp_json_parse((const char *)r->json.data, r->json.len,
							 jwhy, sizeof(jwhy)) : NULL;
		if (v && json_is_object(v) && json_object_get(v, "error") && r->id &&
		    json_equal(json_object_get(v, "id"), r->id)) {
			http_queue_message(r, v);
		} else if (r->id) {
			snprintf(why, sizeof(why), "HTTP %ld from %s%s%.120s", st, h->url,
				 r->json.len ? ": " : "", r->json.len ? (char *)r->json.data : "");
			http_queue_failure(h, r->id, -EPROTO, why);
		} else if (r->kind == REQ_POST) {
			log_info("mcp: HTTP %ld for a notification or response", st);
		}
		json_decref(v);
		return;
	}
	if (r->is_sse) {
		/* Flush an event not followed by a blank line at end of stream. */
		mcp_sse_feed(&r->sse, "\n\n", r->sse.line.len || r->sse.has_data ? 2 : 0);
		if (r->id && !r->got_response)
			http_resume(h, r);
		return;
	}
	if (r->json.len > 0) {
		json_t *v = mcp_json_parse((const char *)r->json.data, r->json.len, why, sizeof(why));
		if (v) {
			http_queue_body(r, v);
			json_decref(v);
		} else if (r->id) {
			http_queue_failure(h, r->id, -EPROTO, why);
			return;
		}
	}
	if (r->id && !r->got_response) {
		snprintf(why, sizeof(why), "HTTP %ld with no response to the request", st);
		http_queue_failure(h, r->id, -EPROTO, why);
	}
}

static void http_check_done(struct http_tp *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct http_req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		CURLcode res = m->data.result;
		if (!r)
			continue;
		http_finish(h, r, res);
		for (struct http_req **pp = &h->reqs; *pp; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		http_req_free(r);
	}
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
		if (!h->closing)
			h->t.ev.on_failure(h->t.ev.opaque, json_is_null(id) ? NULL : id,
					   (int)json_integer_value(json_array_get(f, 1)),
					   json_string_value(json_array_get(f, 2)));
		json_decref(f);
	}
}

/* ---- transport ops ---- */

static int http_send(struct mcp_transport *t, json_t *msg, char *why, size_t why_len)
{
	struct http_tp *h = (struct http_tp *)t;
	if (h->closing) {
		snprintf(why, why_len, "transport is closing");
		return -EPIPE;
	}
	int rc = http_start(h, REQ_POST, msg, NULL, why, why_len);
	if (rc == 0) {
		int running;
		/* Kick curl now rather than on the next timer turn. */
		curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		http_after_action(h);
	}
	return rc;
}

static void http_listen(struct mcp_transport *t)
{
	struct http_tp *h = (struct http_tp *)t;
	int running;
	h->listen_attempts = 0;
	h->listen_last_id[0] = '\0';
	http_listen_start(h);
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_after_action(h);
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

static int http_closing(struct mcp_transport *t)
{
	struct http_tp *h = (struct http_tp *)t;
	char why[100];
	if (!h->closing) {
		h->closing = 1;
		h->close_started = uv_now(t->loop);
		uv_timer_stop(&h->resume_timer);
		uv_timer_stop(&h->listen_timer);
		/* Abort open streams; they have nothing more we wait for. */
		while (h->reqs) {
			struct http_req *r = h->reqs;
			h->reqs = r->next;
			http_req_free(r);
		}
		if (h->session[0] && http_start(h, REQ_DELETE, NULL, NULL, why, sizeof(why)) == 0) {
			int running;
			curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		} else {
			h->deleted = 1;
		}
	}
	if (!h->deleted && uv_now(t->loop) - h->close_started < HTTP_CLOSE_WAIT_MS + 500)
		return 1;
	if (h->multi) {
		while (h->reqs) {
			struct http_req *r = h->reqs;
			h->reqs = r->next;
			http_req_free(r);
		}
		curl_multi_cleanup(h->multi);
		h->multi = NULL;
		if (!uv_is_closing((uv_handle_t *)&h->timer))
			uv_close((uv_handle_t *)&h->timer, http_handle_closed);
		if (!uv_is_closing((uv_handle_t *)&h->resume_timer))
			uv_close((uv_handle_t *)&h->resume_timer, http_handle_closed);
		if (!uv_is_closing((uv_handle_t *)&h->listen_timer))
			uv_close((uv_handle_t *)&h->listen_timer, http_handle_closed);
	}
	return h->open_handles > 0;
}

static void http_destroy(struct mcp_transport *t)
{
	struct http_tp *h = (struct http_tp *)t;
	json_decref(h->inbox);
	json_decref(h->failures);
	json_decref(h->resume_id);
	free(h->url);
	free(h);
}

static const struct mcp_transport_ops http_ops = {
	.send = http_send,
	.set_version = http_set_version,
	.listen = http_listen,
	.reset_session = http_reset_session,
	.closing = http_closing,
	.destroy = http_destroy,
};

int mcp_http_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		  const struct mcp_transport_events *ev, struct mcp_transport **out,
		  char *why, size_t why_len)
{
	static int curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(why, why_len, "libcurl failed to initialize");
			return -EIO;
		}
		curl_ready = 1;
	}
	struct http_tp *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->t.ops = &http_ops;
	h->t.ev = *ev;
	h->t.loop = loop;
	h->cfg_headers = cfg->headers;
	snprintf(h->name, sizeof(h->name), "%s", cfg->name ? cfg->name : "?");
	h->url = strdup(cfg->url);
	h->inbox = json_array();
	h->failures = json_array();
	h->multi = curl_multi_init();
	if (!h->url || !h->inbox || !h->failures || !h->multi) {
		if (h->multi)
			curl_multi_cleanup(h->multi);
		json_decref(h->inbox);
		json_decref(h->failures);
		free(h->url);
		free(h);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	uv_timer_init(loop, &h->timer);
	uv_timer_init(loop, &h->resume_timer);
	uv_timer_init(loop, &h->listen_timer);
	h->timer.data = h->resume_timer.data = h->listen_timer.data = h;
	h->open_handles = 3;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*out = &h->t;
	return 0;
}
