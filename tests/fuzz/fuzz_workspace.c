/* libFuzzer target: the copy-out unpacker over a hostile tar stream. Each input
 * is unpacked into a fresh staging dir beside an empty sentinel dir (which a
 * "../sentinel/x" entry or a symlink to it would reach). Invariants: nothing
 * ever appears in the sentinel, a refusal leaves an empty manifest, and every
 * accepted manifest path is a valid relative path. Small caps keep each run
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
	workspace_manifest_free(&m);
	if (workspace_remove_tree(staging) < 0)
		abort();
	return 0;
}
