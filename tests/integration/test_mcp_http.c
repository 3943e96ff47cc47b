/* The MCP client over Streamable HTTP against the official server-everything
 * (on 127.0.0.1, a free port, stopped by each test): JSON and SSE replies,
 * progress and sampling on the POST's event stream, out-of-order replies, the
 * session re-initialized once after the server forgot it (tools/call not
 * retried), and the session DELETEd on close. */
#include "test_mcp_util.h"

static int port;
static pid_t server;
static char logdir[] = "/tmp/ironclaw-mcphttp-XXXXXX";
static char logpath[600];

static void start(void)
{
	cr_assert(mkdtemp(logdir));
	snprintf(logpath, sizeof(logpath), "%s/server.log", logdir);
	port = mt_free_port();
	server = mt_http_start(port, logpath);
}

static void stop(void)
{
	if (server > 0)
		mt_http_stop(server);
	unlink(logpath);
	rmdir(logdir);
}

TestSuite(mcp_http, .init = start, .fini = stop, .timeout = 90);

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f);
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void on_progress(void *opaque, struct mcp_call *call, double p, double t, const char *m)
{
	(void)call;
	(void)p;
	(void)t;
	(void)m;
	(*(int *)opaque)++;
}

static void on_sampling(void *opaque, struct mcp_responder *r, const char *method,
			json_t *params)
{
	(void)opaque;
	(void)params;
	cr_assert_str_eq(method, "sampling/createMessage");
	mcp_respond(r, json_pack("{s:s,s:{s:s,s:s},s:s}", "role", "assistant", "content", "type",
				 "text", "text", "http-sampled-7", "model", "ironclaw-test"));
}

Test(mcp_http, echo_progress_sampling_and_delete)
{
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "everything-http", port);
	int progress = 0;
	struct mcp_events ev = { .on_progress = on_progress, .on_request = on_sampling,
				 .opaque = &progress };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_str_eq(mcp_client_protocol_version(c), "2025-11-25");
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "over http"), &res, &e),
		     0, "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "Echo: over http");
	json_decref(res);
	cr_assert_eq(mcp_sync_call_tool(c, "trigger-long-running-operation",
				   json_pack("{s:f,s:i}", "duration", 0.6, "steps", 3), &res, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(progress, 3, "progress over SSE: %d", progress);
	json_decref(res);
	cr_assert_eq(mcp_sync_call_tool(c, "trigger-sampling-request", json_pack("{s:s}", "prompt", "x"),
				   &res, &e), 0, "%s", e.msg);
	cr_assert(strstr(mt_text(res), "http-sampled-7"), "%s", mt_text(res));
	json_decref(res);
	mcp_sync_close(c);
	/* The server logs the DELETE it received on close. */
	usleep(200 * 1000);
	char *log = slurp(logpath);
	cr_assert(strstr(log, "Received session termination request"), "no DELETE seen:\n%s", log);
	free(log);
	mcp_server_config_free(&cfg);
}

Test(mcp_http, out_of_order_over_http)
{
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "everything-http", port);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	struct mcp_pending *slow, *fast;
	json_t *rs = NULL, *rf = NULL;
	cr_assert_eq(mcp_sync_start(c, "tools/call",
				    json_pack("{s:s,s:{s:f,s:i}}", "name",
					      "trigger-long-running-operation", "arguments",
					      "duration", 1.0, "steps", 1), 0, 1, &slow, &e), 0);
	cr_assert_eq(mcp_sync_start(c, "tools/call",
				    json_pack("{s:s,s:{s:s}}", "name", "echo", "arguments",
					      "message", "quick"), 0, 0, &fast, &e), 0);
	double t0 = mt_now();
	cr_assert_eq(mcp_sync_wait(c, fast, &rf, &e), 0, "%s", e.msg);
	cr_assert_lt(mt_now() - t0, 0.9);
	cr_assert_eq(mcp_sync_wait(c, slow, &rs, &e), 0, "%s", e.msg);
	cr_assert_str_eq(mt_text(rf), "Echo: quick");
	cr_assert(strstr(mt_text(rs), "completed"));
	json_decref(rs);
	json_decref(rf);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

Test(mcp_http, lost_session_reinitialized_once_and_tool_call_not_retried)
{
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "everything-http", port);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "a"), &res, &e), 0,
		     "%s", e.msg);
	json_decref(res);

	/* A restarted server knows no sessions. */
	mt_http_stop(server);
	server = mt_http_start(port, logpath);
	cr_assert_eq(mcp_sync_request(c, "tools/list", NULL, 0, &res, &e), 0,
		     "tools/list is re-sent after re-initializing: %s", e.msg);
	cr_assert(json_is_array(json_object_get(res, "tools")));
	json_decref(res);

	mt_http_stop(server);
	server = mt_http_start(port, logpath);
	int rc = mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "b"), &res, &e);
	cr_assert_eq(rc, -ESTALE, "rc %d: %s", rc, e.msg);
	cr_assert(strstr(e.msg, "never retried"), "%s", e.msg);
	/* The new session is open: calling again works. */
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "c"), &res, &e), 0,
		     "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "Echo: c");
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

/* The spec's way to say a session ended: 404 (tests/peers/fixtures/sessions-http.mjs,
 * on the official SDK v1). Same rules: re-initialize once, re-send, but never
 * re-send tools/call. */
Test(mcp_http, session_404_reinitialized_once)
{
	int p = mt_free_port();
	pid_t s404 = mt_http_start_script("fixtures/sessions-http.mjs", p, NULL);
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "sessions", p);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "1"), &res, &e), 0,
		     "%s", e.msg);
	json_decref(res);
	mt_http_stop(s404);
	s404 = mt_http_start_script("fixtures/sessions-http.mjs", p, NULL);
	cr_assert_eq(mcp_sync_request(c, "tools/list", NULL, 0, &res, &e), 0, "%s", e.msg);
	json_decref(res);
	mt_http_stop(s404);
	s404 = mt_http_start_script("fixtures/sessions-http.mjs", p, NULL);
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "2"), &res, &e), -ESTALE,
		     "%s", e.msg);
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "3"), &res, &e), 0,
		     "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "Echo: 3");
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	mt_http_stop(s404);
}

Test(mcp_http, unreachable_server_is_a_clear_error)
{
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "nobody", mt_free_port());
	struct mcp_client *c = NULL;
	struct err e = { 0 };
	cr_assert_eq(mcp_sync_new(&cfg, NULL, &c, &e), 0);
	cr_assert_lt(mcp_sync_connect(c, &e), 0);
	cr_assert(strstr(e.msg, "HTTP request to http://127.0.0.1:"), "%s", e.msg);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}
