/* libFuzzer target: the guest's streaming tar reader (src/guest/untar.c, the
 * copy-in unpacker of @ws-unpack). Each input is fed in pieces whose sizes
 * come from its first byte (streams arrive split anywhere), into a fresh root
 * beside an empty sentinel dir. Invariants: nothing ever appears in the
 * sentinel (no "..", absolute path or symlink leads out), a failure has a
 * message, and the reader never crashes or writes past its buffers. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/untar.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_base[64];

static int fuzz_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	chmod(p, 0700);
	return remove(p) < 0 ? 0 : 0;
}

static int fuzz_dir_empty(const char *p)
{
	DIR *d = opendir(p);
	if (!d)
		return 0;
	int empty = 1;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char root[128], sentinel[128];
	if (!fuzz_base[0]) {
		snprintf(fuzz_base, sizeof(fuzz_base), "/tmp/untar-fuzz-XXXXXX");
		if (!mkdtemp(fuzz_base))
			abort();
	}
	snprintf(root, sizeof(root), "%s/root", fuzz_base);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", fuzz_base);
	nftw(root, fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir(root, 0755) < 0 || (mkdir(sentinel, 0755) < 0 && !fuzz_dir_empty(sentinel)))
		abort();
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		abort();
	size_t piece = size ? (size_t)data[0] * 7 + 1 : 1;
	struct guest_untar u;
	guest_untar_init(&u, rootfd);
	int rc = 0;
	for (size_t off = size ? 1 : 0; off < size && rc == 0; off += piece)
		rc = guest_untar_feed(&u, data + off, size - off < piece ? size - off : piece);
	if (rc == 0)
		rc = guest_untar_finish(&u);
	if (rc < 0 && !u.err[0])
		abort();
	guest_untar_free(&u);
	close(rootfd);
	if (!fuzz_dir_empty(sentinel))
		abort();
	return 0;
}
