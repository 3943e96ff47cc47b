/* The vsock connect step (vm/vsock_connect.c) against a peer speaking
 * Firecracker's host side of hybrid vsock on a Unix socket: it reads
 * `CONNECT <port>\n` and answers `OK <n>\n`, or closes the connection when
 * nothing listens on the guest port (what Firecracker does). The fd we get is
 * handed to the real channel (channel_open_fd), so "not one byte lost" means
 * the guest's first frame, sent in the same write as the OK line, arrives as
 * a hello. Also: the OK line split across writes; refusals retried until the
 * guest listens, and reported at the deadline; a reply that is not OK; and
 * guest-initiated connections accepted on <uds_path>_<port>. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "proto/frame.h"
#include "vm/channel.h"
#include "vm/vsock_connect.h"

enum peer_mode { PM_OK_WITH_FRAME, PM_OK_SPLIT, PM_REFUSE_THEN_OK, PM_REFUSE_ALWAYS, PM_GARBAGE };

struct t {
	char dir[64];
	char sock[108];
	pid_t peer;
	uv_loop_t loop;
	int done;
	int fd;
	struct err e;
	int hello;
	int chan_err;
};

static void peer_write(int c, const void *p, size_t n)
{
	if (write(c, p, n) != (ssize_t)n)
		_exit(7);
}

/* Reads one CONNECT line byte by byte (so it never reads a frame) and checks it. */
static void peer_read_connect(int c)
{
	char line[32];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		if (read(c, line + n, 1) != 1)
			_exit(8);
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	if (strcmp(line, "CONNECT 52\n"))
		_exit(9);
}

static void peer_main(int ls, enum peer_mode m)
{
	json_t *hello = json_pack("{s:s, s:s, s:{s:i, s:s}}", "jsonrpc", "2.0", "method", "hello", "params",
				  "version", 2, "kernel", "6.1");
	size_t flen;
	uint8_t *frame = frame_encode(hello, &flen);
	for (int attempt = 0;; attempt++) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			_exit(2);
		peer_read_connect(c);
		if (m == PM_REFUSE_ALWAYS || (m == PM_REFUSE_THEN_OK && attempt < 3)) {
			close(c);   /* nothing listens on the guest port (yet) */
			continue;
		}
		if (m == PM_GARBAGE) {
			peer_write(c, "FAILURE\n", 8);
		} else if (m == PM_OK_SPLIT) {
			/* Separate segments: the reader must assemble the line. */
			peer_write(c, "O", 1);
			usleep(20000);
			peer_write(c, "K 10", 4);
			usleep(20000);
			peer_write(c, "73741824\n", 9);
			usleep(20000);
			peer_write(c, frame, flen);
		} else {
			/* The OK line and the first frame in one write, so one read. */
			uint8_t buf[512];
			memcpy(buf, "OK 1073741824\n", 14);
			memcpy(buf + 14, frame, flen);
			peer_write(c, buf, 14 + flen);
		}
		char sink[64];
		while (read(c, sink, sizeof(sink)) > 0)
			;
		_exit(0);
	}
}

static void t_start(struct t *t, enum peer_mode m)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/ic-vsock-XXXXXX");
	cr_assert(mkdtemp(t->dir));
	snprintf(t->sock, sizeof(t->sock), "%s/v.sock", t->dir);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", t->sock);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(ls, 8), 0);
	fflush(NULL);
	t->peer = fork();
	if (t->peer == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a failed test */
		peer_main(ls, m);
	}
	close(ls);
	uv_loop_init(&t->loop);
}

static void t_stop(struct t *t)
{
	uv_run(&t->loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&t->loop), 0, "a handle was left open");
	if (t->peer > 0) {
		kill(t->peer, SIGKILL);
		waitpid(t->peer, NULL, 0);
	}
	unlink(t->sock);
	rmdir(t->dir);
}

static void on_connected(void *ctx, int fd, const struct err *e)
{
	struct t *t = ctx;
	t->done++;
	t->fd = fd;
	if (e)
		t->e = *e;
}

static int on_notify(struct channel *ch, const char *method, json_t *params, void *ctx, struct err *e)
{
	struct t *t = ctx;
	(void)ch;
	(void)params;
	(void)e;
	t->hello += !strcmp(method, "hello");
	return 0;
}

static void on_chan_error(struct channel *ch, const struct err *e, void *ctx)
{
	struct t *t = ctx;
	(void)ch;
	(void)e;
	t->chan_err++;
}

static void on_guard(uv_timer_t *g)
{
	*(int *)g->data = 1;
}

/* Runs the loop until *flag, bounded by a guard timer (so a loop with nothing
 * else to wake it still ends). */
static void run_until(struct t *t, const int *flag)
{
	uv_timer_t guard;
	int fired = 0;
	uv_timer_init(&t->loop, &guard);
	guard.data = &fired;
	uv_timer_start(&guard, on_guard, 10000, 0);
	while (!*flag && !fired)
		uv_run(&t->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&t->loop, UV_RUN_NOWAIT);
	cr_assert(*flag, "nothing happened within 10 s");
}

static void connect_and_expect_hello(enum peer_mode m)
{
	struct t t;
	t_start(&t, m);
	struct vsock_connect *vc;
	struct err e = { 0 };
	cr_assert_eq(vsock_connect_start(&t.loop, t.sock, 52, 5000, on_connected, &t, &vc, &e), 0, "%s", e.msg);
	run_until(&t, &t.done);
	cr_assert_geq(t.fd, 0, "%s", t.e.msg);
	static const struct channel_handlers h = { .notify = on_notify, .on_error = on_chan_error };
	struct channel *ch;
	cr_assert_eq(channel_open_fd(&t.loop, t.fd, &h, &t, &ch, &e), 0, "%s", e.msg);
	run_until(&t, &t.hello);
	cr_expect_eq(t.hello, 1);
	cr_expect_eq(t.chan_err, 0, "the channel saw a broken stream: a byte was lost or added");
	channel_close(ch);
	t_stop(&t);
}

Test(vsock_connect, ok_and_the_first_frame_in_one_read_lose_nothing)
{
	connect_and_expect_hello(PM_OK_WITH_FRAME);
}

Test(vsock_connect, an_ok_line_split_across_writes_is_assembled)
{
	connect_and_expect_hello(PM_OK_SPLIT);
}

Test(vsock_connect, refusals_are_retried_until_the_guest_listens)
{
	connect_and_expect_hello(PM_REFUSE_THEN_OK);
}

Test(vsock_connect, a_port_nobody_listens_on_fails_at_the_deadline_saying_so)
{
	struct t t;
	t_start(&t, PM_REFUSE_ALWAYS);
	struct vsock_connect *vc;
	struct err e = { 0 };
	cr_assert_eq(vsock_connect_start(&t.loop, t.sock, 52, 300, on_connected, &t, &vc, &e), 0);
	run_until(&t, &t.done);
	cr_expect_lt(t.fd, 0);
	cr_expect_eq(t.e.code, -ECONNREFUSED, "%s", t.e.msg);
	cr_expect(strstr(t.e.msg, "vsock port 52"), "%s", t.e.msg);
	cr_expect(strstr(t.e.msg, "closed before OK"), "%s", t.e.msg);
	t_stop(&t);
}

Test(vsock_connect, a_reply_that_is_not_ok_is_a_protocol_error)
{
	struct t t;
	t_start(&t, PM_GARBAGE);
	struct vsock_connect *vc;
	struct err e = { 0 };
	cr_assert_eq(vsock_connect_start(&t.loop, t.sock, 52, 3000, on_connected, &t, &vc, &e), 0);
	run_until(&t, &t.done);
	cr_expect_lt(t.fd, 0);
	cr_expect_eq(t.e.code, -EPROTO, "%s", t.e.msg);
	cr_expect(strstr(t.e.msg, "FAILURE"), "the peer's words are quoted: %s", t.e.msg);
	t_stop(&t);
}

Test(vsock_connect, no_socket_at_all_fails_at_the_deadline_and_cancel_is_silent)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct t t = { .fd = -1 };
	struct vsock_connect *vc;
	struct err e = { 0 };
	cr_assert_eq(vsock_connect_start(&loop, "/tmp/ic-no-such-dir/v.sock", 52, 100, on_connected, &t, &vc, &e), 0);
	while (!t.done && uv_run(&loop, UV_RUN_ONCE))
		;
	cr_expect_eq(t.done, 1);
	cr_expect(strstr(t.e.msg, "ic-no-such-dir"), "%s", t.e.msg);
	struct t t2 = { .fd = -1 };
	cr_assert_eq(vsock_connect_start(&loop, "/tmp/ic-no-such-dir/v.sock", 52, 5000, on_connected, &t2, &vc, &e), 0);
	vsock_connect_cancel(vc);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(t2.done, 0, "no callback after cancel");
	cr_expect_eq(uv_loop_close(&loop), 0);
}

static void on_accept(void *ctx, int fd)
{
	struct t *t = ctx;
	t->fd = fd;
	t->done++;
}

Test(vsock_listen, guest_initiated_connections_arrive_on_uds_path_port)
{
	char dir[] = "/tmp/ic-vsockl-XXXXXX";
	cr_assert(mkdtemp(dir));
	char base[64], want[80];
	snprintf(base, sizeof(base), "%s/v.sock", dir);
	snprintf(want, sizeof(want), "%s_52", base);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct t t = { .fd = -1 };
	struct vsock_listen *vl;
	struct err e = { 0 };
	cr_assert_eq(vsock_listen_start(&loop, base, 52, on_accept, &t, &vl, &e), 0, "%s", e.msg);
	cr_assert_eq(access(want, F_OK), 0, "not listening on %s", want);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", want);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(write(c, "x", 1), 1);
	while (!t.done && uv_run(&loop, UV_RUN_ONCE))
		;
	cr_assert_geq(t.fd, 0);
	char b = 0;
	struct pollfd p = { .fd = t.fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 10000), 1);
	cr_assert_eq(read(t.fd, &b, 1), 1);
	cr_expect_eq(b, 'x', "the accepted fd is the guest's stream");
	close(t.fd);
	close(c);
	vsock_listen_close(vl);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&loop), 0);
	cr_expect_neq(access(want, F_OK), 0, "the listening socket is removed");
	rmdir(dir);
}
