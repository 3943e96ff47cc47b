/* Coverage builds only (`make COVERAGE=1`; nothing happens in any other
 * build): the API process runs as an unprivileged uid, so at its exit gcov
 * cannot write its counters into the root-owned build/cov/obj, and every line
 * only the API process runs (the whole HTTP API) would count as never run.
 * So it writes them under a directory of its own (GCOV_PREFIX, read by libgcov
 * when it dumps), and the parent, once the API process has exited, merges them
 * into the real ones with gcov-tool and removes the directory. */
#include "serve/priv_cov.h"

#include <errno.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "serve/priv.h"

/* Present only in a coverage build: every instrumented object refers to it,
 * so libgcov's copy is always linked in there (a weak reference alone would
 * not pull in, say, __gcov_dump). */
extern void __gcov_merge_add(void) __attribute__((weak));

static char cov_dir[64];
static char cov_common[4096];   /* the deepest directory holding every .gcda */

int priv_cov_prepare(void)
{
	if (!__gcov_merge_add)
		return 0;
	snprintf(cov_dir, sizeof(cov_dir), "/tmp/ironclaw-cov-XXXXXX");
	if (!mkdtemp(cov_dir) || chown(cov_dir, PRIV_API_UID, PRIV_API_UID) < 0) {
		log_warn("serve: coverage build: no directory for the API process's counters: %s",
			 strerror(errno));
		cov_dir[0] = '\0';
		return -errno;
	}
	return 0;
}

void priv_cov_child(void)
{
	if (cov_dir[0]) {
		setenv("GCOV_PREFIX", cov_dir, 1);
		setenv("GCOV_PREFIX_STRIP", "0", 1);
	}
}

static int cov_note(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	size_t n = strlen(path);
	if (flag != FTW_F || n < 5 || strcmp(path + n - 5, ".gcda"))
		return 0;
	const char *rel = path + strlen(cov_dir);   /* "/work/.../x.gcda" */
	if (!cov_common[0]) {
		snprintf(cov_common, sizeof(cov_common), "%s", rel);
		char *slash = strrchr(cov_common, '/');
		if (slash)
			*slash = '\0';
		return 0;
	}
	size_t i = 0;
	while (cov_common[i] && cov_common[i] == rel[i])
		i++;
	if (cov_common[i] || rel[i] != '/') {   /* cut back to a whole component */
		while (i && cov_common[i] != '/')
			i--;
		cov_common[i] = '\0';
	}
	return 0;
}

static int cov_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void priv_cov_merge(void)
{
	if (!cov_dir[0])
		return;
	cov_common[0] = '\0';
	nftw(cov_dir, cov_note, 16, FTW_PHYS);
	if (cov_common[0]) {
		char from[4200];
		snprintf(from, sizeof(from), "%s%s", cov_dir, cov_common);
		char *argv[] = { "gcov-tool", "merge", from, cov_common, "-o", cov_common, NULL };
		pid_t pid;
		int st = -1;
		extern char **environ;
		if (posix_spawnp(&pid, "gcov-tool", NULL, NULL, argv, environ) == 0)
			waitpid(pid, &st, 0);
		if (st != 0)
			log_warn("serve: coverage build: merging the API process's counters failed");
	}
	nftw(cov_dir, cov_rm, 16, FTW_DEPTH | FTW_PHYS);
}
