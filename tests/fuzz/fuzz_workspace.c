/* libFuzzer target: the copy-out unpacker over a hostile tar stream. Each input
 * is unpacked into a fresh staging dir beside an empty sentinel dir (which a
 * "../sentinel/x" entry or a symlink to it would reach). Invariants: nothing
 * ever appears in the sentinel, a refusal leaves an empty manifest, and every
 * accepted manifest path is a valid relative path. An accepted stream is then
 * unpacked again against its own manifest (the copy-in manifest of a run whose
 * files all came back unchanged): the same invariants, no staging file for an
 * entry marked unchanged, and the same entry count. Small caps keep each run
 * cheap. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workspace/workspace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_base[64];

static int fuzz_sentinel_empty(void)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/sentinel", fuzz_base);
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

struct fuzz_mem {
	const uint8_t *p;
	size_t left;
};

static long fuzz_mem_read(void *ctx, uint8_t *buf, size_t cap)
{
	struct fuzz_mem *m = ctx;
	size_t n = m->left < cap ? m->left : cap;
	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (long)n;
}

/* The second pass: against before, every invariant of the first, and an entry
 * marked unchanged has no staging file. */
static void fuzz_against(const uint8_t *data, size_t size, const char *staging,
			 const struct workspace_limits *lim, const struct workspace_manifest *before)
{
	struct fuzz_mem mem = { data, size };
	struct workspace_manifest m;
	struct err e = { 0 };
	int rc = workspace_unpack_against(fuzz_mem_read, &mem, staging, lim, before, &m, &e);
	if (rc < 0 && m.n)
		abort();
	if (rc == 0 && m.n != before->n)
		abort();
	for (size_t i = 0; i < m.n; i++) {
		if (workspace_path_check(m.v[i].path, strlen(m.v[i].path)) < 0)
			abort();
		char p[4200];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", staging, m.v[i].path);
		if (m.v[i].unchanged && lstat(p, &st) == 0)
			abort();
	}
	if (!fuzz_sentinel_empty())
		abort();
	workspace_manifest_free(&m);
	if (workspace_remove_tree(staging) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_base[0]) {
		snprintf(fuzz_base, sizeof(fuzz_base), "/tmp/ws-fuzz-XXXXXX");
		if (!mkdtemp(fuzz_base))
			abort();
		char p[128];
		snprintf(p, sizeof(p), "%s/sentinel", fuzz_base);
		if (mkdir(p, 0755) < 0)
			abort();
	}
	char staging[128];
	snprintf(staging, sizeof(staging), "%s/staging", fuzz_base);
	struct workspace_limits lim = { .max_bytes = 1 << 20, .max_files = 256 };
	struct workspace_manifest m;
	struct err e = { 0 };
	int rc = workspace_unpack_mem(data, size, staging, &lim, &m, &e);
	if (rc < 0 && m.n)
		abort();
	for (size_t i = 0; i < m.n; i++)
		if (workspace_path_check(m.v[i].path, strlen(m.v[i].path)) < 0)
			abort();
	if (!fuzz_sentinel_empty())
		abort();
	if (workspace_remove_tree(staging) < 0)
		abort();
	if (rc == 0)
		fuzz_against(data, size, staging, &lim, &m);
	workspace_manifest_free(&m);
	return 0;
}
