/* libFuzzer target: Firecracker API response checking (vm/fc_parse.c). The
 * first two bytes choose the HTTP status (100..611), the rest is the body.
 * Invariants: a success is only 2xx; a well-formed error's fault is
 * NUL-terminated within FC_FAULT_MAX and printable; nothing reads past the
 * body (ASan: the body is copied into an exactly sized buffer). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/fc_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	long status = 100 + (long)((data[0] << 8 | data[1]) % 512);
	size_t n = size - 2;
	char *body = malloc(n ? n : 1);
	memcpy(body, data + 2, n);
	struct fc_api_reply r;
	struct err e = { 0 };
	int rc = fc_api_parse_reply(status, body, n, &r, &e);
	if (rc == 0 && (status < 200 || status > 299))
		abort();
	if (rc != 0 && rc != -EREMOTEIO && rc != -EPROTO)
		abort();
	size_t fl = strnlen(r.fault, sizeof(r.fault));
	if (fl >= sizeof(r.fault))
		abort();
	for (size_t i = 0; i < fl; i++)
		if ((unsigned char)r.fault[i] < 0x20 || r.fault[i] == 0x7f)
			abort();
	free(body);
	return 0;
}
