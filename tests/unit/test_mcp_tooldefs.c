/* Tool definitions (src/mcp/tooldefs.c): which ones a client keeps (SEP-2243's
 * x-mcp-header rules), the Mcp-Param-* headers of a call, and the header value
 * encoding, against the cases the spec and the conformance suite name. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/tooldefs.h"

static int check(const char *json)
{
	char why[256];
	json_t *t = json_loads(json, 0, NULL);
	cr_assert(t, "%s", json);
	int rc = mcp_tooldef_check(t, why, sizeof(why));
	json_decref(t);
	return rc;
}

Test(mcp_tooldefs, x_mcp_header_rules)
{
	cr_assert_eq(check("{\"name\":\"ok\",\"inputSchema\":{\"type\":\"object\",\"properties\":"
			   "{\"r\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
			   "\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N-1\"},"
			   "\"b\":{\"type\":\"boolean\",\"x-mcp-header\":\"B_2\"}}}}"), 0);
	static const char *const bad[] = {
		"{\"inputSchema\":{\"type\":\"object\"}}",
		"{\"name\":\"x\"}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"array\"}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"string\",\"x-mcp-header\":\"\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"object\",\"x-mcp-header\":\"D\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"number\",\"x-mcp-header\":\"D\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"string\",\"x-mcp-header\":\"My Region\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"string\",\"x-mcp-header\":\"A:B\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"string\",\"x-mcp-header\":\"R\\u00e9gion\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"string\",\"x-mcp-header\":\"R\\t1\"}}}}",
		"{\"name\":\"x\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"MyField\"},\"b\":{\"type\":\"string\",\"x-mcp-header\":\"myfield\"}}}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(check(bad[i]), -EINVAL, "kept: %s", bad[i]);
}

static void enc(const char *in, size_t n, const char *want)
{
	char out[256];
	cr_assert_eq(mcp_header_encode(in, n, out, sizeof(out)), 0);
	cr_assert_str_eq(out, want, "encoding '%s'", in);
}

Test(mcp_tooldefs, value_encoding)
{
	enc("us-west1", 8, "us-west1");
	enc("us west 1", 9, "us west 1");
	enc("", 0, "");
	enc(" padded ", 8, "=?base64?IHBhZGRlZCA=?=");
	enc("\tindented", 9, "=?base64?CWluZGVudGVk?=");
	enc("line1\r\nline2", 12, "=?base64?bGluZTENCmxpbmUy?=");
	enc("Hello, \xe4\xb8\x96\xe7\x95\x8c", 13, "=?base64?SGVsbG8sIOS4lueVjA==?=");
	/* A plain value that looks like the sentinel is encoded too. */
	enc("=?base64?literal?=", 18, "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=");
	char small[8];
	cr_assert_eq(mcp_header_encode("0123456789", 10, small, sizeof(small)), -E2BIG);
}

Test(mcp_tooldefs, param_headers_follow_the_schema)
{
	json_t *tool = json_loads("{\"name\":\"t\",\"inputSchema\":{\"type\":\"object\",\"properties\":"
				  "{\"r\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
				  "\"p\":{\"type\":\"integer\",\"x-mcp-header\":\"Priority\"},"
				  "\"v\":{\"type\":\"boolean\",\"x-mcp-header\":\"Verbose\"},"
				  "\"q\":{\"type\":\"string\"}}}}", 0, NULL);
	json_t *args = json_loads("{\"r\":\"eu\",\"p\":42,\"v\":null,\"q\":\"SELECT 1\"}", 0, NULL);
	json_t *h = mcp_tooldef_param_headers(tool, args);
	char *s = json_dumps(h, JSON_COMPACT);
	cr_assert_str_eq(s, "[[\"Mcp-Param-Region\",\"eu\"],[\"Mcp-Param-Priority\",\"42\"]]");
	free(s);
	json_decref(h);
	json_decref(args);
	args = json_loads("{\"v\":false}", 0, NULL);
	h = mcp_tooldef_param_headers(tool, args);
	s = json_dumps(h, JSON_COMPACT);
	cr_assert_str_eq(s, "[[\"Mcp-Param-Verbose\",\"false\"]]");
	free(s);
	json_decref(h);
	json_decref(args);
	json_decref(tool);
}
