/* libcurl's multi-socket interface on a libuv loop.
 *
 * curl tells us which sockets to watch (socket callback) and when to wake it
 * (timer callback); libuv polls and times, and we hand each event back with
 * curl_multi_socket_action(). Finished transfers are read after curl returns
 * and reported to their owners then, so an owner's callback never runs inside
 * curl and may freely add or remove transfers, or close the multi: a close
 * that arrives while we are dispatching is finished once dispatching unwinds.
 * Every handle (the timer, one poll per socket) is closed through the loop,
 * and the struct is freed only when the last one is. */
#include "net/net.h"

#include <errno.h>
#include <stdlib.h>

struct net_xfer {
	CURL *easy;
	net_curl_done_cb done;
	void *opaque;
	struct net_xfer *next;
};

struct net_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct net_curl *m;
	struct net_sock *next;
};

struct net_curl {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct net_xfer *xfers;
	struct net_sock *socks;
	int nxfers;
	int open_handles;
	int busy;               /* dispatch depth: a close waits for it to unwind */
	int closing;
	int close_deferred;
	void (*after)(void *opaque);
	void *opaque;
	void (*closed)(void *opaque);
	void *closed_opaque;
};

static void curl_finish_close(struct net_curl *m);

static void curl_handle_gone(struct net_curl *m)
{
	if (--m->open_handles > 0 || !m->closing)
		return;
	void (*closed)(void *) = m->closed;
	void *op = m->closed_opaque;
	free(m);
	if (closed)
		closed(op);
}

static void curl_timer_closed(uv_handle_t *h)
{
	curl_handle_gone(h->data);
}

static void curl_sock_closed(uv_handle_t *h)
{
	struct net_sock *s = h->data;
	struct net_curl *m = s->m;
	free(s);
	curl_handle_gone(m);
}

static void curl_sock_release(struct net_curl *m, struct net_sock *s)
{
	for (struct net_sock **pp = &m->socks; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, curl_sock_closed);
}

static struct net_xfer *curl_xfer_unlink(struct net_curl *m, CURL *easy)
{
	for (struct net_xfer **pp = &m->xfers; *pp; pp = &(*pp)->next)
		if ((*pp)->easy == easy) {
			struct net_xfer *x = *pp;
			*pp = x->next;
			m->nxfers--;
			return x;
		}
	return NULL;
}

/* Reports finished transfers, then the owner's hook; outside curl. */
static void curl_dispatch(struct net_curl *m)
{
	CURLMsg *msg;
	int left;
	m->busy++;
	while (!m->closing && (msg = curl_multi_info_read(m->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode res = msg->data.result;
		struct net_xfer *x = curl_xfer_unlink(m, easy);
		curl_multi_remove_handle(m->multi, easy);
		if (x) {
			x->done(x->opaque, easy, res);
			free(x);
		}
	}
	if (!m->closing && m->after)
		m->after(m->opaque);
	m->busy--;
	if (m->busy == 0 && m->close_deferred)
		curl_finish_close(m);
}

static void curl_on_poll(uv_poll_t *p, int status, int events)
{
	struct net_sock *s = p->data;
	struct net_curl *m = s->m;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	m->busy++;
	curl_multi_socket_action(m->multi, s->fd, flags, &running);
	m->busy--;
	curl_dispatch(m);
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct net_curl *m = userp;
	struct net_sock *s = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(m->multi, fd, NULL);
			curl_sock_release(m, s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->fd = fd;
		s->m = m;
		if (uv_poll_init_socket(m->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->next = m->socks;
		m->socks = s;
		m->open_handles++;
		curl_multi_assign(m->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, curl_on_poll);
	return 0;
}

static void curl_on_timeout(uv_timer_t *t)
{
	struct net_curl *m = t->data;
	int running;
	m->busy++;
	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	m->busy--;
	curl_dispatch(m);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct net_curl *m = userp;
	(void)multi;
	if (m->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&m->timer);
	else
		uv_timer_start(&m->timer, curl_on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

int net_curl_new(uv_loop_t *loop, void (*after)(void *opaque), void *opaque,
		 struct net_curl **out, struct err *e)
{
	static int curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return err_set(e, -EIO, "libcurl failed to initialize");
		curl_ready = 1;
	}
	struct net_curl *m = calloc(1, sizeof(*m));
	if (!m)
		return err_set(e, -ENOMEM, "out of memory");
	m->multi = curl_multi_init();
	if (!m->multi) {
		free(m);
		return err_set(e, -ENOMEM, "cannot create a curl multi handle (out of memory)");
	}
	m->loop = loop;
	m->after = after;
	m->opaque = opaque;
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	m->open_handles = 1;
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	*out = m;
	return 0;
}

int net_curl_add(struct net_curl *m, CURL *easy, net_curl_done_cb done, void *opaque,
		 struct err *e)
{
	if (m->closing)
		return err_set(e, -ESHUTDOWN, "the HTTP client is closing");
	struct net_xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return err_set(e, -ENOMEM, "out of memory");
	x->easy = easy;
	x->done = done;
	x->opaque = opaque;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	/* curl answers with a 0 ms timer: the transfer starts on the next loop
	 * turn, never inside this call, so done cannot fire before we return. */
	CURLMcode mc = curl_multi_add_handle(m->multi, easy);
	if (mc != CURLM_OK) {
		free(x);
		return err_set(e, -ENOMEM, "cannot start an HTTP transfer: %s",
			       curl_multi_strerror(mc));
	}
	x->next = m->xfers;
	m->xfers = x;
	m->nxfers++;
	return 0;
}

void net_curl_remove(struct net_curl *m, CURL *easy)
{
	struct net_xfer *x = curl_xfer_unlink(m, easy);
	if (!x)
		return;
	curl_multi_remove_handle(m->multi, easy);
	free(x);
}

int net_curl_running(const struct net_curl *m)
{
	return m->nxfers;
}

static void curl_finish_close(struct net_curl *m)
{
	m->close_deferred = 0;
	while (m->xfers) {
		struct net_xfer *x = m->xfers;
		m->xfers = x->next;
		curl_multi_remove_handle(m->multi, x->easy);
		free(x);
	}
	m->nxfers = 0;
	curl_multi_cleanup(m->multi);
	m->multi = NULL;
	while (m->socks)
		curl_sock_release(m, m->socks);
	uv_timer_stop(&m->timer);
	uv_close((uv_handle_t *)&m->timer, curl_timer_closed);
}

void net_curl_close(struct net_curl *m, void (*closed)(void *opaque), void *opaque)
{
	if (!m || m->closing)
		return;
	m->closing = 1;
	m->closed = closed;
	m->closed_opaque = opaque;
	if (m->busy)
		m->close_deferred = 1;
	else
		curl_finish_close(m);
}
