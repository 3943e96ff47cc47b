/* The MCP client against a fixture server built on the official SDK v2
 * (@modelcontextprotocol/server): the stateless 2026-07-28 era through
 * server/discover and the _meta envelope, the same server in a forced 2025
 * era through initialize, and pagination (nextCursor) in both. */
#include "test_mcp_util.h"

static void fixture(struct mcp_server_config *cfg, const char *version)
{
	char *script = mt_peer("fixtures/v2-server.mjs");
	mt_cfg_node(cfg, "v2", script, NULL);
	free(script);
	if (version)
		cfg->protocol_version = strdup(version);
}

static void check_pages(struct mcp_client *c)
{
	struct err e = { 0 };
	json_t *items = NULL;
	/* 2 real tools + 23 fillers, 5 per page: 5 pages to follow. */
	cr_assert_eq(mcp_sync_list_all(c, "tools", &items, &e), 0, "%s", e.msg);
	cr_assert_eq(json_array_size(items), 25);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 24), "name")),
			 "tool-22");
	json_decref(items);
	cr_assert_eq(mcp_sync_list_all(c, "resources", &items, &e), 0, "%s", e.msg);
	cr_assert_eq(json_array_size(items), 12);
	json_decref(items);
}

Test(mcp_v2, modern_era_via_discover, .timeout = 60)
{
	struct mcp_server_config cfg;
	fixture(&cfg, NULL);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	cr_assert(mcp_client_is_modern(c));
	cr_assert_str_eq(mcp_client_protocol_version(c), MCP_VERSION_MODERN);
	cr_assert_str_eq(json_string_value(json_object_get(mcp_client_server_info(c), "name")),
			 "ironclaw-fixture-v2");
	check_pages(c);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "add", json_pack("{s:i,s:i}", "a", 2, "b", 3), &res, &e), 0,
		     "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "5");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "structuredContent"),
							"sum")), 5);
	/* Modern results carry the server's identity in _meta: proof of the era. */
	cr_assert(json_object_get(json_object_get(res, "_meta"),
				  "io.modelcontextprotocol/serverInfo"));
	json_decref(res);
	cr_assert_eq(mcp_sync_call_tool(c, "nope", NULL, &res, &e), 0, "%s", e.msg);
	cr_assert(mcp_result_is_error(res));
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

Test(mcp_v2, forced_legacy_era_via_initialize, .timeout = 60)
{
	struct mcp_server_config cfg;
	fixture(&cfg, "2025-06-18");
	struct mcp_client *c = mt_connect(&cfg, NULL);
	cr_assert_not(mcp_client_is_modern(c));
	cr_assert_str_eq(mcp_client_protocol_version(c), "2025-06-18");
	check_pages(c);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

Test(mcp_v2, unknown_forced_version_refused)
{
	struct mcp_server_config cfg;
	fixture(&cfg, "1999-01-01");
	struct mcp_client *c = NULL;
	struct err e = { 0 };
	cr_assert_eq(mcp_sync_new(&cfg, NULL, &c, &e), 0);
	cr_assert_eq(mcp_sync_connect(c, &e), -EINVAL);
	cr_assert(strstr(e.msg, "1999-01-01"), "%s", e.msg);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
}

/* The same fixture over Streamable HTTP through the SDK's createMcpHandler:
 * the stateless era needs the Mcp-Method and Mcp-Name headers to match the
 * body (a name that is not visible ASCII travels Base64-encoded), and its
 * legacy fallback serves a forced 2025 era. */
Test(mcp_v2, modern_and_legacy_over_http, .timeout = 60)
{
	int port = mt_free_port();
	pid_t srv = mt_http_start_script("fixtures/v2-http.mjs", port, NULL);
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "v2-http", port);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	cr_assert(mcp_client_is_modern(c));
	check_pages(c);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "stateless"), &res, &e),
		     0, "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "Echo: stateless");
	json_decref(res);
	/* A mismatched or badly encoded Mcp-Name would be a -32020 protocol error;
	 * an unknown tool is the tool's own error. */
	cr_assert_eq(mcp_sync_call_tool(c, "na\xc3\xafve tool", NULL, &res, &e), 0, "%s", e.msg);
	cr_assert(mcp_result_is_error(res));
	cr_assert(strstr(mt_text(res), "na\xc3\xafve tool"), "%s", mt_text(res));
	json_decref(res);
	cr_assert_eq(mcp_sync_read_resource(c, "fixture://r/3", &res, &e), 0, "%s", e.msg);
	json_decref(res);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);

	mt_cfg_url(&cfg, "v2-http", port);
	cfg.protocol_version = strdup("2025-03-26");
	c = mt_connect(&cfg, NULL);
	cr_assert_not(mcp_client_is_modern(c));
	cr_assert_str_eq(mcp_client_protocol_version(c), "2025-03-26");
	check_pages(c);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	mt_http_stop(srv);
}

/* The 2026-07-28 extras of the same fixture over HTTP (FIXTURE_EXTRAS=1). The
 * handler answers elicitation with {"yes": true} tagged by the message, so each
 * call's answer is its own, and sampling with a fixed message. */
static int answered;

static void extras_on_request(void *opaque, struct mcp_responder *r, const char *method,
			      json_t *params)
{
	(void)opaque;
	answered++;
	if (!strcmp(method, "sampling/createMessage")) {
		mcp_respond(r, json_pack("{s:s,s:s,s:{s:s,s:s}}", "model", "fixed", "role",
					 "assistant", "content", "type", "text", "text", "hi there"));
		return;
	}
	const char *msg = json_string_value(json_object_get(params, "message"));
	mcp_respond(r, json_pack("{s:s,s:{s:b,s:s}}", "action", "accept", "content", "yes", 1,
				 "asked", msg ? msg : "?"));
}

Test(mcp_v2, modern_http_extras_mrtr_headers_malformed_tool, .timeout = 60)
{
	setenv("FIXTURE_EXTRAS", "1", 1);
	int port = mt_free_port();
	pid_t srv = mt_http_start_script("fixtures/v2-http.mjs", port, NULL);
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "v2-http", port);
	struct mcp_events ev = { .on_request = extras_on_request };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	cr_assert(mcp_client_is_modern(c));
	struct err e = { 0 };
	json_t *items = NULL, *res = NULL;

	/* The malformed tool is skipped, every other one is kept. */
	cr_assert_eq(mcp_sync_list_all(c, "tools", &items, &e), 0, "%s", e.msg);
	cr_assert_eq(json_array_size(items), 28, "25 + confirm, ask_model, regional");
	size_t i;
	json_t *t;
	json_array_foreach(items, i, t)
		cr_assert_str_neq(json_string_value(json_object_get(t, "name")), "broken");
	json_decref(items);
	cr_assert_lt(mcp_sync_call_tool(c, "broken", NULL, &res, &e), 0);
	cr_assert(strstr(e.msg, "skipped") && strstr(e.msg, "malformed"), "%s", e.msg);

	/* Mcp-Param-* mirrors the designated arguments, encoded. */
	cr_assert_eq(mcp_sync_call_tool(c, "regional", json_pack("{s:s,s:i}", "region", " eu-west",
								  "n", 7), &res, &e), 0, "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "region==?base64?IGV1LXdlc3Q=?= n=7");
	json_decref(res);

	/* Multi-round-trip: elicitation (state echoed), sampling. */
	cr_assert_eq(mcp_sync_call_tool(c, "confirm", json_pack("{s:s}", "what", "deploy"), &res,
					&e), 0, "%s", e.msg);
	cr_assert(strstr(mt_text(res), "confirmed deploy: {\"yes\":true,\"asked\":\"Confirm deploy?\"}"
			 " state=state-for-deploy"), "%s", mt_text(res));
	json_decref(res);
	cr_assert_eq(mcp_sync_call_tool(c, "ask_model", NULL, &res, &e), 0, "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "model said: hi there");
	json_decref(res);

	/* Two rounds in flight at once: each retry carries its own answer and state. */
	struct mcp_pending *p1, *p2;
	cr_assert_eq(mcp_sync_start(c, "tools/call", json_pack("{s:s,s:{s:s}}", "name", "confirm",
			"arguments", "what", "one"), 0, 0, &p1, &e), 0, "%s", e.msg);
	cr_assert_eq(mcp_sync_start(c, "tools/call", json_pack("{s:s,s:{s:s}}", "name", "confirm",
			"arguments", "what", "two"), 0, 0, &p2, &e), 0, "%s", e.msg);
	json_t *r2 = NULL;
	cr_assert_eq(mcp_sync_wait(c, p2, &r2, &e), 0, "%s", e.msg);
	cr_assert_eq(mcp_sync_wait(c, p1, &res, &e), 0, "%s", e.msg);
	cr_assert(strstr(mt_text(res), "\"Confirm one?\"") && strstr(mt_text(res), "state-for-one"),
		  "%s", mt_text(res));
	cr_assert(strstr(mt_text(r2), "\"Confirm two?\"") && strstr(mt_text(r2), "state-for-two"),
		  "%s", mt_text(r2));
	json_decref(res);
	json_decref(r2);
	cr_assert_eq(answered, 4);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	mt_http_stop(srv);
}

/* ---- subscriptions/listen over HTTP, against the SDK's listen router ---- */

static struct {
	int acks, ended, ended_rc, tools_changed, updated;
	json_t *last_ack;
	char uri[128];
} sub;

static void sub_on_subscription(void *opaque, json_t *ack, int rc, const struct err *e)
{
	(void)opaque;
	(void)e;
	if (ack) {
		sub.acks++;
		json_decref(sub.last_ack);
		sub.last_ack = json_incref(ack);
	} else {
		sub.ended++;
		sub.ended_rc = rc;
	}
}

static void sub_on_list_changed(void *opaque, const char *what)
{
	(void)opaque;
	if (!strcmp(what, "tools"))
		sub.tools_changed++;
}

static void sub_on_resource_updated(void *opaque, const char *uri)
{
	(void)opaque;
	sub.updated++;
	snprintf(sub.uri, sizeof(sub.uri), "%s", uri);
}

/* Runs the client's loop until *flag reaches want (an event, not a sleep). */
static void sub_wait(struct mcp_client *c, int *flag, int want, const char *what)
{
	double t0 = mt_now();
	while (*flag < want) {
		cr_assert(mt_now() - t0 < 15, "no %s within 15 s", what);
		uv_run(mcp_client_loop(c), UV_RUN_ONCE);
	}
}

static void fixture_control(int port, const char *what)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "curl -fsS -o /dev/null -X POST 'http://127.0.0.1:%d/control/%s'",
		 port, what);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static int fixture_open_listens(int port)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "curl -fsS 'http://127.0.0.1:%d/control/listens'", port);
	FILE *f = popen(cmd, "r");
	cr_assert(f);
	int n = -1;
	cr_assert_eq(fscanf(f, "{\"open\":%d}", &n), 1);
	pclose(f);
	return n;
}

static size_t tool_count(struct mcp_client *c, const char *must_have)
{
	json_t *items = NULL;
	struct err e = { 0 };
	cr_assert_eq(mcp_sync_list_all(c, "tools", &items, &e), 0, "%s", e.msg);
	size_t n = json_array_size(items), i;
	int found = must_have == NULL;
	json_t *t;
	json_array_foreach(items, i, t)
		if (must_have && !strcmp(json_string_value(json_object_get(t, "name")), must_have))
			found = 1;
	json_decref(items);
	cr_assert(found, "tool '%s' not listed", must_have);
	return n;
}

/* The tools list is cached for its ttlMs (10 minutes here), so only the
 * subscription's list_changed can show a tool added meanwhile; a dropped
 * stream is reopened (a second acknowledgment) and keeps delivering; closing
 * the subscription closes its stream at the server; a graceful end by the
 * server is reported and not reopened. */
Test(mcp_v2, subscription_over_http, .timeout = 90)
{
	setenv("FIXTURE_TTL_MS", "600000", 1);
	int port = mt_free_port();
	pid_t srv = mt_http_start_script("fixtures/v2-http.mjs", port, NULL);
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "v2-http", port);
	struct mcp_events ev = { .on_subscription = sub_on_subscription,
				 .on_list_changed = sub_on_list_changed,
				 .on_resource_updated = sub_on_resource_updated };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	cr_assert(mcp_client_is_modern(c));
	cr_assert_eq(tool_count(c, NULL), 25);
	/* Without a subscription nothing tells us: the cached list stands. */
	fixture_control(port, "add-tool?name=early");
	cr_assert_eq(tool_count(c, NULL), 25, "the list is cached for its ttlMs");

	struct err e = { 0 };
	const char *uris[] = { "fixture://r/3", NULL };
	struct mcp_listen_filter f = { .tools = 1, .prompts = 1, .resource_uris = uris };
	cr_assert_eq(mcp_client_listen(c, &f, &e), 0, "%s", e.msg);
	sub_wait(c, &sub.acks, 1, "acknowledgment");
	cr_assert(json_is_true(json_object_get(sub.last_ack, "toolsListChanged")));
	cr_assert_null(json_object_get(sub.last_ack, "promptsListChanged"), "no prompts here");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(sub.last_ack,
		"resourceSubscriptions"), 0)), "fixture://r/3");
	cr_assert_eq(fixture_open_listens(port), 1);

	/* A change invalidates the cached list. */
	fixture_control(port, "add-tool?name=late-1");
	sub_wait(c, &sub.tools_changed, 1, "tools/list_changed");
	cr_assert_eq(tool_count(c, "late-1"), 27);
	fixture_control(port, "resource-updated?uri=fixture://r/4");   /* not subscribed */
	fixture_control(port, "resource-updated?uri=fixture://r/3");
	sub_wait(c, &sub.updated, 1, "resources/updated");
	cr_assert_str_eq(sub.uri, "fixture://r/3");
	cr_assert_eq(sub.updated, 1);

	/* An abrupt drop: reopened after the backoff, and delivering again. */
	fixture_control(port, "drop-listens");
	sub_wait(c, &sub.acks, 2, "re-acknowledgment after the drop");
	cr_assert_eq(sub.ended, 0);
	fixture_control(port, "add-tool?name=late-2");
	sub_wait(c, &sub.tools_changed, 2, "tools/list_changed on the reopened stream");
	cr_assert_eq(tool_count(c, "late-2"), 28);

	/* Closing it on our side closes the stream at the server. */
	mcp_client_unlisten(c);
	cr_assert_null(mcp_client_subscription(c));
	double t0 = mt_now();
	while (fixture_open_listens(port) != 0) {
		cr_assert(mt_now() - t0 < 10, "the server still holds the listen stream");
		mcp_sync_pump(c, 50);
	}

	/* The server ends it gracefully: reported once, not reopened. */
	cr_assert_eq(mcp_client_listen(c, &f, &e), 0, "%s", e.msg);
	sub_wait(c, &sub.acks, 3, "acknowledgment");
	fixture_control(port, "end-listens");
	sub_wait(c, &sub.ended, 1, "graceful end");
	cr_assert_eq(sub.ended_rc, 0);
	cr_assert_null(mcp_client_subscription(c));
	mcp_sync_pump(c, 1500);   /* longer than the first backoff: nothing reopens */
	cr_assert_eq(sub.acks, 3);
	cr_assert_eq(fixture_open_listens(port), 0);
	json_decref(sub.last_ack);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	mt_http_stop(srv);
	unsetenv("FIXTURE_TTL_MS");
}

/* Before 2026-07-28 there is no listen request; the call says so. */
Test(mcp_v2, subscription_refused_in_legacy_era, .timeout = 60)
{
	int port = mt_free_port();
	pid_t srv = mt_http_start_script("fixtures/v2-http.mjs", port, NULL);
	struct mcp_server_config cfg;
	mt_cfg_url(&cfg, "v2-http", port);
	cfg.protocol_version = strdup("2025-06-18");
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	struct mcp_listen_filter f = { .tools = 1 };
	cr_assert_eq(mcp_client_listen(c, &f, &e), -ENOTSUP);
	cr_assert(strstr(e.msg, "2025-06-18"), "%s", e.msg);
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	mt_http_stop(srv);
}
