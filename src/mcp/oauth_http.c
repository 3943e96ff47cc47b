/* HTTP exchanges with OAuth servers (metadata GETs, registration, token
 * POSTs), through src/net on the caller's loop. One exchange at a time is all
 * a flow needs. The reply body is capped (OAUTH_DOC_MAX) while it arrives;
 * redirects are not followed (a metadata document that moved is a different
 * document), only http and https are spoken, and every exchange has a 10 s
 * deadline of its own. */
#include "mcp/oauth.h"
#include "net/net.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OAUTH_HTTP_TIMEOUT_MS 10000L

struct oauth_http {
	struct net_curl *net;
	CURL *easy;                  /* the exchange in flight, or NULL */
	struct curl_slist *hdrs;
	char *body;
	struct buf reply;
	oauth_http_cb cb;
	void *opaque;
	void (*done)(void *opaque);
	void *done_opaque;
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct oauth_http *h = ud;
	return buf_append(&h->reply, p, size * nmemb) < 0 ? 0 : size * nmemb;
}

static void reset(struct oauth_http *h)
{
	if (h->easy)
		curl_easy_cleanup(h->easy);
	h->easy = NULL;
	curl_slist_free_all(h->hdrs);
	h->hdrs = NULL;
	free(h->body);
	h->body = NULL;
	buf_free(&h->reply);
}

static void on_done(void *opaque, CURL *easy, CURLcode res)
{
	struct oauth_http *h = opaque;
	struct err e = { 0 };
	long st = 0;
	char *url = NULL;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
	if (res != CURLE_OK) {
		err_set(&e, -EIO, "%s: %s", url ? url : "?", res == CURLE_WRITE_ERROR ?
			"the answer is larger than the cap" : curl_easy_strerror(res));
		st = 0;
	}
	oauth_http_cb cb = h->cb;
	void *op = h->opaque;
	/* The callback may start the next exchange: hand it a copy-free view and
	 * release the handle only afterwards. */
	struct buf reply = h->reply;
	buf_init(&h->reply, OAUTH_DOC_MAX);
	CURL *ez = h->easy;
	struct curl_slist *hd = h->hdrs;
	char *body = h->body;
	h->easy = NULL;
	h->hdrs = NULL;
	h->body = NULL;
	cb(op, st, reply.data ? (const char *)reply.data : "", reply.len, &e);
	curl_easy_cleanup(ez);
	curl_slist_free_all(hd);
	free(body);
	/* A token answer passed through here: leave nothing of it in freed memory. */
	if (reply.data)
		memset(reply.data, 0, reply.len);
	buf_free(&reply);
}

int oauth_http_new(uv_loop_t *loop, struct oauth_http **out, struct err *e)
{
	struct oauth_http *h = calloc(1, sizeof(*h));
	if (!h)
		return err_set(e, -ENOMEM, "out of memory");
	buf_init(&h->reply, OAUTH_DOC_MAX);
	int rc = net_curl_new(loop, NULL, NULL, &h->net, e);
	if (rc < 0) {
		free(h);
		return rc;
	}
	*out = h;
	return 0;
}

int oauth_http_fetch(struct oauth_http *h, const char *url, const char *form, int json,
		     const char *authz, oauth_http_cb cb, void *opaque, struct err *e)
{
	if (h->easy)
		return err_set(e, -EBUSY, "an OAuth exchange is already in flight");
	if (!oauth_url_allowed(url))
		return err_set(e, -EPERM, "refusing OAuth traffic to '%.200s' (https, or http to "
			       "a loopback address, only)", url);
	h->easy = curl_easy_init();
	h->hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (h->hdrs && form)
		h->hdrs = curl_slist_append(h->hdrs, json ? "Content-Type: application/json" :
					    "Content-Type: application/x-www-form-urlencoded");
	char line[1200];
	if (h->hdrs && authz) {
		snprintf(line, sizeof(line), "Authorization: %s", authz);
		h->hdrs = curl_slist_append(h->hdrs, line);
		memset(line, 0, sizeof(line));
	}
	if (form)
		h->body = strdup(form);
	if (!h->easy || !h->hdrs || (form && !h->body)) {
		reset(h);
		return err_set(e, -ENOMEM, "out of memory");
	}
	CURL *ez = h->easy;
	curl_easy_setopt(ez, CURLOPT_URL, url);
	curl_easy_setopt(ez, CURLOPT_HTTPHEADER, h->hdrs);
	curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(ez, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(ez, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ez, CURLOPT_TIMEOUT_MS, OAUTH_HTTP_TIMEOUT_MS);
	curl_easy_setopt(ez, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(ez, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(ez, CURLOPT_USERAGENT, "ironclaw-mcp/1");
	if (form) {
		curl_easy_setopt(ez, CURLOPT_POSTFIELDS, h->body);
		curl_easy_setopt(ez, CURLOPT_POSTFIELDSIZE, (long)strlen(h->body));
	}
	h->cb = cb;
	h->opaque = opaque;
	int rc = net_curl_add(h->net, ez, on_done, h, e);
	if (rc < 0)
		reset(h);
	return rc;
}

void oauth_http_abort(struct oauth_http *h)
{
	if (h->easy)
		net_curl_remove(h->net, h->easy);
	if (h->body)
		memset(h->body, 0, strlen(h->body));
	reset(h);
}

static void net_closed(void *opaque)
{
	struct oauth_http *h = opaque;
	void (*done)(void *) = h->done;
	void *op = h->done_opaque;
	free(h);
	if (done)
		done(op);
}

void oauth_http_close(struct oauth_http *h, void (*done)(void *opaque), void *opaque)
{
	oauth_http_abort(h);
	h->done = done;
	h->done_opaque = opaque;
	net_curl_close(h->net, net_closed, h);
}
