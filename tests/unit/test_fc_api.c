/* Firecracker's API client (vm/fc_api.c) and the response/OK-line parsers
 * (vm/fc_parse.c), against an API peer that answers as Firecracker does
 * (tests/unit/fc_peer.h): a full boot sequence accepted; a 400 whose
 * fault_message must reach our error verbatim and stop the sequence there; a
 * reply slower than the deadline; the peer dying at each step; oversized and
 * malformed answers. After each, closing the client must leave the loop with
 * no handle and the process with no extra fd. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <uv.h>

#include "unit/fc_peer.h"
#include "vm/fc_api.h"
#include "vm/fc_parse.h"

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

struct run {
	int done;
	struct err e;
	int failed;
};

static void on_done(void *ctx, const struct err *e)
{
	struct run *r = ctx;
	r->done++;
	if (e) {
		r->e = *e;
		r->failed = 1;
	}
}

static void boot_reqs(struct fc_api_req *reqs, size_t *n)
{
	struct fc_boot_config c = {
		.log_path = "/run/vm/console.log", .metrics_path = "/run/vm/metrics.json", .vcpus = 1,
		.mem_mib = 128, .kernel = "/vm/kernel", .initrd = "/vm/initramfs.cpio", .boot_args = "console=ttyS0",
		.guest_cid = 3, .vsock_uds = "/run/vm/v.sock",
	};
	struct err e = { 0 };
	cr_assert_eq(fc_api_boot_sequence(&c, reqs, n, &e), 0, "%s", e.msg);
}

/* Runs the boot sequence against a peer with script; returns the outcome and
 * the peer's log (owned). */
static struct run run_boot(const struct fc_peer_step *script, unsigned timeout_ms, char **log)
{
	static int warm;
	if (!warm) {
		warm = 1;
		/* libcurl and libuv open process-wide fds on first use (kept for the
		 * process): the baseline is taken after one warm-up run. */
		char *l;
		run_boot(NULL, timeout_ms, &l);
		free(l);
		warm = 2;
	}
	char dir[] = "/tmp/ic-fcapi-XXXXXX";
	cr_assert(mkdtemp(dir));
	int fds0 = count_fds();
	struct fc_peer peer;
	fc_peer_start(&peer, dir, script);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct fc_api *api;
	struct err e = { 0 };
	cr_assert_eq(fc_api_open(&loop, peer.sock, &api, &e), 0, "%s", e.msg);
	struct fc_api_req reqs[FC_API_SEQ_MAX];
	size_t n;
	boot_reqs(reqs, &n);
	struct run r = { 0 };
	cr_assert_eq(fc_api_run(api, reqs, n, timeout_ms, on_done, &r, &e), 0, "%s", e.msg);
	while (!r.done && uv_run(&loop, UV_RUN_ONCE))
		;
	cr_assert_eq(r.done, 1, "done ran %d times", r.done);
	fc_api_close(api);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&loop), 0, "a handle was left open on the loop");
	*log = fc_peer_log(&peer);
	fc_peer_stop(&peer);
	unlink(peer.log);
	rmdir(dir);
	if (warm > 1)
		cr_expect_eq(count_fds(), fds0, "fds leaked: %d -> %d", fds0, count_fds());
	return r;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(fc_api, a_full_boot_sequence_is_accepted_and_reaches_the_peer_in_order)
{
	char *log;
	struct run r = run_boot(NULL, 3000, &log);
	cr_expect_not(r.failed, "%s", r.e.msg);
	cr_expect_eq(count_lines(log), 7, "%s", log);
	cr_expect(strstr(log, "PUT /logger {\"log_path\":\"/run/vm/console.log\""), "%s", log);
	const char *order[] = { "PUT /logger ", "PUT /metrics ", "PUT /machine-config ", "PUT /boot-source ",
				"PUT /vsock ", "PUT /entropy ", "PUT /actions {\"action_type\":\"InstanceStart\"}" };
	const char *at = log;
	for (size_t i = 0; i < 7; i++) {
		const char *p = strstr(at, order[i]);
		cr_expect(p, "%s not after its predecessor in:\n%s", order[i], log);
		at = p ? p : at;
	}
	free(log);
}

Test(fc_api, a_fault_message_reaches_our_error_verbatim_and_stops_the_sequence)
{
	static const struct fc_peer_step script[] = {
		{ 2, PEER_FAULT, "Invalid vCPU count: 7. Must be 1 or even." }, { -1, 0, NULL },
	};
	char *log;
	struct run r = run_boot(script, 3000, &log);
	cr_assert(r.failed);
	cr_expect_eq(r.e.code, -EREMOTEIO);
	cr_expect_str_eq(r.e.msg, "Firecracker refused PUT /machine-config (HTTP 400): "
				  "Invalid vCPU count: 7. Must be 1 or even.");
	cr_expect_eq(count_lines(log), 3, "nothing is sent after a refusal:\n%s", log);
	free(log);
}

Test(fc_api, a_reply_later_than_the_deadline_fails_with_a_timeout)
{
	static const struct fc_peer_step script[] = { { 1, PEER_SLOW, NULL }, { -1, 0, NULL } };
	char *log;
	uint64_t t0 = uv_hrtime();
	struct run r = run_boot(script, 300, &log);
	double ms = (double)(uv_hrtime() - t0) / 1e6;
	cr_assert(r.failed);
	cr_expect_eq(r.e.code, -ETIMEDOUT, "%s", r.e.msg);
	cr_expect(strstr(r.e.msg, "did not answer PUT /metrics within 0.3 s"), "%s", r.e.msg);
	/* Not a timing assertion: the peer sleeps 3 s, so waiting it out would mean
	 * the deadline was not ours. */
	cr_expect_lt(ms, 2900, "the client waited for the slow peer (%.0f ms)", ms);
	free(log);
}

Test(fc_api, the_peer_dying_at_each_step_fails_at_that_step_and_leaves_nothing)
{
	static const char *paths[] = { "/logger", "/metrics", "/machine-config", "/boot-source", "/vsock",
				       "/entropy", "/actions" };
	for (int k = 0; k < 7; k++) {
		struct fc_peer_step script[] = { { k, PEER_DIE, NULL }, { -1, 0, NULL } };
		char *log;
		struct run r = run_boot(script, 3000, &log);
		cr_assert(r.failed, "step %d", k);
		cr_expect_eq(r.e.code, -ECONNRESET, "step %d: %s", k, r.e.msg);
		char want[96];
		snprintf(want, sizeof(want), "failed during PUT %s:", paths[k]);
		cr_expect(strstr(r.e.msg, want), "step %d: %s", k, r.e.msg);
		cr_expect_eq(count_lines(log), k + 1, "step %d:\n%s", k, log);
		free(log);
	}
}

Test(fc_api, oversized_and_malformed_answers_are_refused)
{
	/* (A 204 with a body never reaches the parser: HTTP says a 204 has none,
	 * and libcurl does not read one; fc_parse.replies covers the parser.) */
	static const enum fc_peer_act acts[] = { PEER_HUGE, PEER_GARBAGE };
	static const char *want[] = { "over 65536 bytes", "not a JSON object" };
	for (size_t i = 0; i < 2; i++) {
		struct fc_peer_step script[] = { { 0, acts[i], NULL }, { -1, 0, NULL } };
		char *log;
		struct run r = run_boot(script, 3000, &log);
		cr_assert(r.failed);
		cr_expect_eq(r.e.code, -EPROTO, "%zu: %s", i, r.e.msg);
		cr_expect(strstr(r.e.msg, want[i]), "%zu: %s", i, r.e.msg);
		cr_expect_eq(count_lines(log), 1);
		free(log);
	}
}

Test(fc_parse, replies)
{
	struct fc_api_reply r;
	struct err e = { 0 };
	cr_expect_eq(fc_api_parse_reply(204, "", 0, &r, &e), 0);
	cr_expect_eq(fc_api_parse_reply(204, "\r\n", 2, &r, &e), 0);
	cr_expect_eq(fc_api_parse_reply(200, "{\"firecracker_version\":\"1.10.1\"}", 32, &r, &e), 0);
	cr_expect_eq(fc_api_parse_reply(200, "[]", 2, &r, &e), -EPROTO);
	cr_expect_eq(fc_api_parse_reply(400, "{\"fault_message\":\"bad\\nline\"}", 29, &r, &e), -EREMOTEIO);
	cr_expect_str_eq(r.fault, "bad?line", "control characters are not passed to a terminal");
	cr_expect_eq(fc_api_parse_reply(400, "{\"fault_message\":7}", 19, &r, &e), -EPROTO);
	cr_expect_eq(fc_api_parse_reply(500, "{}", 2, &r, &e), -EREMOTEIO);
	cr_expect(strstr(e.msg, "without a fault_message"), "%s", e.msg);
	cr_expect_eq(fc_api_parse_reply(400, "{\"a\":1,\"a\":2}", 13, &r, &e), -EPROTO, "duplicate keys");
	cr_expect_eq(fc_api_parse_reply(99, "", 0, &r, &e), -EPROTO);
	static char big[FC_API_BODY_MAX + 2];
	cr_expect_eq(fc_api_parse_reply(400, big, sizeof(big), &r, &e), -EPROTO);
	char longf[2000] = "{\"fault_message\":\"";
	size_t l = strlen(longf);
	memset(longf + l, 'x', 1500);
	strcpy(longf + l + 1500, "\"}");
	cr_expect_eq(fc_api_parse_reply(400, longf, strlen(longf), &r, &e), -EREMOTEIO);
	cr_expect_eq(strlen(r.fault), FC_FAULT_MAX - 1);
	cr_expect(strstr(r.fault, "..."), "a cut message says so");
}

Test(fc_parse, ok_line)
{
	uint32_t port = 0;
	cr_expect_eq(fc_vsock_parse_ok("OK 1073741824\n", 14, &port), 14);
	cr_expect_eq(port, 1073741824u);
	/* The first frame right behind the line is not part of it. */
	cr_expect_eq(fc_vsock_parse_ok("OK 5\n\0\0\0\x10{\"jsonrpc\"", 19, &port), 5);
	cr_expect_eq(port, 5u);
	cr_expect_eq(fc_vsock_parse_ok("OK 12", 5, &port), 0, "incomplete: more needed");
	cr_expect_eq(fc_vsock_parse_ok("", 0, &port), 0);
	const char *bad[] = { "ok 5\n", "OK\n", "OK \n", "OK -5\n", "OK 05\n", "OK 4294967296\n", "OK 5 \n",
			      "OK 5\r\n", "FAILURE\n", "OK 99999999999\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(fc_vsock_parse_ok(bad[i], strlen(bad[i]), &port), -EPROTO, "%s", bad[i]);
	cr_expect_eq(fc_vsock_parse_ok("OK 123456789012345", 18, &port), -EPROTO, "no newline within the cap");
	cr_expect_eq(fc_vsock_parse_ok("OK 4294967295\n", 14, &port), 14);
}
