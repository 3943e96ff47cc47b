/* libFuzzer target: the frame decoder fed arbitrary bytes in arbitrary splits.
 * The first input byte chooses the chunk size, so the fuzzer explores how reads
 * are cut as well as what they hold, and (its high bit) whether binary frames
 * are accepted. Every decoded JSON frame also goes through the JSON-RPC
 * envelope parser; every binary frame must satisfy frame_bin_check and
 * re-encode to the same header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_frame_deliver(json_t *msg, void *ctx)
{
	(void)ctx;
	struct rpc_msg m;
	char why[128];
	rpc_parse(msg, &m, why, sizeof(why));
	return 0;
}

static int fuzz_frame_bin(const struct frame_bin *b, void *ctx)
{
	(void)ctx;
	uint8_t pre[FRAME_BIN_PREFIX];
	if (frame_bin_check(b, NULL, 0) < 0 || frame_bin_header(b, pre) < 0)
		abort();
	/* The header it re-encodes to sits right before the data it came with. */
	if (memcmp(pre + FRAME_HEADER, b->data - FRAME_BIN_HEADER, FRAME_BIN_HEADER))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)(data[0] & 0x7f) % 17 + 1;
	int binary = data[0] & 0x80;
	data++;
	size--;
	struct frame_decoder d;
	frame_decoder_init(&d);
	/* Keep the fuzzer's memory bounded: it need not allocate 16 MiB to reach the cap. */
	d.max = 1u << 20;
	if (binary)
		frame_decoder_accept_binary(&d, fuzz_frame_bin);
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (frame_decoder_feed(&d, data + off, n, fuzz_frame_deliver, NULL) < 0)
			break;
	}
	frame_decoder_free(&d);
	return 0;
}
