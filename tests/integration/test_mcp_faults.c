/* The MCP client against broken servers (tests/peers/fixtures/faulty-server.mjs):
 * garbage on stdout, a server that never answers, one that exits mid-call, one
 * that floods stderr, one that ignores SIGTERM, replies out of order, and a
 * timeout whose late reply and progress must be dropped after the server was
 * told notifications/cancelled. */
#include "test_mcp_util.h"

static void faulty(struct mcp_server_config *cfg, const char *mode)
{
	char *script = mt_peer("fixtures/faulty-server.mjs");
	mt_cfg_node(cfg, mode, script, mode, NULL);
	free(script);
}

TestSuite(mcp_faults, .timeout = 30);

Test(mcp_faults, garbage_lines_are_skipped)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "garbage");
	cfg.line_max = 64 * 1024;
	cfg.env = calloc(2, sizeof(char *));
	cfg.env[0] = strdup("FAULTY_LONG=200000");
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:i}", "n", i), &res, &e), 0,
			     "%s", e.msg);
		char want[64];
		snprintf(want, sizeof(want), "echo: {\"n\":%d}", i);
		cr_assert_str_eq(mt_text(res), want);
		json_decref(res);
	}
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

Test(mcp_faults, silent_server_times_out_and_is_stopped)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "silent");
	cfg.timeout_ms = 400;
	struct mcp_client *c = NULL;
	struct err e = { 0 };
	cr_assert_eq(mcp_sync_new(&cfg, NULL, &c, &e), 0);
	double t0 = mt_now();
	cr_assert_eq(mcp_sync_connect(c, &e), -ETIMEDOUT, "%s", e.msg);
	cr_assert(strstr(e.msg, "timed out"), "%s", e.msg);
	/* discover (400 ms) then initialize (400 ms): bounded, not hung. */
	cr_assert_lt(mt_now() - t0, 3.0);
	t0 = mt_now();
	mcp_sync_close(c);   /* stdin closed, it lingers: SIGTERM ends it */
	double took = mt_now() - t0;
	cr_assert_lt(took, 6.0, "close took %.1fs", took);
	mcp_server_config_free(&cfg);
}

Test(mcp_faults, stubborn_server_gets_sigkill)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "stubborn");
	cfg.timeout_ms = 300;
	struct mcp_client *c = NULL;
	struct err e = { 0 };
	cr_assert_eq(mcp_sync_new(&cfg, NULL, &c, &e), 0);
	cr_assert_lt(mcp_sync_connect(c, &e), 0);
	double t0 = mt_now();
	mcp_sync_close(c);
	double took = mt_now() - t0;
	/* 2 s after stdin closes, SIGTERM (ignored), 2 s more, SIGKILL. */
	cr_assert_gt(took, 3.5, "close took only %.1fs: SIGTERM was not ignored?", took);
	cr_assert_lt(took, 8.0, "close took %.1fs", took);
	mcp_server_config_free(&cfg);
}

Test(mcp_faults, exit_mid_call_is_a_clear_error)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "exit-mid-call");
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	double t0 = mt_now();
	int rc = mcp_sync_call_tool(c, "echo", NULL, &res, &e);
	cr_assert_eq(rc, -EPIPE, "rc %d: %s", rc, e.msg);
	cr_assert(strstr(e.msg, "exited with status 3"), "%s", e.msg);
	cr_assert_lt(mt_now() - t0, 5.0);
	/* Later calls fail at once with the same reason. */
	cr_assert_eq(mcp_sync_request(c, "tools/list", NULL, 0, &res, &e), -EPIPE);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

Test(mcp_faults, stderr_flood_goes_to_capped_log)
{
	struct mcp_server_config cfg;
	char dir[] = "/tmp/ironclaw-mcplog-XXXXXX";
	cr_assert(mkdtemp(dir));
	char log[600];
	snprintf(log, sizeof(log), "%s/server.log", dir);
	faulty(&cfg, "flood-stderr");
	cfg.stderr_log = strdup(log);
	cfg.env = calloc(2, sizeof(char *));
	cfg.env[0] = strdup("FAULTY_FLOOD=20971520");   /* 20 MiB per request */
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "echo", NULL, &res, &e), 0, "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "echo: {}");
	json_decref(res);
	mcp_sync_close(c);
	struct stat st;
	cr_assert_eq(stat(log, &st), 0);
	cr_assert_gt(st.st_size, 1 << 20, "stderr did not reach the log");
	cr_assert_leq(st.st_size, (16 << 20) + 128, "log not capped: %lld bytes",
		      (long long)st.st_size);
	unlink(log);
	rmdir(dir);
	mcp_server_config_free(&cfg);
}

Test(mcp_faults, missing_command_is_a_clear_error)
{
	json_t *srv = json_pack("{s:s}", "command", "/nonexistent/ironclaw-no-such-server");
	struct mcp_server_config cfg;
	struct err e = { 0 };
	cr_assert_eq(mcp_config_from_json("ghost", srv, &cfg, &e), 0);
	json_decref(srv);
	struct mcp_client *c = NULL;
	cr_assert_eq(mcp_sync_new(&cfg, NULL, &c, &e), 0);
	cr_assert_eq(mcp_sync_connect(c, &e), -ENOENT, "%s", e.msg);
	cr_assert(strstr(e.msg, "starting server 'ghost'"), "%s", e.msg);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

Test(mcp_faults, out_of_order_replies)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "out-of-order");
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	struct mcp_pending *a, *b;
	json_t *ra = NULL, *rb = NULL;
	cr_assert_eq(mcp_sync_start(c, "tools/call", json_pack("{s:s}", "name", "slow"), 0, 0, &a,
				    &e), 0);
	cr_assert_eq(mcp_sync_start(c, "tools/call", json_pack("{s:s}", "name", "echo"), 0, 0, &b,
				    &e), 0);
	/* The server answers b, then a; waiting on a first must still work. */
	cr_assert_eq(mcp_sync_wait(c, a, &ra, &e), 0, "%s", e.msg);
	cr_assert_eq(mcp_sync_wait(c, b, &rb, &e), 0, "%s", e.msg);
	cr_assert_str_eq(mt_text(ra), "slow: {}");
	cr_assert_str_eq(mt_text(rb), "echo: {}");
	json_decref(ra);
	json_decref(rb);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

static void count_progress(void *opaque, struct mcp_call *call, double p, double t, const char *m)
{
	(void)call;
	(void)p;
	(void)t;
	(void)m;
	(*(int *)opaque)++;
}

Test(mcp_faults, timeout_cancels_and_drops_late_reply)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "slow");
	cfg.env = calloc(2, sizeof(char *));
	cfg.env[0] = strdup("SLOW_MS=1200");
	int progress = 0;
	struct mcp_events ev = { .on_progress = count_progress, .opaque = &progress };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	struct err e = { 0 };
	struct mcp_pending *k;
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_start(c, "tools/call", json_pack("{s:s}", "name", "slow"), 500, 1, &k,
				    &e), 0);
	long long id = mcp_pending_id(k);
	cr_assert_eq(mcp_sync_wait(c, k, &res, &e), -ETIMEDOUT, "%s", e.msg);
	int progress_before = progress;
	cr_assert_gt(progress_before, 0, "progress arrived while the call was pending");
	/* Let the late progress and the late reply arrive: both are dropped. */
	mcp_sync_pump(c, 1200);
	cr_assert_eq(progress, progress_before, "progress after the timeout was delivered");
	cr_assert_geq(mcp_client_dropped_late(c), 2, "dropped %lu",
		      mcp_client_dropped_late(c));
	/* The server was told: it recorded notifications/cancelled for our id. */
	cr_assert_eq(mcp_sync_request(c, "debug/cancelled", NULL, 0, &res, &e), 0, "%s", e.msg);
	json_t *ids = json_object_get(res, "cancelled");
	cr_assert_eq(json_array_size(ids), 1);
	cr_assert_eq(json_integer_value(json_array_get(ids, 0)), id);
	json_decref(res);
	/* The session still works. */
	cr_assert_eq(mcp_sync_call_tool(c, "echo", NULL, &res, &e), 0, "%s", e.msg);
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

struct chatter {
	int logs;
	int changed;
	char what[32];
};

static void on_log(void *opaque, const char *level, json_t *data)
{
	struct chatter *ch = opaque;
	cr_assert_str_eq(level, "warning");
	cr_assert_str_eq(json_string_value(data), "chatty says hi");
	ch->logs++;
}

static void on_changed(void *opaque, const char *what)
{
	struct chatter *ch = opaque;
	snprintf(ch->what, sizeof(ch->what), "%s", what);
	ch->changed++;
}

/* The server's own requests use their own ids (0 and a string here) and are
 * answered while our call waits; log and list_changed notifications reach the
 * handlers. Without roots configured, roots/list is -32601. */
Test(mcp_faults, server_requests_and_notifications)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "chatty");
	struct chatter ch = { 0 };
	struct mcp_events ev = { .on_log = on_log, .on_list_changed = on_changed, .opaque = &ch };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "echo", NULL, &res, &e), 0, "%s", e.msg);
	json_t *got = json_loads(mt_text(res), 0, NULL);
	cr_assert(json_is_object(json_object_get(json_object_get(got, "ping"), "result")),
		  "ping (id 0) unanswered: %s", mt_text(res));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(got, "roots"),
									 "error"), "code")), -32601,
		     "%s", mt_text(res));
	json_decref(got);
	json_decref(res);
	cr_assert_eq(ch.logs, 1);
	cr_assert_eq(ch.changed, 1);
	cr_assert_str_eq(ch.what, "tools");
	/* No roots capability was declared: roots cannot appear later. */
	const char *late[] = { "/tmp", NULL };
	cr_assert_eq(mcp_client_set_roots(c, late, &e), -ENOTSUP);
	cr_assert(strstr(e.msg, "hint:"), "%s", e.msg);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);

	/* With roots configured, roots/list answers them. */
	faulty(&cfg, "chatty");
	cr_assert_eq(mcp_config_add_root(&cfg, "/tmp"), 0);
	c = mt_connect(&cfg, NULL);
	cr_assert_eq(mcp_sync_call_tool(c, "echo", NULL, &res, &e), 0, "%s", e.msg);
	cr_assert(strstr(mt_text(res), "\"uri\":\"file:///tmp\""), "%s", mt_text(res));
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

/* A server that ignores server/discover: after the discover timeout the client
 * falls back to initialize and works in a 2025 era. */
Test(mcp_faults, discover_timeout_falls_back_to_initialize)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "no-discover");
	cfg.timeout_ms = 700;
	double t0 = mt_now();
	struct mcp_client *c = mt_connect(&cfg, NULL);
	double took = mt_now() - t0;
	cr_assert_geq(took, 0.65, "connected in %.2fs: the discover probe did not wait", took);
	cr_assert_not(mcp_client_is_modern(c));
	cr_assert_str_eq(mcp_client_protocol_version(c), MCP_VERSION_LATEST_LEGACY);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "echo", NULL, &res, &e), 0, "%s", e.msg);
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

/* A server that closes its stdin but lives on: our next write gets EPIPE. The
 * process survives (no SIGPIPE death), the call fails at once with a clear
 * reason, and close still stops the server. */
Test(mcp_faults, server_closing_stdin_is_epipe_not_sigpipe)
{
	struct mcp_server_config cfg;
	faulty(&cfg, "close-stdin");
	cfg.protocol_version = strdup("2025-06-18");   /* skip discover: one exchange */
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	mcp_sync_pump(c, 300);   /* let the server close its end */
	double t0 = mt_now();
	int rc = mcp_sync_call_tool(c, "echo", NULL, &res, &e);
	cr_assert_eq(rc, -EPIPE, "rc %d: %s", rc, e.msg);
	cr_assert(strstr(e.msg, "writing to server 'close-stdin' failed"), "%s", e.msg);
	cr_assert_lt(mt_now() - t0, 2.0, "the failure waited for a timeout");
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}
