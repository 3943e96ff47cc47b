/* The guest's copy-in tar reader (src/guest/untar.c) on streams libarchive
 * writes the way the host's packer does (pax-restricted ustar), fed in small
 * pieces: what it creates, and what it refuses without writing outside its
 * root. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/untar.c"   /* the guest is its own binary: its sources are compiled in */

struct ent {
	const char *path;
	int type;         /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFIFO */
	const char *data; /* file bytes or symlink target */
	unsigned mode;
};

static size_t tar_build(const struct ent *v, size_t n, uint8_t *out, size_t cap)
{
	struct archive *a = archive_write_new();
	size_t used = 0;
	cr_assert_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	cr_assert_eq(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *en = archive_entry_new();
		archive_entry_set_pathname(en, v[i].path);
		archive_entry_set_filetype(en, (unsigned)v[i].type);
		archive_entry_set_perm(en, v[i].mode ? v[i].mode : 0644);
		archive_entry_set_mtime(en, 1700000000, 0);
		size_t len = v[i].type == AE_IFREG && v[i].data ? strlen(v[i].data) : 0;
		archive_entry_set_size(en, (la_int64_t)len);
		if (v[i].type == AE_IFLNK)
			archive_entry_set_symlink(en, v[i].data);
		cr_assert_eq(archive_write_header(a, en), ARCHIVE_OK);
		if (len)
			archive_write_data(a, v[i].data, len);
		archive_entry_free(en);
	}
	archive_write_close(a);
	archive_write_free(a);
	return used;
}

static char base[64], root[96];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/untar-test-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(root, sizeof(root), "%s/root", base);
	cr_assert_eq(mkdir(root, 0755), 0);
	char s[128];
	snprintf(s, sizeof(s), "%s/sentinel", base);
	cr_assert_eq(mkdir(s, 0755), 0);
}

static void teardown(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'; rm -rf '%s'", base, base);
	cr_assert_eq(system(cmd), 0);
}

/* Unpacks in pieces of `piece` bytes; returns feed/finish's result. */
static int untar(const uint8_t *t, size_t n, size_t piece, char *err, size_t errcap)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	struct guest_untar *u = malloc(sizeof(*u));
	guest_untar_init(u, fd);
	int rc = 0;
	for (size_t off = 0; off < n && rc == 0; off += piece)
		rc = guest_untar_feed(u, t + off, n - off < piece ? n - off : piece);
	if (rc == 0)
		rc = guest_untar_finish(u);
	snprintf(err, errcap, "%s", u->err);
	guest_untar_free(u);
	free(u);
	close(fd);
	return rc;
}

static int exists_at(const char *dir, const char *rel, struct stat *st)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, st) == 0;
}

static uint8_t buf[4 << 20];

TestSuite(guest_untar, .init = setup, .fini = teardown);

Test(guest_untar, a_tree_with_modes_symlinks_long_paths_in_odd_pieces)
{
	char longp[700];
	memset(longp, 'p', sizeof(longp));
	memcpy(longp, "d/", 2);
	longp[200] = longp[400] = longp[600] = '/';
	longp[sizeof(longp) - 1] = '\0';
	const struct ent v[] = {
		{ "d", AE_IFDIR, NULL, 0755 },
		{ "d/a.txt", AE_IFREG, "hello\n", 0640 },
		{ "d/run.sh", AE_IFREG, "#!/bin/sh\n", 0755 },
		{ "d/link", AE_IFLNK, "a.txt", 0777 },
		{ "d/empty", AE_IFREG, "", 0600 },
		{ longp, AE_IFREG, "deep", 0644 },
		{ "ro", AE_IFDIR, NULL, 0500 },
		{ "ro/inside", AE_IFREG, "x", 0444 },
	};
	size_t n = tar_build(v, sizeof(v) / sizeof(v[0]), buf, sizeof(buf));
	char err[400];
	cr_assert_eq(untar(buf, n, 37, err, sizeof(err)), 0, "%s", err);
	struct stat st;
	cr_assert(exists_at(root, "d/a.txt", &st) && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640 &&
		  st.st_size == 6 && st.st_mtime == 1700000000);
	cr_assert(exists_at(root, "d/run.sh", &st) && (st.st_mode & 0777) == 0755);
	cr_assert(exists_at(root, "d/empty", &st) && st.st_size == 0);
	cr_assert(exists_at(root, "d/link", &st) && S_ISLNK(st.st_mode));
	cr_assert(exists_at(root, longp, &st) && st.st_size == 4);
	cr_assert(exists_at(root, "ro", &st) && (st.st_mode & 0777) == 0500, "deferred dir mode");
	cr_assert(exists_at(root, "ro/inside", &st));
}

static void refused(const struct ent *v, size_t n, const char *what)
{
	size_t len = tar_build(v, n, buf, sizeof(buf));
	char err[400], s[128];
	cr_assert_lt(untar(buf, len, 512, err, sizeof(err)), 0, "%s was accepted", what);
	cr_assert_neq(err[0], '\0');
	snprintf(s, sizeof(s), "%s/sentinel", base);
	struct stat st;
	cr_assert(!exists_at(s, "x", &st), "%s wrote outside the root", what);
}

Test(guest_untar, refuses_dotdot_absolute_symlink_escapes_and_fifos)
{
	const struct ent dotdot[] = { { "../sentinel/x", AE_IFREG, "x", 0 } };
	refused(dotdot, 1, "a .. path");
	const struct ent abs[] = { { "/tmp/x", AE_IFREG, "x", 0 } };
	refused(abs, 1, "an absolute path");
	const struct ent through[] = { { "l", AE_IFLNK, "../sentinel", 0 }, { "l/x", AE_IFREG, "x", 0 } };
	refused(through, 2, "a path through a symlink");
	const struct ent over[] = { { "l2", AE_IFLNK, "../sentinel/x", 0 }, { "l2", AE_IFREG, "x", 0 } };
	refused(over, 2, "a file over a symlink");
	const struct ent fifo[] = { { "p", AE_IFIFO, NULL, 0 } };
	refused(fifo, 1, "a fifo");
}

Test(guest_untar, a_cut_stream_and_a_bad_checksum_fail)
{
	const struct ent v[] = { { "a", AE_IFREG, "abc", 0 } };
	size_t n = tar_build(v, 1, buf, sizeof(buf));
	char err[400];
	cr_assert_lt(untar(buf, 700, 100, err, sizeof(err)), 0);
	cr_assert(strstr(err, "ended before"), "%s", err);
	buf[0] ^= 1;
	cr_assert_lt(untar(buf, n, 4096, err, sizeof(err)), 0);
	cr_assert(strstr(err, "checksum"), "%s", err);
}
