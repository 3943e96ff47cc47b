/* The guest's streaming tar reader for workspace copy-in (`@ws-unpack`, ws.c).
 *
 * The host's workspace packer (libarchive, pax-restricted ustar) is the only
 * writer; the stream arrives in exec.stdin frames of any size and split at any
 * byte, and is unpacked as it comes: a file's bytes are written straight from
 * the frame into the file, with no pipe and no second process in between
 * (busybox tar on a pipe was most of copy-in's time, docs/bench.md).
 *
 * The host is trusted, but this is still a parser: every field is bounded
 * (paths at most GUEST_UNTAR_PATH_MAX bytes and GUEST_UNTAR_DEPTH_MAX levels,
 * a pax header at most GUEST_UNTAR_PAX_MAX bytes, at most
 * GUEST_UNTAR_ENTRIES_MAX entries), the header checksum is checked, and every
 * write stays beneath the root fd: paths are relative, without "." or ".."
 * components, and resolved one component at a time with O_NOFOLLOW, so not
 * even a symlink the stream itself created can lead outside. Only regular
 * files, directories and symlinks are accepted. No global state. */
#ifndef IRONCLAW_GUEST_UNTAR_H
#define IRONCLAW_GUEST_UNTAR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GUEST_UNTAR_PATH_MAX 1024      /* = WORKSPACE_PATH_MAX on the host */
#define GUEST_UNTAR_DEPTH_MAX 64       /* = WORKSPACE_DEPTH_MAX */
#define GUEST_UNTAR_PAX_MAX 8192
#define GUEST_UNTAR_ENTRIES_MAX 1000000u

struct guest_untar_dirmode {
	char *path;                    /* owned */
	unsigned mode;
};

struct guest_untar {
	int rootfd;                    /* borrowed */
	int state;
	uint8_t blk[512];
	size_t blk_have;
	uint64_t left;                 /* data bytes of the current entry still to come */
	uint64_t pad;                  /* padding bytes after them */
	int fd;                        /* the file being written, or -1 */
	char cur[GUEST_UNTAR_PATH_MAX + 1];
	int64_t cur_mtime;
	/* pax extended header of the next entry */
	char pax[GUEST_UNTAR_PAX_MAX];
	size_t pax_have;
	char pax_path[GUEST_UNTAR_PATH_MAX + 1];
	char pax_link[GUEST_UNTAR_PATH_MAX + 1];
	int have_pax_path, have_pax_link, have_pax_size;
	uint64_t pax_size;
	/* the parent directory of the last entry, kept open: a tree's entries
	 * come grouped by directory, so most entries need no path walk */
	char dir[GUEST_UNTAR_PATH_MAX + 1];
	int dirfd;
	mode_t umask;
	size_t entries;
	uint64_t bytes;                /* file data written */
	/* directories whose mode is applied at the end (it may forbid the
	 * writes into them that come first) */
	struct guest_untar_dirmode *dirmodes;
	size_t n_dirmodes, cap_dirmodes;
	int code;                      /* the failure's negative errno, sticky */
	char err[320];                 /* why it failed */
};

/* rootfd is borrowed and must stay open until guest_untar_free. */
void guest_untar_init(struct guest_untar *u, int rootfd);
/* Consumes n bytes of the stream. Returns 0, or a negative errno with u->err
 * set; after a failure every call fails the same way. */
int guest_untar_feed(struct guest_untar *u, const uint8_t *p, size_t n);
/* The stream ended: 0 when it ended at the end-of-archive marker (and the
 * deferred directory modes are applied), else a negative errno with u->err. */
int guest_untar_finish(struct guest_untar *u);
void guest_untar_free(struct guest_untar *u);

#endif
