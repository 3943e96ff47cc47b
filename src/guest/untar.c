/* Streaming tar reader for copy-in: see untar.h.
 *
 * A state machine over 512-byte blocks: HEADER gathers a header block (a
 * zero block starts the end-of-archive marker), PAX gathers an extended
 * header's records, DATA writes a file's bytes as they arrive (one write per
 * contiguous piece of a frame), SKIP drops padding and the data of entries
 * without any, END ignores the rest (libarchive pads the archive to a whole
 * record with zero blocks). */
#include "guest/untar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { UT_HEADER, UT_PAX, UT_DATA, UT_SKIP, UT_END, UT_FAILED };

static int ut_fail(struct guest_untar *u, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ut_fail(struct guest_untar *u, int code, const char *fmt, ...)
{
	if (u->state != UT_FAILED) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(u->err, sizeof(u->err), fmt, ap);
		va_end(ap);
		u->state = UT_FAILED;
		u->code = code < 0 ? code : -EPROTO;   /* sticky: later calls fail the same */
	}
	return u->code;
}

void guest_untar_init(struct guest_untar *u, int rootfd)
{
	memset(u, 0, sizeof(*u));
	u->rootfd = rootfd;
	u->fd = -1;
	u->dirfd = -1;
	u->umask = umask(022);
	umask(u->umask);
}

void guest_untar_free(struct guest_untar *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->dirfd >= 0)
		close(u->dirfd);
	for (size_t i = 0; i < u->n_dirmodes; i++)
		free(u->dirmodes[i].path);
	free(u->dirmodes);
	u->fd = u->dirfd = -1;
	u->dirmodes = NULL;
	u->n_dirmodes = u->cap_dirmodes = 0;
}

/* An octal field: digits, then NULs or spaces. -1 when it is not one. */
static int64_t ut_octal(const uint8_t *f, size_t n)
{
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v > (UINT64_C(1) << 59))
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return -1;
	return digits ? (int64_t)v : 0;
}

/* Copies a NUL-padded field (no terminator needed) and returns its length. */
static size_t ut_field(char *out, const uint8_t *f, size_t n)
{
	size_t len = strnlen((const char *)f, n);
	memcpy(out, f, len);
	out[len] = '\0';
	return len;
}

/* "./a//b/" forms are normalised the way tar writers spell them: leading
 * "./" dropped, trailing '/' dropped. Anything else odd is refused. Returns
 * 0, or -EPERM with why. An empty result is the root itself. */
static int ut_path_check(char *p, const char **why)
{
	size_t len = strlen(p);
	size_t start = 0;
	while (len - start >= 2 && p[start] == '.' && p[start + 1] == '/')
		for (start += 2; p[start] == '/'; start++)
			;
	if (start)
		memmove(p, p + start, len - start + 1), len -= start;
	while (len > 0 && p[len - 1] == '/')
		p[--len] = '\0';
	if (!strcmp(p, "."))
		p[0] = '\0', len = 0;
	if (!len)
		return 0;
	if (p[0] == '/') {
		*why = "an absolute path";
		return -EPERM;
	}
	unsigned depth = 0;
	for (const char *c = p; *c;) {
		const char *s = strchr(c, '/');
		size_t n = s ? (size_t)(s - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
			*why = "an empty, \".\" or \"..\" path component";
			return -EPERM;
		}
		if (++depth > GUEST_UNTAR_DEPTH_MAX) {
			*why = "a path deeper than the cap";
			return -EPERM;
		}
		c += n + (s ? 1 : 0);
	}
	return 0;
}

/* Opens rel's parent directory beneath the root, creating missing ones
 * (0755), one component at a time with O_NOFOLLOW; the last one stays cached
 * in u->dirfd. *name points at the last component. Returns the fd (borrowed:
 * u owns it) or -errno. */
static int ut_parent(struct guest_untar *u, const char *rel, const char **name)
{
	const char *slash = strrchr(rel, '/');
	size_t dlen = slash ? (size_t)(slash - rel) : 0;
	*name = slash ? slash + 1 : rel;
	if (u->dirfd >= 0 && strlen(u->dir) == dlen && !memcmp(u->dir, rel, dlen))
		return u->dirfd;
	if (u->dirfd >= 0)
		close(u->dirfd);
	u->dirfd = -1;
	int fd = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 0);
	char comp[GUEST_UNTAR_PATH_MAX + 1];
	for (size_t off = 0; fd >= 0 && off < dlen;) {
		const char *s = memchr(rel + off, '/', dlen - off);
		size_t n = s ? (size_t)(s - (rel + off)) : dlen - off;
		memcpy(comp, rel + off, n);
		comp[n] = '\0';
		off += n + 1;
		int sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 && errno == ENOENT) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				sub = -1;
			} else {
				sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			}
		}
		int saved = errno;
		close(fd);
		fd = sub;
		errno = saved;
	}
	if (fd < 0)
		return -errno;
	memcpy(u->dir, rel, dlen);
	u->dir[dlen] = '\0';
	u->dirfd = fd;
	return fd;
}

static int ut_defer_mode(struct guest_untar *u, const char *path, unsigned mode)
{
	if (u->n_dirmodes == u->cap_dirmodes) {
		size_t cap = u->cap_dirmodes ? u->cap_dirmodes * 2 : 16;
		struct guest_untar_dirmode *v = realloc(u->dirmodes, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		u->dirmodes = v;
		u->cap_dirmodes = cap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	u->dirmodes[u->n_dirmodes++] = (struct guest_untar_dirmode){ p, mode };
	return 0;
}

/* One pax record set "LEN key=value\n"...: path, linkpath and size are used,
 * the rest (mtime fractions, charset hints) ignored. */
static int ut_pax_parse(struct guest_untar *u)
{
	size_t off = 0;
	while (off < u->pax_have) {
		size_t len = 0, i = off;
		while (i < u->pax_have && u->pax[i] >= '0' && u->pax[i] <= '9' && len < GUEST_UNTAR_PAX_MAX)
			len = len * 10 + (size_t)(u->pax[i++] - '0');
		if (i == off || i >= u->pax_have || u->pax[i] != ' ' || len > u->pax_have - off ||
		    len < i - off + 3 || u->pax[off + len - 1] != '\n')
			return ut_fail(u, -EPROTO, "a malformed pax header record");
		const char *kv = u->pax + i + 1;
		size_t kvlen = off + len - 1 - (i + 1);
		const char *eq = memchr(kv, '=', kvlen);
		if (!eq)
			return ut_fail(u, -EPROTO, "a pax header record without '='");
		size_t klen = (size_t)(eq - kv), vlen = kvlen - klen - 1;
		const char *v = eq + 1;
		char *dst = NULL;
		int *have = NULL;
		if (klen == 4 && !memcmp(kv, "path", 4))
			dst = u->pax_path, have = &u->have_pax_path;
		else if (klen == 8 && !memcmp(kv, "linkpath", 8))
			dst = u->pax_link, have = &u->have_pax_link;
		if (dst) {
			if (vlen > GUEST_UNTAR_PATH_MAX || memchr(v, '\0', vlen))
				return ut_fail(u, -ENAMETOOLONG, "a pax path longer than %d bytes or with a NUL",
					       GUEST_UNTAR_PATH_MAX);
			memcpy(dst, v, vlen);
			dst[vlen] = '\0';
			*have = 1;
		} else if (klen == 4 && !memcmp(kv, "size", 4)) {
			uint64_t s = 0;
			if (!vlen || vlen > 18)
				return ut_fail(u, -EPROTO, "a bad pax size");
			for (size_t k = 0; k < vlen; k++) {
				if (v[k] < '0' || v[k] > '9')
					return ut_fail(u, -EPROTO, "a bad pax size");
				s = s * 10 + (uint64_t)(v[k] - '0');
			}
			u->pax_size = s;
			u->have_pax_size = 1;
		}
		off += len;
	}
	return 0;
}

static uint64_t ut_padding(uint64_t size)
{
	return (512 - size % 512) % 512;
}

static void ut_pax_reset(struct guest_untar *u)
{
	u->have_pax_path = u->have_pax_link = u->have_pax_size = 0;
	u->pax_size = 0;
}

/* Creates the entry a header block describes. */
static int ut_entry(struct guest_untar *u, const uint8_t *h, uint64_t size, int64_t mode,
		    int64_t mtime)
{
	char type = (char)h[156];
	char path[GUEST_UNTAR_PATH_MAX + 1], link[GUEST_UNTAR_PATH_MAX + 1];
	if (u->have_pax_path) {
		memcpy(path, u->pax_path, sizeof(path));
	} else {
		char prefix[156], name[101];
		size_t pl = memcmp(h + 257, "ustar", 5) ? 0 : ut_field(prefix, h + 345, 155);
		ut_field(name, h, 100);
		snprintf(path, sizeof(path), "%s%s%s", pl ? prefix : "", pl ? "/" : "", name);
	}
	if (u->have_pax_link)
		memcpy(link, u->pax_link, sizeof(link));
	else
		ut_field(link, h + 157, 100);
	ut_pax_reset(u);
	const char *why = NULL;
	if (ut_path_check(path, &why) < 0)
		return ut_fail(u, -EPERM, "entry %zu: %s", u->entries, why);
	if (++u->entries > GUEST_UNTAR_ENTRIES_MAX)
		return ut_fail(u, -EFBIG, "more than %u entries", GUEST_UNTAR_ENTRIES_MAX);
	unsigned perm = (unsigned)mode & 0777;
	int is_file = type == '0' || type == '\0' || type == '7';
	if (!path[0]) {
		if (type != '5')
			return ut_fail(u, -EPERM, "the archive's root is not a directory");
		u->left = 0;
		u->pad = size + ut_padding(size);
		u->state = u->pad ? UT_SKIP : UT_HEADER;
		return 0;
	}
	if (!is_file && type != '5' && type != '2')
		return ut_fail(u, -EPERM, "%.200s: entry type '%c' (only files, directories and "
			       "symlinks are copied in)", path, type >= 32 && type < 127 ? type : '?');
	const char *name;
	int pfd = ut_parent(u, path, &name);
	if (pfd < 0)
		return ut_fail(u, pfd, "%.200s: its directory: %s", path, strerror(-pfd));
	if (is_file) {
		int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, perm);
		if (fd < 0)
			return ut_fail(u, -errno, "%.200s: %s", path, strerror(errno));
		/* Creation applied the umask; only a mode it changed needs a call. */
		if ((perm & ~u->umask) != perm && fchmod(fd, perm) < 0) {
			int rc = -errno;
			close(fd);
			return ut_fail(u, rc, "%.200s: chmod: %s", path, strerror(-rc));
		}
		u->fd = fd;
		u->left = size;
		u->pad = ut_padding(size);
		u->cur_mtime = mtime;
		memcpy(u->cur, path, strlen(path) + 1);
		u->state = UT_DATA;   /* an empty file is closed by the DATA state at once */
		return 0;
	}
	u->left = 0;
	u->pad = size + ut_padding(size);   /* dirs and symlinks carry no data */
	u->state = u->pad ? UT_SKIP : UT_HEADER;
	if (type == '5') {
		struct stat st;
		if (mkdirat(pfd, name, 0700 | perm) < 0 &&
		    !(errno == EEXIST && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		      S_ISDIR(st.st_mode)))
			return ut_fail(u, -errno, "%.200s: mkdir: %s", path, strerror(errno));
		if (((0700 | perm) & ~u->umask) != perm && ut_defer_mode(u, path, perm) < 0)
			return ut_fail(u, -ENOMEM, "out of memory");
		return 0;
	}
	if (!link[0])
		return ut_fail(u, -EPERM, "%.200s: a symlink without a target", path);
	if (symlinkat(link, pfd, name) < 0)
		return ut_fail(u, -errno, "%.200s: symlink: %s", path, strerror(errno));
	return 0;
}

static int ut_header(struct guest_untar *u)
{
	const uint8_t *h = u->blk;
	int zero = 1;
	for (size_t i = 0; i < 512 && zero; i++)
		zero = h[i] == 0;
	if (zero) {
		u->state = UT_END;
		return 0;
	}
	unsigned sum = 0;
	for (size_t i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	int64_t want = ut_octal(h + 148, 8), size = ut_octal(h + 124, 12);
	int64_t mode = ut_octal(h + 100, 8), mtime = ut_octal(h + 136, 12);
	if (want < 0 || (unsigned)want != sum)
		return ut_fail(u, -EPROTO, "entry %zu: a header with a bad checksum", u->entries);
	if (size < 0 || mode < 0 || mtime < 0)
		return ut_fail(u, -EPROTO, "entry %zu: a header with a bad number field", u->entries);
	uint64_t sz = u->have_pax_size ? u->pax_size : (uint64_t)size;
	char type = (char)h[156];
	if (type == 'x') {
		if (sz > GUEST_UNTAR_PAX_MAX)
			return ut_fail(u, -EFBIG, "a pax header over %d bytes", GUEST_UNTAR_PAX_MAX);
		ut_pax_reset(u);
		u->pax_have = 0;
		u->left = sz;
		u->pad = ut_padding(sz);
		u->state = UT_PAX;
		if (sz == 0)
			u->state = u->pad ? UT_SKIP : UT_HEADER;
		return 0;
	}
	if (type == 'g') {   /* global header: nothing in it concerns us */
		u->left = 0;
		u->pad = sz + ut_padding(sz);
		u->state = u->pad ? UT_SKIP : UT_HEADER;
		return 0;
	}
	return ut_entry(u, h, sz, mode, mtime);
}

static int ut_file_done(struct guest_untar *u)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = u->cur_mtime } };
	int rc = futimens(u->fd, ts) < 0 ? -errno : 0;
	if (close(u->fd) < 0 && rc == 0)
		rc = -errno;
	u->fd = -1;
	if (rc < 0)
		return ut_fail(u, rc, "%.200s: %s", u->cur, strerror(-rc));
	u->state = u->pad ? UT_SKIP : UT_HEADER;
	return 0;
}

int guest_untar_feed(struct guest_untar *u, const uint8_t *p, size_t n)
{
	while (u->state != UT_FAILED) {
		if (u->state == UT_DATA && u->left == 0) {
			if (ut_file_done(u) < 0)
				break;
			continue;
		}
		if (n == 0)
			return 0;
		size_t take;
		switch (u->state) {
		case UT_HEADER:
			take = 512 - u->blk_have < n ? 512 - u->blk_have : n;
			memcpy(u->blk + u->blk_have, p, take);
			u->blk_have += take;
			if (u->blk_have == 512) {
				u->blk_have = 0;
				if (ut_header(u) < 0)
					return u->code;
			}
			break;
		case UT_PAX:
			take = u->left < n ? (size_t)u->left : n;
			memcpy(u->pax + u->pax_have, p, take);
			u->pax_have += take;
			u->left -= take;
			if (u->left == 0) {
				if (ut_pax_parse(u) < 0)
					break;
				u->state = u->pad ? UT_SKIP : UT_HEADER;
			}
			break;
		case UT_DATA: {
			take = u->left < n ? (size_t)u->left : n;
			ssize_t w = write(u->fd, p, take);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int rc = w < 0 ? -errno : -EIO;
				return ut_fail(u, rc, "%.200s: write: %s%s", u->cur, strerror(-rc),
					       rc == -ENOSPC ? " (hint: more guest memory, --memory)" : "");
			}
			take = (size_t)w;
			u->left -= take;
			u->bytes += take;
			break;
		}
		case UT_SKIP:
			take = u->pad < n ? (size_t)u->pad : n;
			u->pad -= take;
			if (u->pad == 0)
				u->state = UT_HEADER;
			break;
		default:   /* UT_END: the record's zero padding */
			return 0;
		}
		p += take;
		n -= take;
	}
	return u->code;
}

int guest_untar_finish(struct guest_untar *u)
{
	if (u->state == UT_FAILED)
		return u->code;
	if (u->state != UT_END)
		return ut_fail(u, -EPROTO, "the stream ended before the end-of-archive marker");
	/* Deepest first: a parent's mode must not block a child's chmod. */
	for (size_t i = u->n_dirmodes; i-- > 0;) {
		const char *name;
		int pfd = ut_parent(u, u->dirmodes[i].path, &name);
		int dfd = pfd < 0 ? pfd : openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int rc = pfd < 0 ? pfd : dfd < 0 ? -errno : 0;
		if (rc == 0 && fchmod(dfd, u->dirmodes[i].mode) < 0)
			rc = -errno;
		if (dfd >= 0)
			close(dfd);
		if (rc < 0)
			return ut_fail(u, rc, "%.200s: chmod: %s", u->dirmodes[i].path, strerror(-rc));
	}
	return 0;
}
