/* libFuzzer target: the model-reply parsers of both providers, streamed and
 * not. The first input byte picks the provider (bit 0) and the mode (bit 1:
 * the rest is an SSE stream fed in chunks of a size taken from the upper
 * bits; else one JSON body). Invariants: no crash or leak, a reply is never
 * both failed and delivered, text stays within the cap, every tool call has
 * either object arguments or an error, and the key never comes back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/wire.h"
#include "net/net.h"

#define FUZZ_CAP 65536
#define FUZZ_KEY "sk-fuzz-KEY-1234567890"

struct fuzz_ctx {
	const struct llm_proto *p;
	struct llm_acc *a;
};

static void fuzz_event(void *opaque, const struct net_sse_event *ev)
{
	struct fuzz_ctx *c = opaque;
	c->p->event(c->a, ev->event, ev->data, ev->data_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const struct llm_proto *p = data[0] & 1 ? &llm_proto_anthropic : &llm_proto_openai;
	int stream = data[0] & 2;
	size_t chunk = (size_t)(data[0] >> 2) + 1;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	struct llm_limits lim = { FUZZ_CAP, 32, FUZZ_KEY };
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	if (stream) {
		struct fuzz_ctx c = { p, &a };
		struct net_sse sse;
		net_sse_init(&sse, FUZZ_CAP, fuzz_event, &c);
		while (n > 0) {
			size_t take = n < chunk ? n : chunk;
			net_sse_feed(&sse, s, take);
			s += take;
			n -= take;
		}
		net_sse_feed(&sse, "\n\n", 2);
		net_sse_free(&sse);
	} else {
		p->parse(&a, s, n);
	}
	struct llm_reply *r = NULL;
	struct llm_failure f = { 0 };
	int rc = llm_acc_finish(&a, &r, &f);
	if ((rc == 0) != (r != NULL))
		abort();
	if (r) {
		if (r->text_len > FUZZ_CAP || (r->text && strstr(r->text, FUZZ_KEY)))
			abort();
		if (r->ncalls > LLM_CALLS_MAX || strstr(r->model, FUZZ_KEY) || strstr(r->stop_raw, FUZZ_KEY))
			abort();
		for (size_t i = 0; i < r->ncalls; i++) {
			struct llm_tool_call *k = &r->calls[i];
			if (!k->id || !k->name || !k->raw_arguments)
				abort();
			if (!!k->error == !!k->arguments)
				abort();
			if (k->arguments && !json_is_object(k->arguments))
				abort();
			if (strstr(k->raw_arguments, FUZZ_KEY) || strstr(k->id, FUZZ_KEY) ||
			    strstr(k->name, FUZZ_KEY) || (k->error && strstr(k->error, FUZZ_KEY)))
				abort();
		}
		llm_reply_free(r);
	} else if (!f.e.msg[0] || strstr(f.e.msg, FUZZ_KEY)) {
		abort();
	}
	llm_acc_free(&a);
	return 0;
}
