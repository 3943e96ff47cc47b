/* libFuzzer target: the MCP stdio reader. Input bytes go through the line
 * splitter (in chunks whose sizes come from the input, so split reads are
 * covered), each line through the JSON parser and the JSON-RPC classifier,
 * exactly as the stdio transport does with a server's stdout. Invariants: no
 * line handed out is longer than the cap, and classification never crashes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/wire.h"

#define FUZZ_LINE_MAX 4096

static void on_line(void *opaque, const char *line, size_t len)
{
	struct err why = { 0 };
	(void)opaque;
	if (len > FUZZ_LINE_MAX)
		abort();
	json_t *v = mcp_json_parse(line, len, &why);
	if (!v)
		return;
	struct mcp_msg m;
	if (mcp_msg_classify(v, &m, &why) == 0 && m.kind == MCP_MSG_RESPONSE &&
	    !m.result == !m.error)
		abort();
	json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mcp_lines l;
	mcp_lines_init(&l, FUZZ_LINE_MAX);
	/* The first byte picks the chunk size: 1..256 bytes per read. */
	size_t chunk = size ? (size_t)data[0] + 1 : 1;
	const char *p = (const char *)data + (size ? 1 : 0);
	size_t n = size ? size - 1 : 0;
	while (n > 0) {
		size_t take = n < chunk ? n : chunk;
		mcp_lines_feed(&l, p, take, on_line, NULL);
		p += take;
		n -= take;
	}
	mcp_lines_free(&l);
	return 0;
}
