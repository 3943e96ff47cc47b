/* Seccomp kill records from /dev/kmsg (see kmsg.h). Each read() of /dev/kmsg
 * returns one record; EPIPE means records were overwritten (skip on), EAGAIN
 * the end. The pid in the record is the global one, which is what we hold. */
#include "jail/kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int jail_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

static int jail_kmsg_field(const char *rec, const char *key, int base, long *out)
{
	const char *s = strstr(rec, key);
	if (!s)
		return -ENOENT;
	s += strlen(key);
	char *end;
	long v = strtol(s, &end, base);
	if (end == s || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int jail_kmsg_find_seccomp(int fd, pid_t pid, long *nr, unsigned long *arch)
{
	if (fd < 0)
		return -ENOENT;
	char rec[2048], want[32];
	snprintf(want, sizeof(want), " pid=%d ", (int)pid);
	/* Without an audit daemon the kernel's kauditd thread prints the record,
	 * so it can land a little after the process is reaped: wait up to 1 s. */
	for (int waits = 0, reads = 0; reads < 4096;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && (errno == EPIPE || errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (waits++ >= 10)
				break;
			poll(&p, 1, 100);
			continue;
		}
		if (n <= 0)
			break;
		reads++;
		rec[n] = 0;
		long v, a;
		if (!strstr(rec, "type=1326") || !strstr(rec, want) || jail_kmsg_field(rec, " syscall=", 10, &v))
			continue;
		*nr = v;
		*arch = jail_kmsg_field(rec, " arch=", 16, &a) ? 0 : (unsigned long)a;
		return 0;
	}
	return -ENOENT;
}
