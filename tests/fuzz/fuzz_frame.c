/* libFuzzer target: the frame decoder fed arbitrary bytes in arbitrary splits.
 * The first input byte chooses the chunk size, so the fuzzer explores how reads
 * are cut as well as what they hold. Every decoded frame also goes through the
 * JSON-RPC envelope parser. */
#include <stddef.h>
#include <stdint.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	struct frame_decoder d;
	frame_decoder_init(&d);
	/* Keep the fuzzer's memory bounded: it need not allocate 16 MiB to reach the cap. */
	d.max = 1u << 20;
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (frame_decoder_feed(&d, data + off, n, fuzz_frame_deliver, NULL) < 0)
			break;
	}
	frame_decoder_free(&d);
	return 0;
}
