/* The model client: one POST per attempt through src/net on the caller's
 * loop, the reply fed to the provider module as it arrives (SSE events or a
 * capped body), and a small state machine per request around it:
 *
 *   attempt ──done──▶ reply ──▶ callback
 *      ▲                │
 *      └── backoff ◀── transient failure (429, 408, 5xx, refused, dropped,
 *          timer        silent for too long, overloaded mid-stream)
 *
 * Each request owns one uv timer used for both of its waits, which never
 * overlap: the silence timer while an attempt runs (re-armed on every byte),
 * the backoff between attempts. The whole request has one deadline
 * (total_timeout_ms): each attempt's curl timeout is what remains of it, and a
 * retry that cannot start before it is not made. Callbacks only ever run from
 * net's completion or a timer, never inside llm_request() or inside curl. */
#include "llm/wire.h"
#include "net/net.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"

#define LLM_ERRBODY_MAX (64 * 1024)

struct llm_req {
	struct llm_client *c;
	struct llm_req *next;
	char *body;
	size_t body_len;
	llm_done_cb cb;
	void *ctx;
	CURL *easy;
	struct curl_slist *hdrs;
	int active;             /* easy is in the multi */
	int linked;             /* in c->reqs */
	uv_timer_t timer;
	uint64_t t0, t_attempt, t_first;
	int attempt;
	long status;
	int is_sse;
	int ctype_known;
	int over_cap;
	long retry_after_ms;
	size_t rx;
	struct buf rbody;
	struct net_sse sse;
	int sse_on;
	struct llm_acc acc;
	int acc_on;
	char errbuf[CURL_ERROR_SIZE];
};

struct llm_client {
	uv_loop_t *loop;
	struct net_curl *net;
	struct llm_config cfg;  /* strings point at the copies below */
	char *base_url, *model, *api_key, *version, *url;
	const struct llm_proto *proto;
	struct llm_req *reqs;
	uint64_t rng;
	int open;               /* net + one timer per request not yet closed */
	int closing;
	void (*closed)(void *opaque);
	void *closed_opaque;
};

const char *llm_provider_name(enum llm_provider p)
{
	return p == LLM_PROVIDER_ANTHROPIC ? "anthropic" : "openai";
}

int llm_provider_parse(const char *s, enum llm_provider *out)
{
	if (s && !strcmp(s, "openai"))
		*out = LLM_PROVIDER_OPENAI;
	else if (s && !strcmp(s, "anthropic"))
		*out = LLM_PROVIDER_ANTHROPIC;
	else
		return -EINVAL;
	return 0;
}

const char *llm_error_kind_name(enum llm_error_kind k)
{
	switch (k) {
	case LLM_ERR_UNREACHABLE: return "unreachable";
	case LLM_ERR_HTTP: return "http";
	case LLM_ERR_MALFORMED: return "malformed";
	case LLM_ERR_TOO_LARGE: return "too_large";
	case LLM_ERR_EMPTY: return "empty";
	case LLM_ERR_TIMEOUT: return "timeout";
	case LLM_ERR_INTERNAL: return "internal";
	}
	return "unknown";
}

static double client_ms(uint64_t from, uint64_t to)
{
	return (double)(to - from) / 1e6;
}

static double client_rand(struct llm_client *c)
{
	/* xorshift64*: jitter needs spread, not secrecy. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return (double)((c->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void client_maybe_freed(struct llm_client *c)
{
	if (!c->closing || c->open > 0)
		return;
	void (*closed)(void *) = c->closed;
	void *op = c->closed_opaque;
	free(c->base_url);
	free(c->model);
	if (c->api_key) {
		explicit_bzero(c->api_key, strlen(c->api_key));
		free(c->api_key);
	}
	free(c->version);
	free(c->url);
	free(c);
	if (closed)
		closed(op);
}

/* ---- per-attempt state ---- */

static void req_attempt_clear(struct llm_req *r)
{
	if (r->easy) {
		if (r->active)
			net_curl_remove(r->c->net, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	r->active = 0;
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	buf_free(&r->rbody);
	if (r->sse_on)
		net_sse_free(&r->sse);
	r->sse_on = 0;
	if (r->acc_on)
		llm_acc_free(&r->acc);
	r->acc_on = 0;
}

static void req_timer_closed(uv_handle_t *h)
{
	struct llm_req *r = h->data;
	struct llm_client *c = r->c;
	free(r->body);
	free(r);
	c->open--;
	client_maybe_freed(c);
}

static void req_unlink(struct llm_req *r)
{
	if (!r->linked)
		return;
	for (struct llm_req **pp = &r->c->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	r->linked = 0;
}

static void req_destroy(struct llm_req *r)
{
	req_unlink(r);
	req_attempt_clear(r);
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, req_timer_closed);
}

static void req_stats(struct llm_req *r, struct llm_stats *s)
{
	uint64_t now = uv_hrtime();
	s->latency_ms = client_ms(r->t0, now);
	s->first_byte_ms = r->t_first ? client_ms(r->t_attempt, r->t_first) : 0;
	s->request_bytes = r->body_len;
	s->response_bytes = r->rx;
	s->attempts = r->attempt;
}

static void req_succeed(struct llm_req *r, struct llm_reply *reply)
{
	req_stats(r, &reply->stats);
	req_unlink(r);
	log_debug("llm: reply in %.0f ms after %d attempt(s), %zu bytes", reply->stats.latency_ms,
		  r->attempt, r->rx);
	r->cb(r->ctx, reply, NULL);
	req_destroy(r);
}

static void req_fail(struct llm_req *r, struct llm_failure *f)
{
	req_stats(r, &f->stats);
	if (f->e.code == 0)
		f->e.code = -EIO;
	/* Last line of defence: nothing we report carries the key. */
	char tmp[ERR_MSG_MAX];
	llm_text_line(tmp, sizeof(tmp), f->e.msg, strlen(f->e.msg), r->c->api_key);
	memcpy(f->e.msg, tmp, sizeof(tmp));
	req_unlink(r);
	r->cb(r->ctx, NULL, f);
	req_destroy(r);
}

/* ---- curl callbacks: they only record, never call out ---- */

static void req_on_silence(uv_timer_t *t);

static void req_heard(struct llm_req *r)
{
	if (!r->t_first)
		r->t_first = uv_hrtime();
	uv_timer_start(&r->timer, req_on_silence, (uint64_t)r->c->cfg.first_byte_timeout_ms, 0);
}

static void req_on_event(void *opaque, const struct net_sse_event *ev)
{
	struct llm_req *r = opaque;
	r->c->proto->event(&r->acc, ev->event, ev->data, ev->data_len);
}

static size_t req_on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct llm_req *r = ud;
	size_t n = size * nmemb;
	req_heard(r);
	if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
		r->retry_after_ms = -1;   /* a new response (after a 100) starts */
	} else if (n > 12 && !strncasecmp(p, "retry-after:", 12)) {
		r->retry_after_ms = llm_retry_after_parse(p + 12, n - 12, (long long)time(NULL));
	} else if (n > 15 && !strncasecmp(p, "retry-after-ms:", 15)) {
		/* OpenAI also sends milliseconds; seconds parse, then scale down. */
		long v = llm_retry_after_parse(p + 15, n - 15, (long long)time(NULL));
		if (v >= 0)
			r->retry_after_ms = v / 1000;
	}
	return n;
}

static size_t req_on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct llm_req *r = ud;
	size_t n = size * nmemb;
	const struct llm_config *cfg = &r->c->cfg;
	req_heard(r);
	if (n > cfg->body_max - r->rx) {
		r->over_cap = 1;
		return 0;   /* abort the transfer: no byte past the cap is kept */
	}
	r->rx += n;
	if (!r->ctype_known) {
		r->is_sse = net_curl_is_event_stream(r->easy, &r->status);
		r->ctype_known = 1;
	}
	if (r->is_sse) {
		net_sse_feed(&r->sse, p, n);
		if (r->sse.dropped)
			llm_acc_fail(&r->acc, LLM_ERR_TOO_LARGE,
				     "a streamed event is larger than the %zu-byte cap", cfg->body_max);
		return r->acc.failed ? 0 : n;   /* a failed reply needs no more bytes */
	}
	if (r->status >= 300) {
		/* An error body: its start is enough for the message. */
		size_t room = r->rbody.len < LLM_ERRBODY_MAX ? LLM_ERRBODY_MAX - r->rbody.len : 0;
		buf_append(&r->rbody, p, n < room ? n : room);
		return n;
	}
	if (buf_append(&r->rbody, p, n) < 0) {
		r->over_cap = 1;
		return 0;
	}
	return n;
}

/* ---- attempts ---- */

static void req_on_done(void *opaque, CURL *easy, CURLcode res);

static long req_remaining_ms(struct llm_req *r)
{
	uint64_t deadline = r->t0 + (uint64_t)r->c->cfg.total_timeout_ms * 1000000ULL;
	uint64_t now = uv_hrtime();
	return now >= deadline ? 0 : (long)((deadline - now) / 1000000ULL);
}

static struct curl_slist *req_header(struct curl_slist *l, int *bad, const char *name,
				     const char *v)
{
	char line[4096];
	if ((size_t)snprintf(line, sizeof(line), "%s%s", name, v) >= sizeof(line)) {
		*bad = 1;
		return l;
	}
	struct curl_slist *n = curl_slist_append(l, line);
	explicit_bzero(line, sizeof(line));
	if (!n)
		*bad = 1;
	return n ? n : l;
}

static int req_attempt_start(struct llm_req *r, struct err *e)
{
	struct llm_client *c = r->c;
	const struct llm_config *cfg = &c->cfg;
	req_attempt_clear(r);
	r->attempt++;
	r->t_attempt = uv_hrtime();
	r->t_first = 0;
	r->status = 0;
	r->is_sse = r->ctype_known = r->over_cap = 0;
	r->retry_after_ms = -1;
	r->rx = 0;
	r->errbuf[0] = '\0';
	buf_init(&r->rbody, cfg->body_max);
	struct llm_limits lim = { cfg->body_max, cfg->json_depth_max, c->api_key };
	llm_acc_init(&r->acc, &lim);
	r->acc_on = 1;
	net_sse_init(&r->sse, cfg->body_max, req_on_event, r);
	r->sse_on = 1;

	int bad = 0;
	struct curl_slist *h = NULL;
	h = req_header(h, &bad, "Content-Type: ", "application/json");
	h = req_header(h, &bad, "Accept: ", cfg->stream ? "text/event-stream" : "application/json");
	h = req_header(h, &bad, "Expect:", "");
	if (c->api_key && *c->api_key)
		h = req_header(h, &bad,
			       cfg->provider == LLM_PROVIDER_ANTHROPIC ? "x-api-key: "
								       : "Authorization: Bearer ",
			       c->api_key);
	if (cfg->provider == LLM_PROVIDER_ANTHROPIC)
		h = req_header(h, &bad, "anthropic-version: ", c->version);
	r->hdrs = h;
	r->easy = curl_easy_init();
	if (bad || !r->easy)
		return err_set(e, -ENOMEM, "cannot prepare the model request (out of memory)");
	CURL *x = r->easy;
	long remaining = req_remaining_ms(r);
	curl_easy_setopt(x, CURLOPT_URL, c->url);
	curl_easy_setopt(x, CURLOPT_POST, 1L);
	curl_easy_setopt(x, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	curl_easy_setopt(x, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(x, CURLOPT_WRITEFUNCTION, req_on_write);
	curl_easy_setopt(x, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(x, CURLOPT_HEADERFUNCTION, req_on_header);
	curl_easy_setopt(x, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(x, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(x, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
	curl_easy_setopt(x, CURLOPT_TIMEOUT_MS, remaining > 0 ? remaining : 1L);
	curl_easy_setopt(x, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->body_max);
	curl_easy_setopt(x, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(x, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x, CURLOPT_USERAGENT, "ironclaw");
	if (net_curl_add(c->net, x, req_on_done, r, e) < 0)
		return e ? e->code : -EIO;
	r->active = 1;
	uv_timer_start(&r->timer, req_on_silence, (uint64_t)cfg->first_byte_timeout_ms, 0);
	return 0;
}

static void req_on_backoff(uv_timer_t *t)
{
	struct llm_req *r = t->data;
	struct llm_failure f = { .kind = LLM_ERR_INTERNAL };
	if (req_attempt_start(r, &f.e) < 0)
		req_fail(r, &f);
}

/* A transient failure: retry when attempts, the deadline and the server's
 * Retry-After allow it, else report f (its message gets the attempt count). */
static void req_retry_or_fail(struct llm_req *r, struct llm_failure *f)
{
	const struct llm_config *cfg = &r->c->cfg;
	long remaining = req_remaining_ms(r);
	long delay = r->retry_after_ms >= 0
			     ? r->retry_after_ms
			     : llm_backoff_ms(r->attempt + 1, cfg->backoff_base_ms, cfg->backoff_max_ms,
					      client_rand(r->c));
	const char *why = NULL;
	char tmp[160];
	if (r->attempt >= cfg->max_attempts) {
		why = "";
	} else if (r->retry_after_ms > cfg->retry_after_max_ms) {
		snprintf(tmp, sizeof(tmp), "; the server asks to retry after %ld s, longer than the %ld s allowed",
			 r->retry_after_ms / 1000, cfg->retry_after_max_ms / 1000);
		why = tmp;
	} else if (delay >= remaining) {
		snprintf(tmp, sizeof(tmp), "; no time left for another attempt within the %ld s deadline",
			 cfg->total_timeout_ms / 1000);
		why = tmp;
	}
	if (why) {
		if (r->attempt > 1)
			err_wrap(&f->e, "after %d attempts", r->attempt);
		size_t len = strlen(f->e.msg);
		snprintf(f->e.msg + len, sizeof(f->e.msg) - len, "%s", why);
		req_fail(r, f);
		return;
	}
	log_info("llm: %s; retrying in %ld ms (attempt %d of %d)", f->e.msg, delay, r->attempt + 1,
		 cfg->max_attempts);
	req_attempt_clear(r);
	uv_timer_start(&r->timer, req_on_backoff, (uint64_t)delay, 0);
}

static void req_on_silence(uv_timer_t *t)
{
	struct llm_req *r = t->data;
	struct llm_failure f = { .kind = LLM_ERR_UNREACHABLE };
	err_set(&f.e, -ETIMEDOUT, "the model endpoint at %s sent nothing for %ld s%s", r->c->url,
		r->c->cfg.first_byte_timeout_ms / 1000,
		r->t_first ? " in the middle of its reply" : "");
	req_attempt_clear(r);
	req_retry_or_fail(r, &f);
}

static int req_curl_retryable(CURLcode res)
{
	switch (res) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static const char *req_status_hint(long status)
{
	switch (status) {
	case 401:
	case 403:
		return " (check the API key and its permissions)";
	case 404:
		return " (check the base URL and the model name)";
	case 413:
		return " (the conversation is too large for this endpoint)";
	default:
		return "";
	}
}

static void req_on_http_error(struct llm_req *r)
{
	struct llm_client *c = r->c;
	struct llm_failure f = { .kind = LLM_ERR_HTTP, .http_status = r->status };
	char msg[LLM_SERVER_MSG_MAX];
	llm_error_message((const char *)r->rbody.data, r->rbody.len, c->cfg.json_depth_max, c->api_key,
			  msg, sizeof(msg));
	err_set(&f.e, -EPROTO, "the model endpoint answered HTTP %ld%s%s%s", r->status,
		msg[0] ? ": " : "", msg, req_status_hint(r->status));
	if (llm_status_retryable(r->status))
		req_retry_or_fail(r, &f);
	else
		req_fail(r, &f);
}

static void req_on_body(struct llm_req *r)
{
	struct llm_client *c = r->c;
	struct llm_failure f = { 0 };
	if (!r->is_sse) {
		const char *p = (const char *)r->rbody.data;
		size_t n = r->rbody.len;
		/* A server that streams without saying text/event-stream. */
		if (c->cfg.stream && n >= 5 && (!memcmp(p, "data:", 5) || !memcmp(p, "event", 5))) {
			net_sse_feed(&r->sse, p, n);
			r->is_sse = 1;
		} else if (n == 0) {
			llm_acc_fail(&r->acc, LLM_ERR_EMPTY, "the model endpoint sent an empty body");
		} else {
			c->proto->parse(&r->acc, p, n);
		}
	}
	if (r->is_sse) {
		net_sse_feed(&r->sse, "\n\n", 2);   /* a last event without its blank line */
		if (!r->acc.failed && !r->acc.done && !r->acc.has_stop) {
			f.kind = LLM_ERR_UNREACHABLE;
			err_set(&f.e, -EPIPE, "the model's stream ended before its end marker");
			req_retry_or_fail(r, &f);
			return;
		}
	}
	int retry = r->acc.failed && r->acc.fail_retry;
	struct llm_reply *reply = NULL;
	if (llm_acc_finish(&r->acc, &reply, &f) < 0) {
		err_wrap(&f.e, "the model endpoint at %s", c->url);
		if (retry)
			req_retry_or_fail(r, &f);
		else
			req_fail(r, &f);
		return;
	}
	req_succeed(r, reply);
}

static void req_on_done(void *opaque, CURL *easy, CURLcode res)
{
	struct llm_req *r = opaque;
	struct llm_client *c = r->c;
	(void)easy;
	r->active = 0;
	uv_timer_stop(&r->timer);
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	struct llm_failure f = { .http_status = r->status };
	if (r->over_cap || res == CURLE_FILESIZE_EXCEEDED) {
		f.kind = LLM_ERR_TOO_LARGE;
		err_set(&f.e, -EMSGSIZE, "the model's reply is larger than the %zu-byte cap (body_max)",
			c->cfg.body_max);
		req_fail(r, &f);
		return;
	}
	if (res == CURLE_WRITE_ERROR && r->acc.failed) {
		/* We stopped reading a stream that had already failed. */
		req_on_body(r);
		return;
	}
	if (res != CURLE_OK) {
		f.kind = LLM_ERR_UNREACHABLE;
		int deadline = req_remaining_ms(r) <= 50;
		if (deadline)
			f.kind = LLM_ERR_TIMEOUT;
		err_set(&f.e, -EHOSTUNREACH, "cannot reach the model endpoint at %s: %s", c->url,
			r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
		if (deadline)
			err_wrap(&f.e, "the %ld s deadline passed", c->cfg.total_timeout_ms / 1000);
		if (!deadline && req_curl_retryable(res))
			req_retry_or_fail(r, &f);
		else
			req_fail(r, &f);
		return;
	}
	if (r->status < 200 || r->status >= 300) {
		req_on_http_error(r);
		return;
	}
	req_on_body(r);
}

/* ---- public API ---- */

static int client_dup(char **dst, const char *s)
{
	*dst = strdup(s ? s : "");
	return *dst ? 0 : -ENOMEM;
}

int llm_client_new(uv_loop_t *loop, const struct llm_config *cfg, struct llm_client **out,
		   struct err *e)
{
	*out = NULL;
	if (!cfg->base_url || (strncmp(cfg->base_url, "http://", 7) && strncmp(cfg->base_url, "https://", 8)))
		return err_set(e, -EINVAL, "model base URL '%s' must start with http:// or https://",
			       cfg->base_url ? cfg->base_url : "");
	if (!cfg->model || !*cfg->model)
		return err_set(e, -EINVAL, "no model name given (set --model or \"model\" in the config)");
	struct llm_client *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->loop = loop;
	c->cfg = *cfg;
	struct llm_config *k = &c->cfg;
	k->connect_timeout_ms = k->connect_timeout_ms > 0 ? k->connect_timeout_ms : 10000;
	k->first_byte_timeout_ms = k->first_byte_timeout_ms > 0 ? k->first_byte_timeout_ms : 120000;
	k->total_timeout_ms = k->total_timeout_ms > 0 ? k->total_timeout_ms : 600000;
	k->max_attempts = k->max_attempts > 0 ? k->max_attempts : 4;
	k->backoff_base_ms = k->backoff_base_ms > 0 ? k->backoff_base_ms : 500;
	k->backoff_max_ms = k->backoff_max_ms > 0 ? k->backoff_max_ms : 8000;
	k->retry_after_max_ms = k->retry_after_max_ms > 0 ? k->retry_after_max_ms : 60000;
	k->body_max = k->body_max > 0 ? k->body_max : 8u << 20;
	k->json_depth_max = k->json_depth_max > 0 ? k->json_depth_max : 64;
	if (k->provider == LLM_PROVIDER_ANTHROPIC && k->max_tokens <= 0)
		k->max_tokens = 4096;
	c->proto = k->provider == LLM_PROVIDER_ANTHROPIC ? &llm_proto_anthropic : &llm_proto_openai;
	int rc = client_dup(&c->base_url, cfg->base_url) | client_dup(&c->model, cfg->model) |
		 client_dup(&c->version, cfg->anthropic_version ? cfg->anthropic_version : "2023-06-01");
	if (rc == 0 && cfg->api_key && *cfg->api_key)
		rc = client_dup(&c->api_key, cfg->api_key);
	size_t bl = c->base_url ? strlen(c->base_url) : 0;
	while (bl > 0 && c->base_url[bl - 1] == '/')
		c->base_url[--bl] = '\0';
	if (rc == 0 && asprintf(&c->url, "%s%s", c->base_url, c->proto->path) < 0) {
		c->url = NULL;
		rc = -ENOMEM;
	}
	k->base_url = c->base_url;
	k->model = c->model;
	k->api_key = NULL;   /* only c->api_key holds it */
	k->anthropic_version = c->version;
	c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ULL;
	if (rc == 0)
		rc = net_curl_new(loop, NULL, NULL, &c->net, e);
	else
		err_set(e, rc, "out of memory");
	if (rc < 0) {
		c->closing = 1;
		client_maybe_freed(c);
		return rc;
	}
	c->open = 1;
	*out = c;
	return 0;
}

int llm_request(struct llm_client *c, const struct llm_conv *conv, const struct llm_tool *tools,
		size_t ntools, llm_done_cb cb, void *ctx, struct llm_req **out, struct err *e)
{
	if (out)
		*out = NULL;
	if (c->closing)
		return err_set(e, -ESHUTDOWN, "the model client is closing");
	json_t *body = c->proto->body(&c->cfg, conv, tools, ntools, e);
	if (!body)
		return e ? e->code : -ENOMEM;
	struct llm_req *r = calloc(1, sizeof(*r));
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!r || !text) {
		free(r);
		free(text);
		return err_set(e, -ENOMEM, "out of memory while building the request");
	}
	r->c = c;
	r->body = text;
	r->body_len = strlen(text);
	r->cb = cb;
	r->ctx = ctx;
	r->t0 = uv_hrtime();
	uv_timer_init(c->loop, &r->timer);
	r->timer.data = r;
	c->open++;
	r->next = c->reqs;
	c->reqs = r;
	r->linked = 1;
	int rc = req_attempt_start(r, e);
	if (rc < 0) {
		req_destroy(r);
		return rc;
	}
	if (out)
		*out = r;
	return 0;
}

void llm_cancel(struct llm_client *c, struct llm_req *r)
{
	(void)c;
	if (r && r->linked)
		req_destroy(r);
}

static void client_net_closed(void *opaque)
{
	struct llm_client *c = opaque;
	c->open--;
	client_maybe_freed(c);
}

void llm_client_close(struct llm_client *c, void (*closed)(void *opaque), void *opaque)
{
	if (!c || c->closing)
		return;
	c->closing = 1;
	c->closed = closed;
	c->closed_opaque = opaque;
	while (c->reqs)
		req_destroy(c->reqs);
	net_curl_close(c->net, client_net_closed, c);
}
