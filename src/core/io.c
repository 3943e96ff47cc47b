/* EINTR-safe I/O helpers: see io.h. */
#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int io_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };
				poll(&pfd, 1, -1);
				continue;
			}
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

ssize_t io_read(int fd, void *p, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

int io_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int rc = 0;
	char *data = NULL;
	size_t have = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (have + 1 >= cap) {
			if (cap > max) {
				rc = -EFBIG;
				goto out;
			}
			size_t ncap = cap ? cap * 2 : 4096;
			if (ncap > max + 2)
				ncap = max + 2;
			char *p = realloc(data, ncap);
			if (!p) {
				rc = -ENOMEM;
				goto out;
			}
			data = p;
			cap = ncap;
		}
		ssize_t r = io_read(fd, data + have, cap - have - 1);
		if (r < 0) {
			rc = (int)r;
			goto out;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		if (have > max) {
			rc = -EFBIG;
			goto out;
		}
	}
	data[have] = '\0';
	*out = data;
	data = NULL;
	if (len)
		*len = have;
out:
	free(data);
	close(fd);
	return rc;
}

int io_write_file(const char *path, const void *p, size_t n, unsigned mode)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	int rc = io_write_all(fd, p, n);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int io_set_flag(int fd, int get, int set, int flag, int on)
{
	int fl = fcntl(fd, get);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | flag) : (fl & ~flag);
	return fcntl(fd, set, fl) < 0 ? -errno : 0;
}

int io_set_nonblock(int fd, int on)
{
	return io_set_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, on);
}

int io_set_cloexec(int fd, int on)
{
	return io_set_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, on);
}
