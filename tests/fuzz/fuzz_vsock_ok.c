/* libFuzzer target: the vsock handshake's `OK <port>\n` line (vm/fc_parse.c),
 * fed whole and then one byte at a time as a reader receives it. Invariants:
 * an accepted line ends at its first '\n', within FC_VSOCK_LINE_MAX, and
 * never covers a byte after it (the first frame); a prefix of an accepted line
 * asks for more rather than failing; nothing reads past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/fc_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);
	memcpy(p, data, size);
	uint32_t port = 0;
	int rc = fc_vsock_parse_ok(p, size, &port);
	if (rc > 0) {
		if ((size_t)rc > size || rc > FC_VSOCK_LINE_MAX || p[rc - 1] != '\n' ||
		    memchr(p, '\n', (size_t)rc - 1) || memcmp(p, "OK ", 3))
			abort();
		for (int k = 0; k < rc; k++) {
			uint32_t q;
			int r2 = fc_vsock_parse_ok(p, (size_t)k, &q);
			if (r2 != 0)
				abort();   /* a prefix must ask for more */
		}
	}
	free(p);
	return 0;
}
