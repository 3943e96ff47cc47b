/* MCP config: the ecosystem's mcpServers format (stdio and HTTP entries), our
 * extra keys, strict type errors that name server and key, unknown servers
 * listing the known ones, and tool arguments from key=value or JSON. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io.h"
#include "mcp/mcp.h"

static char path[] = "/tmp/ironclaw-mcpcfg-XXXXXX";

static void write_cfg(const char *text)
{
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void cleanup(void)
{
	unlink(path);
	strcpy(path, "/tmp/ironclaw-mcpcfg-XXXXXX");
}

TestSuite(mcp_config, .fini = cleanup);

Test(mcp_config, stdio_and_http_entries)
{
	write_cfg("{\"mcpServers\":{"
		  "\"fs\":{\"command\":\"npx\",\"args\":[\"-y\",\"srv\",\"/tmp\"],"
		  "\"env\":{\"A\":\"1\"},\"timeoutMs\":1234,\"roots\":[\"/tmp\"]},"
		  "\"empty\":{\"command\":\"x\",\"roots\":[]},"
		  "\"remote\":{\"url\":\"http://127.0.0.1:9/mcp\",\"headers\":{\"X-K\":\"v\"},"
		  "\"protocolVersion\":\"2025-06-18\"}}}");
	struct mcp_server_config c;
	struct err e = { 0 };
	cr_assert_eq(mcp_config_load(path, "fs", &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c.kind, MCP_STDIO);
	cr_assert_str_eq(c.command, "npx");
	cr_assert_str_eq(c.args[2], "/tmp");
	cr_assert_null(c.args[3]);
	cr_assert_str_eq(c.env[0], "A=1");
	cr_assert_eq(c.timeout_ms, 1234);
	cr_assert_str_eq(c.roots[0], "file:///tmp");
	mcp_server_config_free(&c);
	cr_assert_eq(mcp_config_load(path, "remote", &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c.kind, MCP_HTTP);
	cr_assert_str_eq(c.headers[0], "X-K: v");
	cr_assert_str_eq(c.protocol_version, "2025-06-18");
	cr_assert_null(c.roots, "no \"roots\": no roots capability");
	cr_assert_eq(c.timeout_ms, MCP_TIMEOUT_MS_DEFAULT);
	mcp_server_config_free(&c);
	cr_assert_eq(mcp_config_load(path, "empty", &c, &e), 0, "%s", e.msg);
	cr_assert_not_null(c.roots, "an empty \"roots\" still declares the capability");
	cr_assert_null(c.roots[0]);
	mcp_server_config_free(&c);
	char **names = NULL;
	cr_assert_eq(mcp_config_list(path, &names, &e), 0);
	cr_assert_str_eq(names[0], "fs");
	cr_assert_str_eq(names[1], "empty");
	cr_assert_str_eq(names[2], "remote");
	mcp_strv_free(names);
}

Test(mcp_config, errors_name_the_problem)
{
	struct { const char *text, *want; } cases[] = {
		{ "{\"mcpServers\":{\"a\":{\"command\":1}}}", "\"command\" must be a string" },
		{ "{\"mcpServers\":{\"a\":{}}}", "exactly one of" },
		{ "{\"mcpServers\":{\"a\":{\"command\":\"x\",\"url\":\"http://h\"}}}", "exactly one of" },
		{ "{\"mcpServers\":{\"a\":{\"command\":\"x\",\"args\":[1]}}}", "\"args\"[0]" },
		{ "{\"mcpServers\":{\"a\":{\"command\":\"x\",\"env\":{\"K\":1}}}}", "\"env\".K" },
		{ "{\"mcpServers\":{\"a\":{\"url\":\"ftp://h\"}}}", "http://" },
		{ "{\"mcpServers\":{\"a\":{\"url\":\"http://h\",\"headers\":{\"K\":\"a\\r\\nB: c\"}}}}",
		  "forbidden character" },
		{ "{\"mcpServers\":{\"a\":{\"command\":\"x\",\"timeoutMs\":-1}}}", "timeoutMs" },
		{ "{\"mcpServers\":{\"a\":{\"command\":\"x\",\"roots\":[\"/no/such/dir\"]}}}", "root" },
		{ "{\"mcpServers\":{\"b\":{\"command\":\"x\"}}}", "known: b" },
		{ "{\"servers\":{}}", "no \"mcpServers\"" },
		{ "{\"mcpServers\":{\"a\":{\"type\":\"sse\",\"url\":\"http://h\"}}}", "not supported" },
		{ "{\"mcpServers\":{\"a\":{\"type\":\"ws\",\"url\":\"http://h\"}}}", "unknown \"type\"" },
		{ "{\"mcpServers\":", "line 1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_cfg(cases[i].text);
		struct mcp_server_config c;
		struct err e = { 0 };
		cr_assert_lt(mcp_config_load(path, "a", &c, &e), 0, "accepted %s", cases[i].text);
		cr_assert(strstr(e.msg, cases[i].want), "case %zu: '%s' lacks '%s'", i, e.msg,
			  cases[i].want);
		cleanup();
	}
	struct mcp_server_config c;
	struct err e = { 0 };
	cr_assert_eq(mcp_config_load("/nonexistent/x.json", "a", &c, &e), -ENOENT);
	cr_assert(strstr(e.msg, "hint:"), "%s", e.msg);
}

Test(mcp_config, default_path)
{
	setenv("HOME", "/home/someone", 1);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("IRONCLAW_CONFIG");
	char *p = mcp_config_default_path();
	cr_assert_str_eq(p, "/home/someone/.config/ironclaw/config.json");
	free(p);
	setenv("IRONCLAW_CONFIG", "/etc/x.json", 1);
	p = mcp_config_default_path();
	cr_assert_str_eq(p, "/etc/x.json");
	free(p);
	unsetenv("IRONCLAW_CONFIG");
}

Test(mcp_args, typed_by_schema)
{
	json_t *schema = json_loads("{\"properties\":{\"message\":{\"type\":\"string\"},"
				    "\"n\":{\"type\":\"number\"},\"flag\":{\"type\":\"boolean\"},"
				    "\"list\":{\"type\":[\"array\",\"null\"]}}}", 0, NULL);
	char *argv[] = { "message=123", "n=2.5", "flag=true", "list=[1,2]", "free=7" };
	json_t *out;
	struct err e = { 0 };
	cr_assert_eq(mcp_args_parse(5, argv, schema, &out, &e), 0, "%s", e.msg);
	cr_assert_str_eq(json_string_value(json_object_get(out, "message")), "123");
	cr_assert_float_eq(json_number_value(json_object_get(out, "n")), 2.5, 1e-9);
	cr_assert(json_is_true(json_object_get(out, "flag")));
	cr_assert_eq(json_array_size(json_object_get(out, "list")), 2);
	cr_assert_eq(json_integer_value(json_object_get(out, "free")), 7);
	json_decref(out);
	char *bad[] = { "n=abc" };
	cr_assert_eq(mcp_args_parse(1, bad, schema, &out, &e), -EINVAL);
	cr_assert(strstr(e.msg, "argument 'n'"), "%s", e.msg);
	json_decref(schema);
}

Test(mcp_args, without_schema_json_object_and_errors)
{
	json_t *out;
	struct err e = { 0 };
	char *a1[] = { "message=hi there" };
	cr_assert_not(mcp_args_need_schema(1, a1));
	cr_assert_eq(mcp_args_parse(1, a1, NULL, &out, &e), 0);
	cr_assert_str_eq(json_string_value(json_object_get(out, "message")), "hi there");
	json_decref(out);
	char *a2[] = { "a=2" };
	cr_assert(mcp_args_need_schema(1, a2));
	char *a3[] = { "{\"a\":{\"b\":1}}" };
	cr_assert_eq(mcp_args_parse(1, a3, NULL, &out, &e), 0);
	cr_assert(json_is_object(json_object_get(out, "a")));
	json_decref(out);
	char *a4[] = { "{\"a\":" };
	cr_assert_eq(mcp_args_parse(1, a4, NULL, &out, &e), -EINVAL);
	char *a5[] = { "novalue" };
	cr_assert_eq(mcp_args_parse(1, a5, NULL, &out, &e), -EINVAL);
	cr_assert(strstr(e.msg, "key=value"));
	char *a6[] = { "k=1", "k=2" };
	cr_assert_eq(mcp_args_parse(2, a6, NULL, &out, &e), -EINVAL);
	cr_assert(strstr(e.msg, "twice"));
}
