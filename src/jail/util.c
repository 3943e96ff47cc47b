/* Small process helpers for the jail: running a system tool with a fixed argv
 * (no shell, empty environment, output captured; used once per VMM binary for
 * the loader's library list), and telling whether a recorded pid is still the
 * same process. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io.h"

int jail_run(char *const argv[], char *out, size_t out_len)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (pid == 0) {
		char *const envp[] = { NULL };
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(p[1]);
	size_t used = 0;
	char sink[256];
	for (;;) {
		char *dst = (out && used + 1 < out_len) ? out + used : sink;
		size_t room = (out && used + 1 < out_len) ? out_len - 1 - used : sizeof(sink);
		ssize_t n = io_read(p[0], dst, room);
		if (n <= 0)
			break;
		if (dst != sink)
			used += (size_t)n;
	}
	close(p[0]);
	if (out && out_len) {
		out[used] = 0;
		/* One line is enough for an error message. */
		while (used && (out[used - 1] == '\n' || out[used - 1] == ' '))
			out[--used] = 0;
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

unsigned long long jail_proc_start(pid_t pid)
{
	if (pid <= 0)
		return 0;
	char path[64], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (io_read_file(path, 4096, &buf, &len))
		return 0;
	unsigned long long start = 0;
	/* comm may hold spaces and ')': fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	if (p) {
		int field = 2;
		for (p++; *p && field < 22; p++)
			if (*p == ' ')
				field++;
		char state = 0;
		/* A zombie is gone for our purposes. */
		const char *q = strrchr(buf, ')');
		if (q && q[1] == ' ')
			state = q[2];
		if (field == 22 && state != 'Z')
			sscanf(p, "%llu", &start);
	}
	free(buf);
	return start;
}
