/* Newline-delimited JSON framing and JSON-RPC classification for MCP: split
 * reads, CRLF, the line cap (an over-long line is dropped whole and the next
 * line still parses), and the envelope rules (ids may be 0 or strings). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "mcp/wire.h"

struct lines_got {
	int n;
	char line[8][128];
};

static void on_line(void *opaque, const char *line, size_t len)
{
	struct lines_got *g = opaque;
	cr_assert_lt(g->n, 8);
	snprintf(g->line[g->n++], sizeof(g->line[0]), "%.*s", (int)len, line);
}

Test(mcp_lines, split_reads_and_crlf)
{
	struct mcp_lines l;
	struct lines_got g = { 0 };
	mcp_lines_init(&l, 1024);
	const char *t = "{\"a\":1}\r\n{\"b\":2}\n\n{\"c\"";
	for (size_t i = 0; t[i]; i++)
		mcp_lines_feed(&l, t + i, 1, on_line, &g);
	cr_assert_eq(g.n, 3);
	cr_assert_str_eq(g.line[0], "{\"a\":1}");
	cr_assert_str_eq(g.line[1], "{\"b\":2}");
	cr_assert_str_eq(g.line[2], "");
	mcp_lines_feed(&l, ":3}\n", 4, on_line, &g);
	cr_assert_str_eq(g.line[3], "{\"c\":3}");
	mcp_lines_free(&l);
}

Test(mcp_lines, overlong_line_dropped_whole)
{
	struct mcp_lines l;
	struct lines_got g = { 0 };
	mcp_lines_init(&l, 16);
	mcp_lines_feed(&l, "0123456789", 10, on_line, &g);
	mcp_lines_feed(&l, "0123456789", 10, on_line, &g);  /* past the cap */
	mcp_lines_feed(&l, "tail of the long line\nok\n", 25, on_line, &g);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.line[0], "ok");
	cr_assert_eq(l.dropped, 1);
	cr_assert_leq(l.cur.cap, 64, "memory stays near the cap");
	mcp_lines_free(&l);
}

static int classify(const char *text, struct mcp_msg *m, json_t **keep)
{
	struct err why = { 0 };
	*keep = mcp_json_parse(text, strlen(text), &why);
	cr_assert(*keep, "%s: %s", text, why.msg);
	return mcp_msg_classify(*keep, m, &why);
}

Test(mcp_lines, classify_envelopes)
{
	struct mcp_msg m;
	json_t *v;
	cr_assert_eq(classify("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}", &m, &v), 0);
	cr_assert_eq(m.kind, MCP_MSG_REQUEST, "id 0 is a request id");
	cr_assert_eq(json_integer_value(m.id), 0);
	json_decref(v);
	cr_assert_eq(classify("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"roots/list\"}", &m, &v), 0);
	cr_assert_eq(m.kind, MCP_MSG_REQUEST);
	json_decref(v);
	cr_assert_eq(classify("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
			      "\"params\":{}}", &m, &v), 0);
	cr_assert_eq(m.kind, MCP_MSG_NOTIFICATION);
	json_decref(v);
	cr_assert_eq(classify("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", &m, &v), 0);
	cr_assert_eq(m.kind, MCP_MSG_RESPONSE);
	json_decref(v);
	cr_assert_eq(classify("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
			      "\"message\":\"parse\"}}", &m, &v), 0);
	json_decref(v);

	const char *bad[] = {
		"[]", "{\"id\":1,\"result\":{}}", "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1}", "{\"jsonrpc\":\"2.0\",\"method\":3}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":7}",
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\"}}",
		"{\"jsonrpc\":\"2.0\",\"result\":{}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(classify(bad[i], &m, &v), -EBADMSG, "accepted: %s", bad[i]);
		json_decref(v);
	}
}

Test(mcp_lines, json_parse_rejects_duplicates_and_garbage)
{
	struct err why = { 0 };
	cr_assert_null(mcp_json_parse("{\"a\":1,\"a\":2}", 13, &why));
	cr_assert_null(mcp_json_parse("nope", 4, &why));
	cr_assert(strstr(why.msg, "invalid JSON"));
	/* The length is honoured: bytes past it are not read. */
	json_t *v = mcp_json_parse("{}garbage", 2, &why);
	cr_assert(json_is_object(v));
	json_decref(v);
}
