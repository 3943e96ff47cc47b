/* The loopback redirect of a native OAuth client (RFC 8252 §7.3): a libuv TCP
 * listener on 127.0.0.1 at an ephemeral port, waiting for the browser to
 * bring back the authorization response as GET /callback?code=...&state=....
 *
 * Anything on this machine can connect, so what arrives is hostile: each
 * connection may send at most OAUTH_REQUEST_MAX bytes of request head within
 * 10 s, is parsed by oauth_parse_callback() (capped, fuzzed), answered with a
 * short fixed page, and closed. Requests for other paths (a browser's
 * favicon) get 404 and change nothing; at most 16 connections are served, and
 * the first /callback ends the listener's job. */
#include "mcp/oauth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOOPBACK_CONN_MAX 16
#define LOOPBACK_CONN_TIMEOUT_MS 10000

struct oauth_loopback;

struct lb_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	struct oauth_loopback *l;
	char buf[OAUTH_REQUEST_MAX];
	size_t len;
	int handles;
	int answered;
	struct lb_conn *next;
};

struct oauth_loopback {
	uv_tcp_t srv;
	int handles;                 /* the server + every open connection handle */
	int served;
	int closing;
	int delivered;
	struct lb_conn *conns;
	oauth_loopback_cb cb;
	void *opaque;
	void (*done)(void *opaque);
	void *done_opaque;
};

static const char page_ok[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
	"Connection: close\r\n\r\n"
	"<!doctype html><title>IronClaw</title><p>Authorization received. You can close this "
	"window.</p></html>\n\n";
static const char page_404[] =
	"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char page_400[] =
	"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void lb_maybe_free(struct oauth_loopback *l)
{
	if (l->closing && l->handles == 0) {
		void (*done)(void *) = l->done;
		void *op = l->done_opaque;
		free(l);
		if (done)
			done(op);
	}
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct lb_conn *c = h->data;
	struct oauth_loopback *l = c->l;
	if (--c->handles == 0) {
		for (struct lb_conn **pp = &l->conns; *pp; pp = &(*pp)->next)
			if (*pp == c) {
				*pp = c->next;
				break;
			}
		memset(c->buf, 0, sizeof(c->buf));
		free(c);
		l->handles--;
		lb_maybe_free(l);
	}
}

static void conn_close(struct lb_conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

static void conn_answer(struct lb_conn *c, const char *page, size_t n)
{
	c->answered = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_buf_t b = uv_buf_init((char *)page, (unsigned)n);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
		conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
	struct lb_conn *c = h->data;
	(void)want;
	*b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct lb_conn *c = s->data;
	struct oauth_loopback *l = c->l;
	struct oauth_callback *cb;
	(void)b;
	if (n < 0) {
		conn_close(c);
		return;
	}
	if (n == 0 || c->answered)
		return;
	c->len += (size_t)n;
	cb = malloc(sizeof(*cb));
	if (!cb) {
		conn_close(c);
		return;
	}
	int rc = oauth_parse_callback(c->buf, c->len, cb);
	if (rc == -EAGAIN && c->len < sizeof(c->buf)) {
		free(cb);
		return;
	}
	if (rc < 0) {
		conn_answer(c, page_400, sizeof(page_400) - 1);
	} else if (strcmp(cb->path, "/callback")) {
		conn_answer(c, page_404, sizeof(page_404) - 1);
	} else {
		conn_answer(c, page_ok, sizeof(page_ok) - 1);
		if (!l->delivered && !l->closing) {
			l->delivered = 1;
			l->cb(l->opaque, cb);
		}
	}
	memset(cb, 0, sizeof(*cb));
	free(cb);
}

static void on_conn_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_connection(uv_stream_t *srv, int status)
{
	struct oauth_loopback *l = srv->data;
	if (status < 0 || l->closing)
		return;
	struct lb_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->l = l;
	uv_tcp_init(srv->loop, &c->tcp);
	uv_timer_init(srv->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	l->handles++;
	c->next = l->conns;
	l->conns = c;
	if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0 || ++l->served > LOOPBACK_CONN_MAX) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_conn_timeout, LOOPBACK_CONN_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void srv_closed(uv_handle_t *h)
{
	struct oauth_loopback *l = h->data;
	l->handles--;
	lb_maybe_free(l);
}

int oauth_loopback_start(uv_loop_t *loop, oauth_loopback_cb cb, void *opaque,
			 struct oauth_loopback **out, int *port, struct err *e)
{
	struct oauth_loopback *l = calloc(1, sizeof(*l));
	struct sockaddr_in sa;
	int rc;
	if (!l)
		return err_set(e, -ENOMEM, "out of memory");
	l->cb = cb;
	l->opaque = opaque;
	uv_tcp_init(loop, &l->srv);
	l->srv.data = l;
	l->handles = 1;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	if ((rc = uv_tcp_bind(&l->srv, (const struct sockaddr *)&sa, 0)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&l->srv, 8, on_connection)) < 0) {
		err_set(e, rc, "cannot listen on 127.0.0.1 for the OAuth redirect: %s",
			uv_strerror(rc));
		l->closing = 1;
		uv_close((uv_handle_t *)&l->srv, srv_closed);
		return rc;
	}
	int len = sizeof(sa);
	uv_tcp_getsockname(&l->srv, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	*out = l;
	return 0;
}

void oauth_loopback_close(struct oauth_loopback *l, void (*done)(void *opaque), void *opaque)
{
	l->closing = 1;
	l->done = done;
	l->done_opaque = opaque;
	for (struct lb_conn *c = l->conns; c; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&l->srv, srv_closed);
}
