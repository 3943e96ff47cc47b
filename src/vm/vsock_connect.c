/* vsock connect and listen over Firecracker's Unix sockets: see vsock_connect.h.
 *
 * One attempt: unix_connect (which itself retries until the socket exists),
 * then a poll on the fd for writing the CONNECT line and for reading the reply.
 * A refused attempt (EOF or reset before the OK line) closes the fd and starts
 * over after VSOCK_RETRY_MS, until the deadline. The handle frees itself once
 * its poll and timer are closed. */
#include "vm/vsock_connect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vm/fc_parse.h"

#define VSOCK_RETRY_MS 20

struct vsock_connect {
	uv_loop_t *loop;
	char path[108];
	uint32_t port;
	uint64_t deadline;
	unix_connect_cb done;
	void *ctx;
	struct unix_connect *uc;
	uv_timer_t retry;
	uv_poll_t poll;
	int polling;               /* poll initialised on fd */
	int fd;
	char out[32];
	size_t out_len, out_off;
	char line[FC_VSOCK_LINE_MAX];
	size_t line_len;
	int handles;
	int finished;
	int attempts;
	char last[160];            /* why the last attempt failed */
};

static void vc_try(struct vsock_connect *vc);

static void vc_closed(uv_handle_t *h)
{
	struct vsock_connect *vc = h->data;
	if (--vc->handles == 0)
		free(vc);
}

static void vc_drop_fd(struct vsock_connect *vc)
{
	if (vc->polling) {
		uv_poll_stop(&vc->poll);
		uv_close((uv_handle_t *)&vc->poll, vc_closed);
		vc->polling = 0;
	}
	if (vc->fd >= 0)
		close(vc->fd);
	vc->fd = -1;
}

static void vc_finish(struct vsock_connect *vc, int fd, const struct err *e)
{
	vc->finished = 1;
	unix_connect_cancel(vc->uc);
	vc->uc = NULL;
	if (fd >= 0 && vc->polling) {
		/* The fd goes to the caller: close only our poll handle on it. */
		uv_poll_stop(&vc->poll);
		uv_close((uv_handle_t *)&vc->poll, vc_closed);
		vc->polling = 0;
		vc->fd = -1;
	}
	vc_drop_fd(vc);
	uv_timer_stop(&vc->retry);
	uv_close((uv_handle_t *)&vc->retry, vc_closed);
	if (vc->done)
		vc->done(vc->ctx, fd, e);
}

static void vc_on_retry(uv_timer_t *t)
{
	vc_try(t->data);
}

/* This attempt was refused: again later, or give up at the deadline. */
static void vc_refused(struct vsock_connect *vc, const char *why)
{
	snprintf(vc->last, sizeof(vc->last), "%s", why);
	vc_drop_fd(vc);
	uv_update_time(vc->loop);
	if (uv_now(vc->loop) + VSOCK_RETRY_MS < vc->deadline) {
		uv_timer_start(&vc->retry, vc_on_retry, VSOCK_RETRY_MS, 0);
		return;
	}
	struct err e = { 0 };
	err_set(&e, -ECONNREFUSED,
		"nothing answered on vsock port %u through %s after %d attempts (last: %s; hint: is the "
		"guest agent listening on vsock? see the console log)", vc->port, vc->path, vc->attempts,
		vc->last);
	vc_finish(vc, -1, &e);
}

static void vc_fail(struct vsock_connect *vc, int code, const char *what)
{
	struct err e = { 0 };
	err_set(&e, code, "vsock handshake on %s (port %u): %s", vc->path, vc->port, what);
	vc_finish(vc, -1, &e);
}

/* Reads the reply line without consuming a byte past its '\n'. */
static void vc_read_line(struct vsock_connect *vc)
{
	char peek[FC_VSOCK_LINE_MAX];
	size_t room = sizeof(vc->line) - vc->line_len;
	ssize_t n = recv(vc->fd, peek, room, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		char why[96];
		snprintf(why, sizeof(why), "%s", strerror(errno));
		vc_refused(vc, why);
		return;
	}
	if (n == 0) {
		vc_refused(vc, "the connection closed before OK (nothing listens on the port yet)");
		return;
	}
	char *nl = memchr(peek, '\n', (size_t)n);
	size_t take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	ssize_t got = recv(vc->fd, vc->line + vc->line_len, take, 0);
	if (got != (ssize_t)take) {
		vc_fail(vc, -EIO, "the peeked bytes could not be read back");
		return;
	}
	vc->line_len += take;
	uint32_t host_port = 0;
	int rc = fc_vsock_parse_ok(vc->line, vc->line_len, &host_port);
	if (rc == 0)
		return;   /* more to come: every byte so far is part of the line */
	if (rc < 0) {
		char why[96];
		snprintf(why, sizeof(why), "the reply is not `OK <port>`: \"%.*s\"", (int)vc->line_len, vc->line);
		for (char *c = why; *c; c++)
			if ((unsigned char)*c < 0x20)
				*c = '?';
		vc_fail(vc, -EPROTO, why);
		return;
	}
	vc_finish(vc, vc->fd, NULL);
}

static void vc_on_poll(uv_poll_t *p, int status, int events)
{
	struct vsock_connect *vc = p->data;
	if (status < 0) {
		vc_refused(vc, uv_strerror(status));
		return;
	}
	if ((events & UV_WRITABLE) && vc->out_off < vc->out_len) {
		ssize_t n = send(vc->fd, vc->out + vc->out_off, vc->out_len - vc->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			vc_refused(vc, strerror(errno));
			return;
		}
		if (n > 0)
			vc->out_off += (size_t)n;
		if (vc->out_off == vc->out_len)
			uv_poll_start(&vc->poll, UV_READABLE | UV_DISCONNECT, vc_on_poll);
		return;
	}
	if (events & (UV_READABLE | UV_DISCONNECT))
		vc_read_line(vc);
}

static void vc_on_unix(void *ctx, int fd, const struct err *ue)
{
	struct vsock_connect *vc = ctx;
	vc->uc = NULL;
	if (ue) {
		struct err e = *ue;
		err_wrap(&e, "vsock");
		vc_finish(vc, -1, &e);
		return;
	}
	vc->fd = fd;
	vc->out_off = 0;
	vc->line_len = 0;
	if (uv_poll_init(vc->loop, &vc->poll, fd) < 0) {
		vc_fail(vc, -EIO, "cannot watch the socket");
		return;
	}
	vc->poll.data = vc;
	vc->polling = 1;
	vc->handles++;
	uv_poll_start(&vc->poll, UV_WRITABLE, vc_on_poll);
}

static void vc_try(struct vsock_connect *vc)
{
	struct err e = { 0 };
	vc->attempts++;
	uv_update_time(vc->loop);
	uint64_t now = uv_now(vc->loop);
	unsigned left = vc->deadline > now ? (unsigned)(vc->deadline - now) : 1;
	if (unix_connect_start(vc->loop, vc->path, left, vc_on_unix, vc, &vc->uc, &e) < 0)
		vc_finish(vc, -1, &e);
}

int vsock_connect_start(uv_loop_t *loop, const char *uds_path, uint32_t port, unsigned deadline_ms,
			unix_connect_cb done, void *ctx, struct vsock_connect **out, struct err *e)
{
	struct vsock_connect *vc = calloc(1, sizeof(*vc));
	if (!vc)
		return err_set(e, -ENOMEM, "out of memory");
	if (strlen(uds_path) >= sizeof(vc->path)) {
		free(vc);
		return err_set(e, -ENAMETOOLONG, "vsock socket path too long: %s", uds_path);
	}
	snprintf(vc->path, sizeof(vc->path), "%s", uds_path);
	vc->loop = loop;
	vc->port = port;
	vc->done = done;
	vc->ctx = ctx;
	vc->fd = -1;
	vc->out_len = (size_t)snprintf(vc->out, sizeof(vc->out), "CONNECT %u\n", port);
	uv_update_time(loop);
	vc->deadline = uv_now(loop) + deadline_ms;
	uv_timer_init(loop, &vc->retry);
	vc->retry.data = vc;
	vc->handles = 1;
	*out = vc;
	vc_try(vc);
	return 0;
}

void vsock_connect_cancel(struct vsock_connect *vc)
{
	if (!vc || vc->finished)
		return;
	vc->done = NULL;
	vc_finish(vc, -1, NULL);
}

/* ---- guest-initiated connections ----
 * A plain listening socket watched with uv_poll, so that each connection is
 * accept4'ed here as an fd of our own (uv_listen would accept it into a libuv
 * stream instead). */

struct vsock_listen {
	uv_poll_t poll;
	int fd;
	char path[108];
	vsock_accept_cb cb;
	void *ctx;
};

static void vl_closed(uv_handle_t *h)
{
	struct vsock_listen *vl = h->data;
	close(vl->fd);
	free(vl);
}

static void vl_on_readable(uv_poll_t *p, int status, int events)
{
	struct vsock_listen *vl = p->data;
	(void)events;
	if (status < 0)
		return;
	for (int i = 0; i < 16; i++) {
		int fd = accept4(vl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (vl->cb)
			vl->cb(vl->ctx, fd);
		else
			close(fd);
	}
}

int vsock_listen_start(uv_loop_t *loop, const char *uds_path, uint32_t port, vsock_accept_cb cb,
		       void *ctx, struct vsock_listen **out, struct err *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", uds_path, port);
	if (n < 0 || (size_t)n >= sizeof(a.sun_path))
		return err_set(e, -ENAMETOOLONG, "vsock listen path too long: %s_%u", uds_path, port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int rc = -errno;
		close(fd);
		return err_set(e, rc, "listening on %s for guest-initiated vsock connections: %s", a.sun_path,
			       strerror(-rc));
	}
	struct vsock_listen *vl = calloc(1, sizeof(*vl));
	if (!vl || listen(fd, 16) < 0 || uv_poll_init(loop, &vl->poll, fd) < 0) {
		int rc = vl ? -errno : -ENOMEM;
		unlink(a.sun_path);
		close(fd);
		free(vl);
		return err_set(e, rc ? rc : -EIO, "listening on %s: %s", a.sun_path, strerror(rc ? -rc : EIO));
	}
	vl->fd = fd;
	vl->cb = cb;
	vl->ctx = ctx;
	snprintf(vl->path, sizeof(vl->path), "%s", a.sun_path);
	vl->poll.data = vl;
	uv_poll_start(&vl->poll, UV_READABLE, vl_on_readable);
	*out = vl;
	return 0;
}

void vsock_listen_close(struct vsock_listen *vl)
{
	if (!vl)
		return;
	vl->cb = NULL;
	unlink(vl->path);
	uv_poll_stop(&vl->poll);
	uv_close((uv_handle_t *)&vl->poll, vl_closed);
}
