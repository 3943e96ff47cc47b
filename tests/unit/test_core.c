/* Core helpers: bounded buffers refuse to pass their cap, base64 round-trips and
 * rejects junk, error chains keep the innermost cause. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"

Test(buf, cap_enforced_before_growth)
{
	struct buf b;
	buf_init(&b, 10);
	cr_assert_eq(buf_append(&b, "12345", 5), 0);
	cr_assert_eq(buf_append(&b, "67890", 5), 0);
	cr_assert_eq(buf_append(&b, "x", 1), -EMSGSIZE);
	cr_assert_eq(b.len, 10);
	cr_assert_leq(b.cap, 11);
	buf_consume(&b, 3);
	cr_assert_str_eq((char *)b.data, "4567890");
	cr_assert_eq(buf_printf(&b, "%d", 123), 0);
	cr_assert_eq(buf_printf(&b, "%d", 1), -EMSGSIZE);
	buf_free(&b);
}

Test(b64, round_trip_all_lengths)
{
	uint8_t in[300], out[300];
	char enc[420];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n < sizeof(in); n++) {
		b64_encode(in, n, enc);
		cr_assert_eq(strlen(enc), b64_encoded_len(n));
		long m = b64_decode(enc, strlen(enc), out);
		cr_assert_eq(m, (long)n);
		cr_assert_eq(memcmp(in, out, n), 0);
	}
}

Test(b64, known_vectors_and_junk)
{
	char enc[16];
	b64_encode((const uint8_t *)"foob", 4, enc);
	cr_assert_str_eq(enc, "Zm9vYg==");
	uint8_t out[16];
	cr_assert_eq(b64_decode("Zm9vYmFy", 8, out), 6);
	cr_assert_eq(memcmp(out, "foobar", 6), 0);
	cr_assert_eq(b64_decode("Zm9", 3, out), -EINVAL);
	cr_assert_eq(b64_decode("Zm9v\nmFy", 8, out), -EINVAL);
	cr_assert_eq(b64_decode("Z=9v", 4, out), -EINVAL);
	cr_assert_eq(b64_decode("Zg==Zm9v", 8, out), -EINVAL);
}

Test(err, chain_prefixes_context)
{
	struct err e;
	err_clear(&e);
	cr_assert_eq(err_set(&e, -ENOENT, "opening %s: %s", "kernel", "No such file"), -ENOENT);
	cr_assert_eq(err_wrap(&e, "starting VM"), -ENOENT);
	cr_assert_str_eq(e.msg, "starting VM: opening kernel: No such file");
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_wrap(&e, "%s", big);
	cr_assert_lt(strlen(e.msg), ERR_MSG_MAX);
}
