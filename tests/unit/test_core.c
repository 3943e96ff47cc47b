/* Core helpers: bounded buffers refuse to pass their cap, base64 round-trips and
 * rejects junk, error chains keep the innermost cause, mkdir -p makes what a
 * path needs and names the directory it could not make. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/dirs.h"
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

static int is_dir(const char *base, const char *rel, unsigned *mode)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", base, rel);
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	*mode = st.st_mode & 0777;
	return 1;
}

Test(dirs, makes_every_prefix_before_a_slash_and_names_what_failed)
{
	char base[] = "/tmp/ic-dirs-XXXXXX", p[512];
	unsigned mode = 0;
	cr_assert(mkdtemp(base));
	umask(022);

	/* "a/b/file": the parents only; the buffer is whole again afterwards. */
	snprintf(p, sizeof(p), "%s/a/b/file", base);
	cr_assert_eq(dirs_make_prefixes(p, 0700), 0);
	cr_assert(is_dir(base, "a", &mode) && mode == 0700);
	cr_assert(is_dir(base, "a/b", &mode) && mode == 0700);
	cr_assert(!is_dir(base, "a/b/file", &mode), "the last component is not a directory");
	char want[512];
	snprintf(want, sizeof(want), "%s/a/b/file", base);
	cr_assert_str_eq(p, want);

	/* A trailing '/' makes the last one too; what exists already is fine. */
	snprintf(p, sizeof(p), "%s/a/b/c/", base);
	cr_assert_eq(dirs_make_prefixes(p, 0700), 0);
	cr_assert(is_dir(base, "a/b/c", &mode));

	/* A file in the way: -ENOTDIR, and the buffer is cut where it failed. */
	snprintf(p, sizeof(p), "%s/a/f", base);
	FILE *f = fopen(p, "w");
	cr_assert(f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/a/f/g/h", base);
	cr_assert_eq(dirs_make_prefixes(p, 0700), -ENOTDIR);
	snprintf(want, sizeof(want), "%s/a/f/g", base);
	cr_assert_str_eq(p, want, "the message would name the wrong directory");

	char empty[1] = "";
	cr_assert_eq(dirs_make_prefixes(empty, 0700), 0);

	static const char *const made[] = { "a/b/c", "a/b", "a/f", "a", "" };
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", base, made[i]);
		cr_assert(remove(p) == 0, "%s: %s", p, strerror(errno));
	}
}
