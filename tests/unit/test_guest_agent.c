/* The real ironclaw-guest binary, run on the host with --channel-fd over a
 * socketpair and driven with real frames: every method, the ordering rules
 * (reply before output, output before exit), byte-exact streams, timeouts,
 * backpressure, hostile params and hostile frames. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/rpc.h"

#define RECV_TIMEOUT_MS 20000
#define QMAX 4096

struct agent {
	pid_t pid;
	int fd;
	struct frame_decoder dec;
	json_t *q[QMAX];
	size_t qhead, qlen;
	json_t *held[QMAX];  /* set aside while waiting for a response */
	size_t nheld, held_next;
	int eof;
};

static const char *guest_bin(void)
{
	static char path[4096];
	const char *g = getenv("IRONCLAW_GUEST");
	if (g && *g)
		return g;
	const char *root = getenv("IRONCLAW_ROOT");
	snprintf(path, sizeof(path), "%s/build/ironclaw-guest", root ? root : ".");
	return path;
}

static int agent_queue_bin(const struct frame_bin *b, void *ctx);

static void agent_start_with(struct agent *a, int close_stdio)
{
	int sv[2];
	memset(a, 0, sizeof(*a));
	cr_assert_eq(access(guest_bin(), X_OK), 0, "%s is missing (run make)", guest_bin());
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	a->pid = fork();
	cr_assert_geq(a->pid, 0);
	if (a->pid == 0) {
		/* dup2 clears CLOEXEC on the copy the agent keeps. */
		dup2(sv[1], 3);
		if (close_stdio)
			close(0), close(1), close(2);
		execl(guest_bin(), "ironclaw-guest", "--channel-fd", "3", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	a->fd = sv[0];
	cr_assert_eq(fcntl(a->fd, F_SETFL, O_NONBLOCK), 0);
	frame_decoder_init(&a->dec);
	frame_decoder_accept_binary(&a->dec, agent_queue_bin);
}

static void agent_start(struct agent *a)
{
	agent_start_with(a, 0);
}

static int agent_queue(json_t *msg, void *ctx)
{
	struct agent *a = ctx;
	cr_assert_lt(a->qlen, QMAX, "test queue overflow");
	a->q[(a->qhead + a->qlen) % QMAX] = json_incref(msg);
	a->qlen++;
	return 0;
}

/* Output comes in binary frames; the tests below reason about messages, so
 * each one is queued as the exec.output notification it stands for. */
static int agent_queue_bin(const struct frame_bin *b, void *ctx)
{
	cr_assert_eq(b->type, FRAME_BIN_OUTPUT, "agent sent binary frame type %u", b->type);
	char *enc = malloc(b64_encoded_len(b->len) + 1);
	b64_encode(b->data, b->len, enc);
	json_t *m = rpc_notification("exec.output",
		json_pack("{s:I,s:s,s:s}", "exec", (json_int_t)b->exec, "stream",
			  b->arg == 1 ? "stdout" : "stderr", "data", enc));
	free(enc);
	int rc = agent_queue(m, ctx);
	json_decref(m);
	return rc;
}

static void agent_feed(struct agent *a)
{
	static uint8_t chunk[1 << 16];
	ssize_t r = read(a->fd, chunk, sizeof(chunk));
	if (r <= 0) {
		a->eof = r == 0 || errno != EAGAIN;
		return;
	}
	cr_assert_eq(frame_decoder_feed(&a->dec, chunk, (size_t)r, agent_queue, a), 0,
		     "agent sent a bad frame: %s", a->dec.error);
}

/* Next message from the agent (owned), or NULL at EOF / after timeout_ms. */
static json_t *agent_recv_within(struct agent *a, int timeout_ms)
{
	double end = clock_now_ms() + timeout_ms;
	if (a->held_next < a->nheld) {
		json_t *h = a->held[a->held_next++];
		if (a->held_next == a->nheld)
			a->held_next = a->nheld = 0;
		return h;
	}
	while (a->qlen == 0 && !a->eof) {
		int left = (int)(end - clock_now_ms());
		if (left <= 0)
			return NULL;
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		if (poll(&p, 1, left) > 0)
			agent_feed(a);
	}
	if (a->qlen == 0)
		return NULL;
	json_t *m = a->q[a->qhead];
	a->qhead = (a->qhead + 1) % QMAX;
	a->qlen--;
	return m;
}

static json_t *agent_recv(struct agent *a)
{
	json_t *m = agent_recv_within(a, RECV_TIMEOUT_MS);
	cr_assert_not_null(m, "no message from the agent within %d ms (eof=%d)", RECV_TIMEOUT_MS,
			   a->eof);
	return m;
}

/* Writes all bytes, reading (and queueing) the agent's messages meanwhile: the
 * agent stops reading requests while its output is backed up, so a host that
 * only writes would deadlock with it, by design. */
static void agent_send_raw(struct agent *a, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n > 0) {
		struct pollfd pf = { .fd = a->fd, .events = POLLOUT | (a->eof ? 0 : POLLIN) };
		cr_assert_gt(poll(&pf, 1, RECV_TIMEOUT_MS), 0, "agent neither reads nor writes");
		if (pf.revents & POLLIN)
			agent_feed(a);
		if (!(pf.revents & (POLLOUT | POLLERR | POLLHUP)))
			continue;
		ssize_t w = write(a->fd, c, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		cr_assert_gt(w, 0, "write to agent: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

static void agent_send(struct agent *a, json_t *msg)
{
	size_t len;
	uint8_t *f = frame_encode(msg, &len);
	cr_assert_not_null(f);
	agent_send_raw(a, f, len);
	free(f);
	json_decref(msg);
}

static void agent_request(struct agent *a, json_int_t id, const char *method, json_t *params)
{
	agent_send(a, rpc_request(id, method, params));
}

/* Waits for the response to id. Other messages met on the way are kept, in
 * order, for the next agent_recv calls. Returns the response (owned). */
static json_t *agent_response(struct agent *a, json_int_t id)
{
	json_t *stash[QMAX];
	size_t n = 0;
	for (;;) {
		json_t *m = agent_recv(a);
		json_t *jid = json_object_get(m, "id");
		if (jid && json_integer_value(jid) == id && !json_object_get(m, "method")) {
			/* Put the stash in front of whatever was held before. */
			cr_assert_lt(n + a->nheld - a->held_next, QMAX);
			for (size_t i = a->held_next; i < a->nheld; i++)
				stash[n++] = a->held[i];
			memcpy(a->held, stash, n * sizeof(stash[0]));
			a->nheld = n;
			a->held_next = 0;
			return m;
		}
		cr_assert_lt(n, QMAX);
		stash[n++] = m;
	}
}

static json_t *agent_call(struct agent *a, json_int_t id, const char *method, json_t *params)
{
	agent_request(a, id, method, params);
	return agent_response(a, id);
}

static void agent_expect_hello(struct agent *a)
{
	json_t *m = agent_recv(a);
	cr_assert_str_eq(json_string_value(json_object_get(m, "method")), "hello");
	cr_assert_null(json_object_get(m, "id"), "hello must be a notification");
	json_t *p = json_object_get(m, "params");
	cr_assert_eq(json_integer_value(json_object_get(p, "version")), PROTO_VERSION);
	cr_assert(json_is_string(json_object_get(p, "kernel")));
	json_decref(m);
}

/* Waits for the agent to exit; returns its raw status. */
static int agent_wait(struct agent *a, int timeout_ms)
{
	int status = 0;
	double end = clock_now_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(a->pid, &status, WNOHANG);
		if (r == a->pid)
			break;
		if (clock_now_ms() > end) {
			kill(a->pid, SIGKILL);
			waitpid(a->pid, &status, 0);
			cr_assert_fail("agent did not exit within %d ms", timeout_ms);
		}
		usleep(2000);
	}
	a->pid = 0;
	return status;
}

static void agent_stop(struct agent *a)
{
	if (a->pid > 0) {
		close(a->fd);
		a->fd = -1;
		int st = agent_wait(a, 5000);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "agent should exit 0 on a clean EOF (status %#x)", st);
	}
	if (a->fd >= 0)
		close(a->fd);
	for (size_t i = a->held_next; i < a->nheld; i++)
		json_decref(a->held[i]);
	while (a->qlen) {
		json_decref(a->q[a->qhead]);
		a->qhead = (a->qhead + 1) % QMAX;
		a->qlen--;
	}
	frame_decoder_free(&a->dec);
}

static void expect_error(json_t *resp, int code, const char *needle)
{
	json_t *err = json_object_get(resp, "error");
	char *dump = json_dumps(resp, JSON_COMPACT);
	cr_assert_not_null(err, "expected error %d, got %s", code, dump);
	cr_assert_eq(json_integer_value(json_object_get(err, "code")), code, "got %s", dump);
	const char *msg = json_string_value(json_object_get(err, "message"));
	cr_assert(msg && strstr(msg, needle), "message should mention '%s': %s", needle, dump);
	free(dump);
	json_decref(resp);
}

/* Everything one exec produced, collected from its start to its exit. */
struct exec_run {
	json_int_t pid;
	struct buf out, err;
	int has_code, code, has_signal, sig, timed_out;
	int events_after_exit;
};

static void exec_run_free(struct exec_run *r)
{
	buf_free(&r->out);
	buf_free(&r->err);
}

/* Handles one message for exec id; returns 1 once its exec.exit arrived. */
static int exec_absorb(json_t *m, json_int_t id, struct exec_run *r, int *exited)
{
	const char *method = json_string_value(json_object_get(m, "method"));
	json_t *p = json_object_get(m, "params");
	if (!method || json_integer_value(json_object_get(p, "exec")) != id)
		return 0;
	if (*exited)
		r->events_after_exit++;
	if (!strcmp(method, "exec.output")) {
		const char *stream = json_string_value(json_object_get(p, "stream"));
		json_t *d = json_object_get(p, "data");
		size_t n = json_string_length(d);
		uint8_t *raw = malloc(n / 4 * 3 + 1);
		long dl = b64_decode(json_string_value(d), n, raw);
		cr_assert_geq(dl, 0, "bad base64 in exec.output");
		cr_assert_gt(dl, 0, "empty exec.output chunk");
		struct buf *b = !strcmp(stream, "stdout") ? &r->out : &r->err;
		cr_assert(!strcmp(stream, "stdout") || !strcmp(stream, "stderr"), "stream %s", stream);
		cr_assert_eq(buf_append(b, raw, (size_t)dl), 0);
		free(raw);
	} else if (!strcmp(method, "exec.exit")) {
		json_t *c = json_object_get(p, "code"), *s = json_object_get(p, "signal");
		cr_assert(!!c != !!s, "exec.exit needs exactly one of code and signal");
		r->has_code = !!c;
		r->code = (int)json_integer_value(c);
		r->has_signal = !!s;
		r->sig = (int)json_integer_value(s);
		r->timed_out = json_is_true(json_object_get(p, "timed_out"));
		*exited = 1;
		return 1;
	}
	return 0;
}

/* Starts argv (a JSON array spec) and collects everything up to exec.exit.
 * Checks that the exec.start reply arrives before any output. */
static void exec_collect(struct agent *a, json_int_t id, json_t *params, struct exec_run *r)
{
	int exited = 0, replied = 0;
	memset(r, 0, sizeof(*r));
	buf_init(&r->out, 256u << 20);
	buf_init(&r->err, 256u << 20);
	agent_request(a, id, "exec.start", params);
	while (!exited) {
		json_t *m = agent_recv(a);
		json_t *jid = json_object_get(m, "id");
		if (jid && json_integer_value(jid) == id && !json_object_get(m, "method")) {
			json_t *res = json_object_get(m, "result");
			char *dump = json_dumps(m, JSON_COMPACT);
			cr_assert_not_null(res, "exec.start failed: %s", dump);
			free(dump);
			r->pid = json_integer_value(json_object_get(res, "pid"));
			cr_assert_gt(r->pid, 0);
			replied = 1;
		} else {
			json_t *p = json_object_get(m, "params");
			if (json_integer_value(json_object_get(p, "exec")) == id)
				cr_assert(replied, "output or exit came before the exec.start reply");
			exec_absorb(m, id, r, &exited);
		}
		json_decref(m);
	}
}

TestSuite(guest_agent, .timeout = 60);

static json_t *sh(const char *script)
{
	return json_pack("{s:[s,s,s]}", "argv", "/bin/sh", "-c", script);
}

Test(guest_agent, hello_then_ping)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	json_t *r = agent_call(&a, 1, "ping", json_object());
	cr_assert(json_is_object(json_object_get(r, "result")));
	cr_assert_eq(json_object_size(json_object_get(r, "result")), 0);
	json_decref(r);
	/* params may be left out entirely */
	r = agent_call(&a, 2, "ping", NULL);
	cr_assert_not_null(json_object_get(r, "result"));
	json_decref(r);
	agent_stop(&a);
}

Test(guest_agent, exit_codes_and_signals)
{
	struct agent a;
	struct exec_run r;
	agent_start(&a);
	agent_expect_hello(&a);
	exec_collect(&a, 10, json_pack("{s:[s]}", "argv", "true"), &r);
	cr_assert(r.has_code && r.code == 0);
	exec_run_free(&r);
	exec_collect(&a, 11, sh("exit 1"), &r);
	cr_assert(r.has_code && r.code == 1, "code %d", r.code);
	exec_run_free(&r);
	exec_collect(&a, 12, sh("exit 137"), &r);
	cr_assert(r.has_code && r.code == 137, "code %d", r.code);
	exec_run_free(&r);
	exec_collect(&a, 13, sh("kill -9 $$"), &r);
	cr_assert(r.has_signal && r.sig == 9 && !r.timed_out, "signal %d", r.sig);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, stdout_and_stderr_kept_apart)
{
	struct agent a;
	struct exec_run r;
	agent_start(&a);
	agent_expect_hello(&a);
	exec_collect(&a, 5, sh("echo out1; echo err1 >&2; echo out2; printf 'err2' >&2"), &r);
	cr_assert_eq(r.out.len, 10);
	cr_assert_eq(memcmp(r.out.data, "out1\nout2\n", 10), 0);
	cr_assert_eq(r.err.len, 9);
	cr_assert_eq(memcmp(r.err.data, "err1\nerr2", 9), 0);
	cr_assert_eq(r.events_after_exit, 0);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, works_when_started_with_stdio_closed)
{
	struct agent a;
	struct exec_run r;
	/* A daemon may start it with 0-2 closed: pipes must not land there. */
	agent_start_with(&a, 1);
	agent_expect_hello(&a);
	/* It fills 0-2 itself, so its own log lines cannot end up in a pipe. */
	for (int fd = 0; fd < 3; fd++) {
		char p[64], target[256] = "";
		snprintf(p, sizeof(p), "/proc/%d/fd/%d", a.pid, fd);
		ssize_t n = readlink(p, target, sizeof(target) - 1);
		cr_assert_gt(n, 0, "agent fd %d is closed", fd);
		target[n] = '\0';
		cr_assert_str_eq(target, "/dev/null", "agent fd %d is %s", fd, target);
	}
	exec_collect(&a, 5, sh("echo out; echo err >&2"), &r);
	cr_assert(r.has_code && r.code == 0);
	cr_assert_eq(r.out.len, 4);
	cr_assert_eq(memcmp(r.out.data, "out\n", 4), 0);
	cr_assert_eq(r.err.len, 4);
	cr_assert_eq(memcmp(r.err.data, "err\n", 4), 0);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, env_cwd_and_default_path)
{
	struct agent a;
	struct exec_run r;
	agent_start(&a);
	agent_expect_hello(&a);
	/* env is the whole environment: FOO is set, HOME is not inherited, and
	 * a PATH is supplied so that "sh" and "pwd" resolve. */
	exec_collect(&a, 6, json_pack("{s:[s,s,s],s:[s],s:s}", "argv", "sh", "-c",
				      "echo \"$FOO|${HOME-unset}|$(pwd)\"", "env", "FOO=bar baz",
				      "cwd", "/tmp"), &r);
	cr_assert(r.has_code && r.code == 0);
	cr_assert_eq(r.out.len, strlen("bar baz|unset|/tmp\n"));
	cr_assert_eq(memcmp(r.out.data, "bar baz|unset|/tmp\n", r.out.len), 0);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, eight_mib_byte_exact, .timeout = 120)
{
	struct agent a;
	struct exec_run r;
	char path[] = "/tmp/ironclaw-guest-test-XXXXXX";
	size_t n = 8u << 20;
	uint8_t *blob = malloc(n);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		blob[i] = (uint8_t)x;
	}
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, blob, n), (ssize_t)n);
	close(fd);

	agent_start(&a);
	agent_expect_hello(&a);
	/* Interleave a little stderr to check it never bleeds into stdout. */
	char script[512];
	snprintf(script, sizeof(script), "echo begin >&2; cat %s; echo end >&2", path);
	exec_collect(&a, 7, sh(script), &r);
	unlink(path);
	cr_assert(r.has_code && r.code == 0);
	cr_assert_eq(r.out.len, n, "got %zu of %zu bytes", r.out.len, n);
	cr_assert_eq(memcmp(r.out.data, blob, n), 0, "8 MiB arrived but not byte-exact");
	cr_assert_eq(r.err.len, 10);
	cr_assert_eq(r.events_after_exit, 0);
	exec_run_free(&r);
	free(blob);
	agent_stop(&a);
}

Test(guest_agent, timeout_kills_the_process_group, .timeout = 60)
{
	struct agent a;
	struct exec_run r;
	agent_start(&a);
	agent_expect_hello(&a);
	double t0 = clock_now_ms();
	/* The background sleep is in the command's group: the timeout kills it too. */
	exec_collect(&a, 8, json_pack("{s:[s,s,s],s:i}", "argv", "sh", "-c",
				      "sleep 30 & echo $!; wait", "timeout_ms", 300), &r);
	double took = clock_now_ms() - t0;
	cr_assert(r.has_signal && r.sig == 9, "expected SIGKILL, got code %d signal %d", r.code, r.sig);
	cr_assert(r.timed_out, "timed_out flag missing");
	cr_assert_lt(took, 10000, "timeout took %.0f ms", took);
	cr_assert_geq(took, 250, "killed before its timeout (%.0f ms)", took);
	int bg = atoi((const char *)r.out.data);
	cr_assert_gt(bg, 1);
	/* Once reaped (by us as the subreaper, or by init), it is gone or a zombie. */
	int alive = 1;
	for (int i = 0; i < 500 && alive; i++) {
		char p[64], st[512] = "";
		snprintf(p, sizeof(p), "/proc/%d/stat", bg);
		FILE *f = fopen(p, "r");
		if (!f) {
			alive = 0;
			break;
		}
		size_t got = fread(st, 1, sizeof(st) - 1, f);
		fclose(f);
		st[got] = '\0';
		const char *close_paren = strrchr(st, ')');
		if (close_paren && close_paren[2] == 'Z')
			alive = 0;
		else
			usleep(10000);
	}
	cr_assert_not(alive, "background process %d survived the timeout", bg);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, background_writer_does_not_hold_exit_back, .timeout = 60)
{
	struct agent a;
	struct exec_run r;
	agent_start(&a);
	agent_expect_hello(&a);
	/* The leader exits at once; `yes` floods the same pipe forever. exec.exit
	 * must still come, after what the leader wrote. */
	double t0 = clock_now_ms();
	exec_collect(&a, 9, sh("yes & echo leader-done"), &r);
	cr_assert_lt(clock_now_ms() - t0, 20000, "exec.exit held back by a background writer");
	cr_assert(r.has_code && r.code == 0);
	cr_assert_not_null(memmem(r.out.data, r.out.len, "leader-done\n", 12),
			   "the leader's own output is missing");
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, kill_sends_the_signal)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	agent_request(&a, 20, "exec.start", json_pack("{s:[s,s]}", "argv", "sleep", "30"));
	json_t *m = agent_response(&a, 20);
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	m = agent_call(&a, 21, "exec.kill", json_pack("{s:i,s:i}", "exec", 20, "signal", 15));
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	int exited = 0;
	struct exec_run r;
	memset(&r, 0, sizeof(r));
	buf_init(&r.out, 1 << 20);
	buf_init(&r.err, 1 << 20);
	while (!exited) {
		m = agent_recv(&a);
		exec_absorb(m, 20, &r, &exited);
		json_decref(m);
	}
	cr_assert(r.has_signal && r.sig == 15 && !r.timed_out, "signal %d", r.sig);
	/* After exec.exit the id is free and unknown to exec.kill. */
	expect_error(agent_call(&a, 22, "exec.kill", json_pack("{s:i}", "exec", 20)), -32602,
		     "no running command");
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, stdin_write_and_eof)
{
	struct agent a;
	struct exec_run r;
	int exited = 0;
	agent_start(&a);
	agent_expect_hello(&a);
	memset(&r, 0, sizeof(r));
	buf_init(&r.out, 1 << 20);
	buf_init(&r.err, 1 << 20);
	agent_request(&a, 30, "exec.start", json_pack("{s:[s],s:b}", "argv", "cat", "stdin", 1));
	json_t *m = agent_response(&a, 30);
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	/* Binary-safe: include a NUL and high bytes. */
	const uint8_t part1[] = { 'h', 'i', 0, 0xff, '\n' };
	char enc[16];
	b64_encode(part1, sizeof(part1), enc);
	m = agent_call(&a, 31, "exec.stdin", json_pack("{s:i,s:s}", "exec", 30, "data", enc));
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	m = agent_call(&a, 32, "exec.stdin", json_pack("{s:i,s:s,s:b}", "exec", 30, "data", "YnllCg==",
						       "eof", 1));
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	while (!exited) {
		m = agent_recv(&a);
		exec_absorb(m, 30, &r, &exited);
		json_decref(m);
	}
	cr_assert(r.has_code && r.code == 0);
	cr_assert_eq(r.out.len, sizeof(part1) + 4);
	cr_assert_eq(memcmp(r.out.data, part1, sizeof(part1)), 0);
	cr_assert_eq(memcmp(r.out.data + sizeof(part1), "bye\n", 4), 0);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, large_stdin_streams_both_ways, .timeout = 120)
{
	struct agent a;
	struct exec_run r;
	int exited = 0, replies = 0;
	const size_t chunk = 256 * 1024, chunks = 12;
	agent_start(&a);
	agent_expect_hello(&a);
	memset(&r, 0, sizeof(r));
	buf_init(&r.out, 64u << 20);
	buf_init(&r.err, 1 << 20);
	agent_request(&a, 40, "exec.start", json_pack("{s:[s],s:b}", "argv", "cat", "stdin", 1));
	json_t *m = agent_response(&a, 40);
	json_decref(m);
	uint8_t *raw = malloc(chunk);
	char *enc = malloc(b64_encoded_len(chunk) + 1);
	/* Send everything before reading: the agent must keep reading both
	 * ways (pipes full in both directions would deadlock a naive loop). */
	for (size_t c = 0; c < chunks; c++) {
		for (size_t i = 0; i < chunk; i++)
			raw[i] = (uint8_t)(i * 7 + c);
		b64_encode(raw, chunk, enc);
		agent_request(&a, 41 + (json_int_t)c, "exec.stdin",
			      json_pack("{s:i,s:s,s:b}", "exec", 40, "data", enc, "eof", c == chunks - 1));
	}
	while (!exited) {
		m = agent_recv(&a);
		json_t *jid = json_object_get(m, "id");
		if (jid && !json_object_get(m, "method")) {
			cr_assert_not_null(json_object_get(m, "result"), "exec.stdin failed");
			replies++;
		}
		exec_absorb(m, 40, &r, &exited);
		json_decref(m);
	}
	cr_assert_eq(replies, (int)chunks);
	cr_assert_eq(r.out.len, chunk * chunks);
	for (size_t c = 0; c < chunks; c++)
		for (size_t i = 0; i < chunk; i += 4099)
			cr_assert_eq(r.out.data[c * chunk + i], (uint8_t)(i * 7 + c));
	free(raw);
	free(enc);
	exec_run_free(&r);
	agent_stop(&a);
}

Test(guest_agent, two_execs_at_once)
{
	struct agent a;
	struct exec_run r1, r2;
	int ex1 = 0, ex2 = 0, first_exit = 0;
	agent_start(&a);
	agent_expect_hello(&a);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	buf_init(&r1.out, 1 << 20);
	buf_init(&r1.err, 1 << 20);
	buf_init(&r2.out, 1 << 20);
	buf_init(&r2.err, 1 << 20);
	/* The slow one starts first and ends last: both really run at once. */
	agent_request(&a, 50, "exec.start", sh("echo A1; sleep 0.5; echo A2"));
	agent_request(&a, 51, "exec.start", sh("echo B; exit 4"));
	while (!ex1 || !ex2) {
		json_t *m = agent_recv(&a);
		if (exec_absorb(m, 50, &r1, &ex1) && !first_exit)
			first_exit = 50;
		if (exec_absorb(m, 51, &r2, &ex2) && !first_exit)
			first_exit = 51;
		json_decref(m);
	}
	cr_assert_eq(first_exit, 51, "the short command should finish first");
	cr_assert(r1.has_code && r1.code == 0);
	cr_assert(r2.has_code && r2.code == 4);
	cr_assert_eq(r1.out.len, 6);
	cr_assert_eq(memcmp(r1.out.data, "A1\nA2\n", 6), 0);
	cr_assert_eq(r2.out.len, 2);
	cr_assert_eq(memcmp(r2.out.data, "B\n", 2), 0);
	exec_run_free(&r1);
	exec_run_free(&r2);
	agent_stop(&a);
}

Test(guest_agent, exec_of_missing_program_fails_cleanly)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	expect_error(agent_call(&a, 60, "exec.start",
				json_pack("{s:[s]}", "argv", "/nonexistent/ironclaw-nope")),
		     -32000, "No such file");
	expect_error(agent_call(&a, 61, "exec.start",
				json_pack("{s:[s],s:s}", "argv", "true", "cwd", "/nonexistent-dir")),
		     -32000, "No such file");
	/* The id is free again: a failed start leaves no command behind. */
	json_t *m = agent_call(&a, 60, "ping", NULL);
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	agent_stop(&a);
}

Test(guest_agent, file_put_get_round_trip)
{
	struct agent a;
	char dir[] = "/tmp/ironclaw-guest-files-XXXXXX", path[256], enc[8192];
	uint8_t raw[4096];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/dir/blob.bin", dir);
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i ^ (i >> 8));
	b64_encode(raw, sizeof(raw), enc);
	agent_start(&a);
	agent_expect_hello(&a);

	json_t *m = agent_call(&a, 70, "file.put", json_pack("{s:s,s:s,s:i}", "path", path,
							      "data", enc, "mode", 0600));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "result"), "size")), 4096);
	json_decref(m);
	/* append doubles it */
	m = agent_call(&a, 71, "file.put", json_pack("{s:s,s:s,s:b}", "path", path, "data", enc,
						      "append", 1));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "result"), "size")), 8192);
	json_decref(m);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);

	/* Whole file, then a window at an offset. */
	m = agent_call(&a, 72, "file.get", json_pack("{s:s}", "path", path));
	json_t *res = json_object_get(m, "result");
	cr_assert_eq(json_integer_value(json_object_get(res, "size")), 8192);
	cr_assert(json_is_true(json_object_get(res, "eof")));
	const char *d = json_string_value(json_object_get(res, "data"));
	uint8_t back[8192];
	cr_assert_eq(b64_decode(d, strlen(d), back), 8192);
	cr_assert_eq(memcmp(back, raw, 4096), 0);
	cr_assert_eq(memcmp(back + 4096, raw, 4096), 0);
	json_decref(m);

	m = agent_call(&a, 73, "file.get", json_pack("{s:s,s:i,s:i}", "path", path, "offset", 100,
						      "length", 50));
	res = json_object_get(m, "result");
	cr_assert_not(json_is_true(json_object_get(res, "eof")));
	d = json_string_value(json_object_get(res, "data"));
	cr_assert_eq(b64_decode(d, strlen(d), back), 50);
	cr_assert_eq(memcmp(back, raw + 100, 50), 0);
	json_decref(m);

	/* Past the end: nothing, and eof. */
	m = agent_call(&a, 77, "file.get", json_pack("{s:s,s:i}", "path", path, "offset", 9000));
	res = json_object_get(m, "result");
	cr_assert_str_eq(json_string_value(json_object_get(res, "data")), "");
	cr_assert(json_is_true(json_object_get(res, "eof")));
	json_decref(m);
	/* Files that report size 0 but have content (procfs) still read. */
	m = agent_call(&a, 78, "file.get", json_pack("{s:s}", "path", "/proc/version"));
	d = json_string_value(json_object_get(json_object_get(m, "result"), "data"));
	cr_assert(d && b64_decode(d, strlen(d), back) > 10, "/proc/version read empty");
	cr_assert_eq(memcmp(back, "Linux", 5), 0);
	json_decref(m);

	/* An empty put truncates. */
	m = agent_call(&a, 74, "file.put", json_pack("{s:s,s:s}", "path", path, "data", ""));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "result"), "size")), 0);
	json_decref(m);

	expect_error(agent_call(&a, 75, "file.get", json_pack("{s:s}", "path", dir)), -32000,
		     "not a regular file");
	snprintf(path, sizeof(path), "%s/missing", dir);
	expect_error(agent_call(&a, 76, "file.get", json_pack("{s:s}", "path", path)), -32000,
		     "No such file");
	agent_stop(&a);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(guest_agent, bad_params_get_32602)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	struct { const char *method; const char *params; const char *needle; } cases[] = {
		{ "exec.start", "{}", "argv" },
		{ "exec.start", "{\"argv\":\"ls\"}", "argv" },
		{ "exec.start", "{\"argv\":[]}", "argv" },
		{ "exec.start", "{\"argv\":[1]}", "argv" },
		{ "exec.start", "{\"argv\":[\"\"]}", "argv" },
		{ "exec.start", "{\"argv\":[\"true\"],\"env\":[\"NOEQUALS\"]}", "env" },
		{ "exec.start", "{\"argv\":[\"true\"],\"cwd\":\"relative\"}", "cwd" },
		{ "exec.start", "{\"argv\":[\"true\"],\"timeout_ms\":-1}", "timeout_ms" },
		{ "exec.start", "{\"argv\":[\"true\"],\"stdin\":\"yes\"}", "stdin" },
		{ "exec.start", "{\"argv\":[\"true\"],\"bogus\":1}", "bogus" },
		{ "exec.stdin", "{\"exec\":999,\"data\":\"\"}", "no running command" },
		{ "exec.stdin", "{\"data\":\"\"}", "exec" },
		{ "exec.kill", "{\"exec\":\"x\"}", "exec" },
		{ "exec.kill", "{\"exec\":999}", "no running command" },
		{ "file.put", "{\"path\":\"rel/path\",\"data\":\"\"}", "absolute" },
		{ "file.put", "{\"path\":\"/tmp/x\",\"data\":\"!!!!\"}", "base64" },
		{ "file.put", "{\"path\":\"/tmp/x\",\"data\":\"abc\"}", "base64" },
		{ "file.put", "{\"path\":\"/tmp/x\"}", "data" },
		{ "file.put", "{\"path\":\"/tmp/x\",\"data\":\"\",\"mode\":99999}", "mode" },
		{ "file.get", "{\"path\":\"/etc/hostname\",\"length\":16777216}", "length" },
		{ "file.get", "{\"path\":\"/etc/hostname\",\"offset\":-5}", "offset" },
		{ "ping", "{\"x\":1}", "x" },
		{ "ping", "[1,2]", "object" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t je;
		json_t *p = json_loads(cases[i].params, 0, &je);
		cr_assert_not_null(p, "case %zu: %s", i, je.text);
		expect_error(agent_call(&a, 100 + (json_int_t)i, cases[i].method, p), -32602,
			     cases[i].needle);
	}
	expect_error(agent_call(&a, 200, "no.such.method", NULL), -32601, "no.such.method");
	/* Quoted host strings are cut to a length: never in the middle of a UTF-8
	 * sequence, or the error reply itself would be invalid JSON. */
	char longname[1024] = "/";
	for (int i = 0; i < 300; i++)
		strcat(longname, "\xc3\xa9");
	expect_error(agent_call(&a, 202, "exec.start", json_pack("{s:[s]}", "argv", longname)),
		     -32000, "cannot run");
	char key[200] = "";
	for (int i = 0; i < 50; i++)
		strcat(key, "\xe2\x82\xac");
	json_t *p = json_pack("{s:[s]}", "argv", "true");
	json_object_set_new(p, key, json_true());
	expect_error(agent_call(&a, 203, "exec.start", p), -32602, "unknown field");
	/* Still serving after all that. */
	json_t *m = agent_call(&a, 201, "ping", NULL);
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	agent_stop(&a);
}

static void expect_connection_dropped(const void *bytes, size_t n)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	agent_send_raw(&a, bytes, n);
	/* The agent must hang up without answering and exit 1, not crash. */
	json_t *m = agent_recv_within(&a, 5000);
	char *dump = m ? json_dumps(m, JSON_COMPACT) : NULL;
	cr_assert_null(m, "agent answered a bad frame: %s", dump);
	cr_assert(a.eof, "agent kept the connection open after a bad frame");
	int st = agent_wait(&a, 5000);
	cr_assert(WIFEXITED(st), "agent died of signal %d", WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 1);
	agent_stop(&a);
}

Test(guest_agent, oversized_frame_ends_connection)
{
	expect_connection_dropped("\xff\xff\xff\xff", 4);
}

Test(guest_agent, zero_length_frame_ends_connection)
{
	expect_connection_dropped("\0\0\0\0", 4);
}

Test(guest_agent, garbage_json_ends_connection)
{
	expect_connection_dropped("\0\0\0\x05{{{{{", 9);
}

Test(guest_agent, non_object_json_ends_connection)
{
	expect_connection_dropped("\0\0\0\x03[1]", 7);
}

Test(guest_agent, bad_envelope_ends_connection)
{
	const char *body = "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}";
	uint8_t f[128];
	size_t n = strlen(body);
	f[0] = f[1] = f[2] = 0;
	f[3] = (uint8_t)n;
	memcpy(f + 4, body, n);
	expect_connection_dropped(f, n + 4);
}

Test(guest_agent, host_notification_or_response_ends_connection)
{
	size_t n;
	json_t *note = rpc_notification("exec.output", json_object());
	uint8_t *f = frame_encode(note, &n);
	expect_connection_dropped(f, n);
	free(f);
	json_decref(note);
	json_t *resp = rpc_result(5, json_object());
	f = frame_encode(resp, &n);
	expect_connection_dropped(f, n);
	free(f);
	json_decref(resp);
}

Test(guest_agent, truncated_frame_then_eof_is_an_error)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	agent_send_raw(&a, "\0\0\0\x40{\"jsonrpc\"", 15);
	shutdown(a.fd, SHUT_WR);
	int st = agent_wait(&a, 5000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
	agent_stop(&a);
}

Test(guest_agent, shutdown_replies_then_exits)
{
	struct agent a;
	agent_start(&a);
	agent_expect_hello(&a);
	json_t *m = agent_call(&a, 90, "shutdown", json_object());
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	int st = agent_wait(&a, 5000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	agent_stop(&a);
}

Test(guest_agent, bad_channel_fd_is_refused)
{
	char *argv[] = { (char *)guest_bin(), "--channel-fd", "987", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %#x", st);
}

static long agent_rss_kib(pid_t pid)
{
	char p[64], line[256];
	long kib = -1;
	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = atol(line + 6);
	fclose(f);
	return kib;
}

Test(guest_agent, slow_host_does_not_grow_agent_memory, .timeout = 180)
{
	struct agent a;
	struct exec_run r;
	int exited = 0;
	const size_t total = 48u << 20;
	agent_start(&a);
	agent_expect_hello(&a);
	memset(&r, 0, sizeof(r));
	buf_init(&r.out, 64u << 20);
	buf_init(&r.err, 1 << 20);
	char script[128];
	snprintf(script, sizeof(script), "head -c %zu /dev/zero", total);
	agent_request(&a, 80, "exec.start", sh(script));
	/* Do not read for a while: the command must be throttled, and the agent
	 * must not buffer its 48 MiB. */
	usleep(1500 * 1000);
	long rss = agent_rss_kib(a.pid);
	cr_assert_gt(rss, 0);
	cr_assert_lt(rss, 24 * 1024, "agent RSS %ld KiB while the host is not reading", rss);
	while (!exited) {
		json_t *m = agent_recv(&a);
		exec_absorb(m, 80, &r, &exited);
		json_decref(m);
	}
	cr_assert(r.has_code && r.code == 0);
	cr_assert_eq(r.out.len, total);
	exec_run_free(&r);
	agent_stop(&a);
}
