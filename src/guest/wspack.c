/* Tar writer for copy-out: see wspack.h.
 *
 * One directory level per open DIR on a stack; an entry is its header(s),
 * then (files) its data read in as large pieces as the buffer allows, then
 * padding to a block. The order is readdir's: the host sorts. */
#include "guest/wspack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int guest_wspack_open(struct guest_wspack *p, const char *root)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->end_left = 2;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	p->stack[0] = fdopendir(fd);
	if (!p->stack[0]) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	p->depth = 1;
	return 0;
}

void guest_wspack_close(struct guest_wspack *p)
{
	while (p->depth > 0)
		closedir(p->stack[--p->depth]);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

static void wp_octal(uint8_t *f, size_t n, uint64_t v)
{
	/* n-1 digits and a NUL; callers keep v in range */
	f[n - 1] = '\0';
	for (size_t i = n - 1; i-- > 0; v >>= 3)
		f[i] = (uint8_t)('0' + (v & 7));
}

static void wp_checksum(uint8_t *h)
{
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	wp_octal(h + 148, 7, sum);
	h[155] = ' ';
}

static void wp_ustar(uint8_t *h, const char *name, char type, unsigned mode, uint64_t size,
		     int64_t mtime, const char *link)
{
	memset(h, 0, 512);
	strncpy((char *)h, name, 100);
	wp_octal(h + 100, 8, mode & 07777);
	wp_octal(h + 108, 8, 0);
	wp_octal(h + 116, 8, 0);
	wp_octal(h + 124, 12, size);
	wp_octal(h + 136, 12, mtime > 0 && mtime < 077777777777 ? (uint64_t)mtime : 0);
	h[156] = (uint8_t)type;
	if (link)
		strncpy((char *)h + 157, link, 100);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	wp_checksum(h);
}

/* "LEN key=value\n" where LEN counts the whole record, itself included. */
static size_t wp_pax_record(char *out, size_t cap, const char *key, const char *value)
{
	size_t body = 1 + strlen(key) + 1 + strlen(value) + 1;
	size_t len = body + 1;
	while ((size_t)snprintf(NULL, 0, "%zu", len) + body != len)
		len++;
	int n = snprintf(out, cap, "%zu %s=%s\n", len, key, value);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Writes the headers of the entry at p->path into out. Returns bytes. */
static size_t wp_headers(uint8_t *out, const char *path, char type, const struct stat *st,
			 uint64_t size, const char *link)
{
	size_t off = 0;
	if (strlen(path) > 100 || (link && strlen(link) > 100)) {
		char rec[2 * GUEST_WSPACK_PATH_MAX + 64];
		size_t n = 0;
		if (strlen(path) > 100)
			n += wp_pax_record(rec + n, sizeof(rec) - n, "path", path);
		if (link && strlen(link) > 100)
			n += wp_pax_record(rec + n, sizeof(rec) - n, "linkpath", link);
		wp_ustar(out, "././@PaxHeader", 'x', 0644, n, st->st_mtime, NULL);
		memcpy(out + 512, rec, n);
		size_t padded = (n + 511) / 512 * 512;
		memset(out + 512 + n, 0, padded - n);
		off = 512 + padded;
	}
	wp_ustar(out + off, path, type, st->st_mode, size, st->st_mtime, link);
	return off + 512;
}

/* Advances to the next entry and writes its headers; 0 and p->done once the
 * tree is exhausted. Returns the bytes written or -errno. */
static long wp_next(struct guest_wspack *p, uint8_t *out, char *why, size_t whyn)
{
	while (p->depth > 0) {
		DIR *d = p->stack[p->depth - 1];
		size_t base = p->stack_len[p->depth - 1];
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				snprintf(why, whyn, "reading /workspace/%.200s: %s", p->path, strerror(errno));
				return -errno;
			}
			closedir(d);
			p->depth--;
			/* back to the parent's path */
			p->path[p->depth > 0 ? p->stack_len[p->depth - 1] : 0] = '\0';
			continue;
		}
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		size_t nlen = strlen(name);
		size_t plen = base ? base + 1 + nlen : nlen;
		if (plen > GUEST_WSPACK_PATH_MAX || p->depth > GUEST_WSPACK_DEPTH_MAX) {
			snprintf(why, whyn, "/workspace/%.200s/%.200s: too long or too deep to copy out "
				 "(at most %d bytes, %d levels)", p->path, name, GUEST_WSPACK_PATH_MAX,
				 GUEST_WSPACK_DEPTH_MAX);
			return -ENAMETOOLONG;
		}
		char *rel = p->path;
		if (base)
			rel[base] = '/';
		memcpy(rel + (base ? base + 1 : 0), name, nlen + 1);
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT) {   /* removed meanwhile: not there */
				rel[base] = '\0';
				continue;
			}
			snprintf(why, whyn, "/workspace/%.200s: %s", rel, strerror(errno));
			return -errno;
		}
		if (S_ISREG(st.st_mode)) {
			int fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				snprintf(why, whyn, "/workspace/%.200s: %s", rel, strerror(errno));
				return -errno;
			}
			long n = (long)wp_headers(out, rel, '0', &st, (uint64_t)st.st_size, NULL);
			p->fd = fd;
			p->left = (uint64_t)st.st_size;
			p->pad = (512 - p->left % 512) % 512;
			rel[base] = '\0';
			return n;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[GUEST_WSPACK_PATH_MAX + 1];
			ssize_t n = readlinkat(dirfd(d), name, target, sizeof(target));
			if (n < 0 || (size_t)n >= sizeof(target)) {
				snprintf(why, whyn, "/workspace/%.200s: %s", rel,
					 n < 0 ? strerror(errno) : "symlink target too long");
				return n < 0 ? -errno : -ENAMETOOLONG;
			}
			target[n] = '\0';
			long w = (long)wp_headers(out, rel, '2', &st, 0, target);
			rel[base] = '\0';
			return w;
		}
		if (S_ISDIR(st.st_mode)) {
			if (p->depth > GUEST_WSPACK_DEPTH_MAX) {
				snprintf(why, whyn, "/workspace/%.200s: deeper than %d levels", rel,
					 GUEST_WSPACK_DEPTH_MAX);
				return -ENAMETOOLONG;
			}
			int fd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			DIR *sub = fd < 0 ? NULL : fdopendir(fd);
			if (!sub) {
				int rc = -errno;
				if (fd >= 0)
					close(fd);
				snprintf(why, whyn, "/workspace/%.200s: %s", rel, strerror(-rc));
				return rc;
			}
			long w = (long)wp_headers(out, rel, '5', &st, 0, NULL);
			p->stack[p->depth] = sub;
			p->stack_len[p->depth] = plen;
			p->depth++;
			return w;   /* the path stays extended: its children follow */
		}
		p->skipped++;   /* fifo, socket, device */
		rel[base] = '\0';
	}
	p->done = 1;
	return 0;
}

long guest_wspack_read(struct guest_wspack *p, uint8_t *out, size_t cap, char *why, size_t whyn)
{
	size_t len = 0;
	while (len < cap) {
		if (p->fd >= 0) {
			if (p->left) {
				size_t want = cap - len < p->left ? cap - len : (size_t)p->left;
				ssize_t r = read(p->fd, out + len, want);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0) {
					snprintf(why, whyn, "reading a workspace file: %s", strerror(errno));
					return -errno;
				}
				if (r == 0) {   /* shrank: keep the header's promise */
					memset(out + len, 0, want);
					r = (ssize_t)want;
				}
				len += (size_t)r;
				p->left -= (uint64_t)r;
				continue;
			}
			size_t pad = cap - len < p->pad ? cap - len : (size_t)p->pad;
			memset(out + len, 0, pad);
			len += pad;
			p->pad -= pad;
			if (p->pad)
				break;
			close(p->fd);
			p->fd = -1;
			continue;
		}
		if (cap - len < GUEST_WSPACK_MIN_CAP)
			break;   /* the next headers might not fit */
		if (!p->done) {
			long n = wp_next(p, out + len, why, whyn);
			if (n < 0)
				return n;
			len += (size_t)n;
			continue;
		}
		if (p->end_left == 0)
			break;
		memset(out + len, 0, 512);
		len += 512;
		p->end_left--;
	}
	return (long)len;
}
