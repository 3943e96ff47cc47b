/* EINTR-safe file descriptor I/O. All return 0 / byte counts or a negative errno. */
#ifndef IRONCLAW_CORE_IO_H
#define IRONCLAW_CORE_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all n bytes (retrying short writes and EINTR; waits on EAGAIN). */
int io_write_all(int fd, const void *p, size_t n);
/* One read, retried on EINTR. Returns bytes read (0 at EOF) or -errno. */
ssize_t io_read(int fd, void *p, size_t n);
/* Reads a whole file of at most max bytes. *out is owned by the caller (NUL-terminated). */
int io_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes a whole file atomically (temp file + rename). */
int io_write_file(const char *path, const void *p, size_t n, unsigned mode);
/* Sets or clears O_NONBLOCK / FD_CLOEXEC. */
int io_set_nonblock(int fd, int on);
int io_set_cloexec(int fd, int on);

#endif
