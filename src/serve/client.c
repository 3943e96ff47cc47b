/* The CLI's side of the daemon: one HTTP request over the Unix socket with
 * libcurl, driven by src/net on a loop of its own (the CLI command has no
 * other work while it waits). A streamed body (exec events) is handed over
 * chunk by chunk as it arrives; a collected one is capped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "net/net.h"
#include "serve/serve.h"

struct client_xfer {
	const struct serve_client_req *r;
	struct buf *out;
	int over;
	int done;
	CURLcode res;
};

const char *serve_client_socket(void)
{
	const char *s = getenv("IRONCLAW_SOCKET");
	return s && *s ? s : SERVE_SOCKET_DEFAULT;
}

static size_t client_on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct client_xfer *x = ctx;
	size_t len = size * n;
	if (x->r->chunk) {
		x->r->chunk(x->r->ctx, p, len);
		return len;
	}
	if (x->out && buf_append(x->out, p, len) < 0) {
		x->over = 1;
		return 0; /* aborts the transfer */
	}
	return len;
}

static void client_on_done(void *opaque, CURL *easy, CURLcode res)
{
	struct client_xfer *x = opaque;
	(void)easy;
	x->res = res;
	x->done = 1;
}

int serve_client_do(const char *sock, const struct serve_client_req *r, long *status,
		    struct buf *out, struct err *e)
{
	struct client_xfer x = { .r = r, .out = out };
	struct net_curl *m = NULL;
	struct curl_slist *hdr = NULL;
	char url[4200];
	int rc = 0;
	uv_loop_t loop;
	CURL *easy = curl_easy_init();
	if (!easy)
		return err_set(e, -ENOMEM, "out of memory");
	uv_loop_init(&loop);
	snprintf(url, sizeof(url), "http://localhost%s", r->path);
	curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r->method);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, client_on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	if (r->body || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT")) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 r->content_type ? r->content_type : "application/json");
		hdr = curl_slist_append(hdr, ct);
		hdr = curl_slist_append(hdr, "Expect:");
		curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdr);
	}
	if ((rc = net_curl_new(&loop, NULL, NULL, &m, e)) < 0 ||
	    (rc = net_curl_add(m, easy, client_on_done, &x, e)) < 0)
		goto out;
	uv_run(&loop, UV_RUN_DEFAULT);
	while (!x.done && uv_run(&loop, UV_RUN_ONCE))
		;
	if (x.over)
		rc = err_set(e, -EMSGSIZE, "the daemon's answer is over %u bytes", SERVE_CLIENT_BODY_MAX);
	else if (x.res == CURLE_COULDNT_CONNECT)
		rc = err_set(e, -ECONNREFUSED, "no daemon answers on %s (hint: start one with "
			     "`ironclaw serve`, or pass --no-daemon)", sock);
	else if (x.res != CURLE_OK)
		rc = err_set(e, -EIO, "talking to the daemon on %s: %s", sock,
			     curl_easy_strerror(x.res));
	else
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
out:
	if (m)
		net_curl_close(m, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	curl_easy_cleanup(easy);
	curl_slist_free_all(hdr);
	return rc;
}

int serve_client_alive(const char *sock)
{
	struct buf b;
	long status = 0;
	struct err e = { 0 };
	buf_init(&b, 4096);
	int rc = serve_client_do(sock, &(struct serve_client_req){ .method = "GET",
				 .path = "/v1/health" }, &status, &b, &e);
	buf_free(&b);
	return rc == 0 && status == 200;
}

int serve_client_describe(const char *sock, char *out, size_t n)
{
	struct buf b;
	long status = 0;
	struct err e = { 0 };
	buf_init(&b, 65536);
	int rc = serve_client_do(sock, &(struct serve_client_req){ .method = "GET",
				 .path = "/v1/health" }, &status, &b, &e);
	json_t *j = rc == 0 && status == 200 ? json_loadb((const char *)b.data, b.len, 0, NULL) : NULL;
	buf_free(&b);
	if (!j) {
		snprintf(out, n, "not running on %s (optional: `ironclaw serve` gives exec a warm "
			 "pool and users without root)", sock);
		return 0;
	}
	snprintf(out, n, "serving on %s: %lld sandboxes, %lld pool VMs ready", sock,
		 (long long)json_integer_value(json_object_get(j, "sandboxes")),
		 (long long)json_integer_value(json_object_get(j, "pool_ready")));
	json_decref(j);
	return 1;
}
