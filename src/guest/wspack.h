/* The guest's tar writer for workspace copy-out (`@ws-pack`, ws.c).
 *
 * Walks a directory tree (never following a symlink) and produces a ustar
 * stream on demand, reading each file straight into the caller's buffer (the
 * body of the output frame that carries it): no pipe, no second process, no
 * copy between a tar program and the agent. Paths or targets over 100 bytes
 * get a pax extended header. Fifos, sockets and devices are skipped, as
 * copy-in skips them. A file that shrinks while it is read is padded with
 * zeros to the size its header gave (the stream stays well formed; the host
 * sees what the guest left). The host parses the stream as hostile input
 * (workspace/unpack.c); nothing here is trusted by it. */
#ifndef IRONCLAW_GUEST_WSPACK_H
#define IRONCLAW_GUEST_WSPACK_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_WSPACK_DEPTH_MAX 64
#define GUEST_WSPACK_PATH_MAX 1024
/* A read buffer must hold the largest header run: a pax header for a long
 * path and target, then the ustar header. */
#define GUEST_WSPACK_MIN_CAP (8u * 1024)

struct guest_wspack {
	DIR *stack[GUEST_WSPACK_DEPTH_MAX + 1];
	size_t stack_len[GUEST_WSPACK_DEPTH_MAX + 1];  /* path length at each level */
	int depth;                    /* open levels */
	char path[GUEST_WSPACK_PATH_MAX + 2];
	int fd;                       /* the file being streamed */
	uint64_t left, pad;
	int end_left;                 /* end-of-archive blocks still to write */
	int done;
	size_t skipped;
};

/* Opens root. 0 or -errno. */
int guest_wspack_open(struct guest_wspack *p, const char *root);
/* Writes up to cap (>= GUEST_WSPACK_MIN_CAP) bytes of the stream into out.
 * Returns the count, 0 once the stream is complete, or -errno with why. */
long guest_wspack_read(struct guest_wspack *p, uint8_t *out, size_t cap, char *why, size_t whyn);
void guest_wspack_close(struct guest_wspack *p);

#endif
