/* libFuzzer target: the params checks (proto/params.c) on arbitrary JSON (parsed with
 * the same flags as the frame decoder). The first byte picks the cap for
 * base64 data. Invariants: accepted data never exceeds the cap, accepted
 * strings hold no NUL, accepted integers lie in their range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allowed[] = { "exec", "data", "eof", "path", NULL };
	char why[256];
	if (size < 1)
		return 0;
	size_t max = data[0];
	json_t *p = json_loadb((const char *)data + 1, size - 1,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!p)
		return 0;
	proto_param_only(p, allowed, why, sizeof(why));
	if (json_is_object(p)) {
		json_int_t x = -1;
		int b = -1;
		const char *s = NULL;
		size_t len = 0;
		uint8_t *out = NULL;
		if (proto_param_int(p, "exec", 0, 0, 1000, &x, why, sizeof(why)) == 0 &&
		    json_object_get(p, "exec") && (x < 0 || x > 1000))
			abort();
		proto_param_bool(p, "eof", &b, why, sizeof(why));
		if (proto_param_str(p, "path", 0, &s, &len, why, sizeof(why)) == 0 && s &&
		    strlen(s) != len)
			abort();
		if (proto_param_data(p, max, &out, &len, why, sizeof(why)) == 0 && len > max)
			abort();
		free(out);
	}
	json_decref(p);
	return 0;
}
