/* libFuzzer target: the Server-Sent Events parser used by the Streamable HTTP
 * transport, fed in input-chosen chunk sizes (so CR/LF pairs and fields split
 * across reads are covered). Invariants: no dispatched event is larger than
 * the cap, and its data is what it claims to be (length within the buffer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/wire.h"
#include "net/net.h"

#define FUZZ_EVENT_MAX 4096

static void on_event(void *opaque, const struct net_sse_event *ev)
{
	struct err why = { 0 };
	(void)opaque;
	if (ev->data_len > FUZZ_EVENT_MAX || !ev->event || !ev->data)
		abort();
	/* Touch every byte the event claims (ASan checks the bounds). */
	volatile unsigned sum = 0;
	for (size_t i = 0; i < ev->data_len; i++)
		sum += (unsigned char)ev->data[i];
	json_decref(mcp_json_parse(ev->data, ev->data_len, &why));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_sse s;
	net_sse_init(&s, FUZZ_EVENT_MAX, on_event, NULL);
	size_t chunk = size ? (size_t)data[0] % 64 + 1 : 1;
	const char *p = (const char *)data + (size ? 1 : 0);
	size_t n = size ? size - 1 : 0;
	while (n > 0) {
		size_t take = n < chunk ? n : chunk;
		net_sse_feed(&s, p, take);
		p += take;
		n -= take;
	}
	if (s.retry_ms < -1)
		abort();
	net_sse_free(&s);
	return 0;
}
