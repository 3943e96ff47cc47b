/* Replays a libFuzzer target's corpus as a plain regression test (built with gcc,
 * run by `make check`). The binary is named replay_fuzz_<name>; its corpus is
 * tests/fuzz/corpus/<name>/ under $IRONCLAW_ROOT (or the current directory).
 * Every file must run through LLVMFuzzerTestOneInput without crashing; a corpus
 * that is missing or empty fails, so the replay cannot pass vacuously. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	(void)argc;
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	const char *prefix = "replay_fuzz_";
	if (strncmp(base, prefix, strlen(prefix))) {
		fprintf(stderr, "replay: binary must be named %s<name>\n", prefix);
		return 2;
	}
	const char *root = getenv("IRONCLAW_ROOT");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", root ? root : ".", base + strlen(prefix));
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "replay: no corpus at %s\n", dir);
		return 1;
	}
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		char *data = NULL;
		size_t len = 0;
		if (io_read_file(path, 64u << 20, &data, &len) < 0) {
			fprintf(stderr, "replay: cannot read %s\n", path);
			closedir(d);
			return 1;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)data, len);
		free(data);
		count++;
	}
	closedir(d);
	printf("replay: %d inputs from %s ran clean\n", count, dir);
	return count > 0 ? 0 : 1;
}
