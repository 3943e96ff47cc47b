/* libFuzzer target: the guest's kernel command line parser. Whatever it
 * accepts must be safe to hand to busybox ip: only address characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest/cmdline.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_guest_check(const char *v, int with_slash)
{
	size_t n = strnlen(v, 64);
	if (n >= 64)
		abort();
	if (n && !guest_boot_valid_addr(v, with_slash))
		abort();
	if (strspn(v, "0123456789abcdefABCDEF.:/") != n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_boot_opts o;
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (guest_boot_parse_cmdline(s, &o) == 0) {
		fuzz_guest_check(o.ip, 1);
		fuzz_guest_check(o.gw, 0);
	}
	free(s);
	return 0;
}
