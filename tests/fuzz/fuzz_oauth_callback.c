/* libFuzzer target: the loopback redirect's request head parser
 * (oauth_parse_callback), which anything on the machine can reach. Invariants:
 * no crash, no read past the input, decoded values free of control bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oauth_callback *cb = malloc(sizeof(*cb));
	if (!cb)
		return 0;
	/* A copy of exactly size bytes: ASan catches any read past it. */
	char *copy = malloc(size ? size : 1);
	if (copy) {
		memcpy(copy, data, size);
		if (oauth_parse_callback(copy, size, cb) == 0)
			for (const char *s = cb->code; *s; s++)
				if ((unsigned char)*s < 0x20)
					abort();
		free(copy);
	}
	free(cb);
	return 0;
}
