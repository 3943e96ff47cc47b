/* libFuzzer target: the `--net allow=` parser (user input that becomes
 * firewall rules). The input is passed with its length and no terminator, so
 * reading past the end shows up under ASan. Invariants: on success every entry
 * has prefix <= 32 and the count never exceeds the cap; on failure the message
 * is one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jail/jail.h"

/* The parser is compiled into this target directly: tests/fuzz/run.sh builds
 * the fuzzers from src/core, src/proto and src/mcp only, and allow.c needs
 * nothing beyond src/core. (In the replay build, libironclaw.a's copy is then
 * simply not pulled in.) */
#include "../../src/jail/allow.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: no terminator to lean on. */
	char *spec = malloc(size ? size : 1);
	if (!spec)
		return 0;
	memcpy(spec, data, size);
	struct jail_net_allow out[JAIL_ALLOW_MAX];
	size_t n = 0;
	struct err e = { 0 };
	int rc = jail_net_parse_allow(spec, size, out, JAIL_ALLOW_MAX, &n, &e);
	if (rc == 0) {
		if (n > JAIL_ALLOW_MAX)
			abort();
		for (size_t i = 0; i < n; i++)
			if (out[i].prefix > 32)
				abort();
	} else if (!e.msg[0] || strchr(e.msg, '\n')) {
		abort();
	}
	free(spec);
	return 0;
}
