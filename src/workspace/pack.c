/* Copy-in: a host directory as a tar stream, pulled chunk by chunk.
 *
 * The tree is scanned first (lstat only, never following a symlink), so the
 * caps are checked and a clear error given before the VM sees a byte. Then
 * workspace_pack_read produces the stream on demand: each call advances the
 * libarchive writer by a bounded step (one header, or one 64 KiB piece of a
 * file) until the caller's buffer is full, so the caller decides the pace (one
 * call per thread-pool work item, written to the VM's stdin in between).
 * A file's hash is taken over the bytes actually streamed; a file that changed
 * size since the scan fails the copy with a message rather than sending a torn
 * tree. */
#include "workspace/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"

#define PACK_PIECE 65536
#define PACK_PENDING_MAX (4u << 20)

struct pack_item {
	char *path;
	enum workspace_type type;
	unsigned mode;
	uint64_t size;
	int64_t mtime;
	char *target;
};

struct workspace_pack {
	int rootfd;
	struct pack_item *items;
	size_t n, cap, next;
	size_t skipped;
	uint64_t bytes;
	struct archive *a;
	struct buf pending;
	int write_err;
	/* the file being streamed */
	int fd;
	uint64_t left, want;
	const struct pack_item *cur;
	EVP_MD_CTX *md;
	int done;
	struct workspace_manifest manifest;
	uint8_t piece[PACK_PIECE];
};

struct pack_scan {
	struct workspace_pack *p;
	const struct workspace_pack_options *o;
	uint64_t max_bytes;
	size_t max_files;
	const char *root;
	struct err *e;
};

static int pack_excluded(const struct workspace_pack_options *o, const char *rel, const char *name,
			 int is_dir)
{
	for (size_t i = 0; i < o->n_excludes; i++) {
		char g[WORKSPACE_PATH_MAX + 1];
		const char *src = o->excludes[i];
		while (src[0] == '.' && src[1] == '/')
			src += 2;
		int anchored = src[0] == '/';
		if (anchored)
			src++;
		snprintf(g, sizeof(g), "%s", src);
		size_t len = strlen(g);
		int dir_only = 0;
		while (len > 0 && g[len - 1] == '/') {
			g[--len] = '\0';
			dir_only = 1;
		}
		if (!len || (dir_only && !is_dir))
			continue;
		if (!anchored && !strchr(g, '/')) {
			if (!fnmatch(g, name, 0))
				return 1;
		} else if (!fnmatch(g, rel, FNM_PATHNAME)) {
			return 1;
		}
	}
	return 0;
}

static int pack_add(struct workspace_pack *p, const char *rel, enum workspace_type type,
		    const struct stat *st, const char *target)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct pack_item *v = realloc(p->items, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->items = v;
		p->cap = cap;
	}
	struct pack_item *it = &p->items[p->n];
	memset(it, 0, sizeof(*it));
	it->path = strdup(rel);
	it->target = target ? strdup(target) : NULL;
	if (!it->path || (target && !it->target)) {
		free(it->path);
		free(it->target);
		return -ENOMEM;
	}
	it->type = type;
	it->mode = st->st_mode & 0777;
	it->size = type == WORKSPACE_FILE ? (uint64_t)st->st_size : 0;
	it->mtime = st->st_mtim.tv_sec;
	p->n++;
	return 0;
}

static void pack_human(uint64_t b, char *out, size_t cap)
{
	if (b >= (1ull << 30))
		snprintf(out, cap, "%.1f GiB", (double)b / (1ull << 30));
	else if (b >= (1ull << 20))
		snprintf(out, cap, "%.1f MiB", (double)b / (1ull << 20));
	else
		snprintf(out, cap, "%llu bytes", (unsigned long long)b);
}

static int pack_over_cap(struct pack_scan *s)
{
	char have[32], cap[32];
	pack_human(s->p->bytes, have, sizeof(have));
	pack_human(s->max_bytes, cap, sizeof(cap));
	return err_set(s->e, -EFBIG,
		       "workspace %s is over the copy-in cap: more than %s in more than %zu entries "
		       "so far, the cap is %s and %zu entries (hint: leave big folders out with "
		       "--exclude, e.g. --exclude node_modules --exclude .git)",
		       s->root, have, s->p->n, cap, s->max_files);
}

static int pack_scan_dir(struct pack_scan *s, int dfd, char *rel, size_t rel_len, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		int rc = -errno;
		close(dfd);
		return err_set(s->e, rc, "reading %s/%s: %s", s->root, rel, strerror(-rc));
	}
	int rc = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		size_t nlen = strlen(name);
		if (rel_len + 1 + nlen > WORKSPACE_PATH_MAX || depth + 1 > WORKSPACE_DEPTH_MAX) {
			rc = err_set(s->e, -ENAMETOOLONG,
				     "workspace path %s/%s/%s is too long or too deep for copy-in "
				     "(at most %d bytes, %d levels; hint: --exclude it)",
				     s->root, rel, name, WORKSPACE_PATH_MAX, WORKSPACE_DEPTH_MAX);
			break;
		}
		size_t sub_len = rel_len ? rel_len + 1 + nlen : nlen;
		if (rel_len)
			rel[rel_len] = '/';
		memcpy(rel + (rel_len ? rel_len + 1 : 0), name, nlen + 1);
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			if (rc == -ENOENT) {   /* vanished under us: it is simply not there */
				rc = 0;
				rel[rel_len] = '\0';
				continue;
			}
			err_set(s->e, rc, "reading %s/%s: %s", s->root, rel, strerror(-rc));
			break;
		}
		int is_dir = S_ISDIR(st.st_mode);
		if (pack_excluded(s->o, rel, name, is_dir)) {
			rel[rel_len] = '\0';
			continue;
		}
		if (s->p->n + 1 > s->max_files) {
			rc = pack_over_cap(s);
			break;
		}
		if (S_ISREG(st.st_mode)) {
			s->p->bytes += (uint64_t)st.st_size;
			if (s->p->bytes > s->max_bytes) {
				rc = pack_over_cap(s);
				break;
			}
			rc = pack_add(s->p, rel, WORKSPACE_FILE, &st, NULL);
		} else if (S_ISLNK(st.st_mode)) {
			char target[WORKSPACE_PATH_MAX + 1];
			ssize_t n = readlinkat(dirfd(d), name, target, sizeof(target));
			if (n < 0 || (size_t)n >= sizeof(target)) {
				rc = err_set(s->e, n < 0 ? -errno : -ENAMETOOLONG,
					     "reading symlink %s/%s: %s", s->root, rel,
					     n < 0 ? strerror(errno) : "target too long");
				break;
			}
			target[n] = '\0';
			rc = pack_add(s->p, rel, WORKSPACE_SYMLINK, &st, target);
		} else if (is_dir) {
			rc = pack_add(s->p, rel, WORKSPACE_DIR, &st, NULL);
			if (rc == 0) {
				int sub = openat(dirfd(d), name,
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub < 0) {
					rc = err_set(s->e, -errno, "opening %s/%s: %s", s->root, rel,
						     strerror(errno));
					break;
				}
				rc = pack_scan_dir(s, sub, rel, sub_len, depth + 1);
			}
		} else {
			s->p->skipped++;   /* fifo, socket, device: nothing a VM should get */
		}
		rel[rel_len] = '\0';
		if (rc < 0)
			break;
	}
	if (rc == 0 && errno)
		rc = err_set(s->e, -errno, "reading %s: %s", s->root, strerror(errno));
	closedir(d);
	return rc;
}

static la_ssize_t pack_write_cb(struct archive *a, void *ctx, const void *data, size_t n)
{
	struct workspace_pack *p = ctx;
	(void)a;
	if (buf_append(&p->pending, data, n) < 0) {
		p->write_err = -ENOMEM;
		return -1;
	}
	return (la_ssize_t)n;
}

int workspace_pack_open(const char *root, const struct workspace_pack_options *o,
			struct workspace_pack **out, struct err *e)
{
	static const struct workspace_pack_options none = { 0 };
	if (!o)
		o = &none;
	*out = NULL;
	if (o->n_excludes > WORKSPACE_EXCLUDES_MAX)
		return err_set(e, -E2BIG, "too many --exclude globs (at most %d)", WORKSPACE_EXCLUDES_MAX);
	struct workspace_pack *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	p->fd = -1;
	p->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	buf_init(&p->pending, PACK_PENDING_MAX);
	int rc;
	if (p->rootfd < 0) {
		rc = err_set(e, -errno, "opening workspace %s: %s (hint: --workspace names a directory)",
			     root, strerror(errno));
		goto fail;
	}
	struct pack_scan s = {
		.p = p, .o = o, .root = root, .e = e,
		.max_bytes = o->limits.max_bytes ? o->limits.max_bytes : WORKSPACE_DEFAULT_MAX_BYTES,
		.max_files = o->limits.max_files ? o->limits.max_files : WORKSPACE_DEFAULT_MAX_FILES,
	};
	char rel[WORKSPACE_PATH_MAX + 2] = "";
	int dfd = fcntl(p->rootfd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0) {
		rc = err_set(e, -errno, "opening workspace %s: %s", root, strerror(errno));
		goto fail;
	}
	rc = pack_scan_dir(&s, dfd, rel, 0, 0);
	if (rc < 0)
		goto fail;
	p->a = archive_write_new();
	p->md = EVP_MD_CTX_new();
	if (!p->a || !p->md || archive_write_set_format_pax_restricted(p->a) != ARCHIVE_OK ||
	    archive_write_open2(p->a, p, NULL, pack_write_cb, NULL, NULL) != ARCHIVE_OK) {
		rc = err_set(e, -ENOMEM, "starting the tar stream: %s",
			     p->a ? archive_error_string(p->a) : "out of memory");
		goto fail;
	}
	*out = p;
	return 0;
fail:
	workspace_pack_free(p);
	return rc;
}

static int pack_header(struct workspace_pack *p, const struct pack_item *it, struct err *e)
{
	struct archive_entry *en = archive_entry_new();
	if (!en)
		return err_set(e, -ENOMEM, "out of memory");
	archive_entry_set_pathname(en, it->path);
	archive_entry_set_mtime(en, it->mtime, 0);
	archive_entry_set_uid(en, 0);
	archive_entry_set_gid(en, 0);
	switch (it->type) {
	case WORKSPACE_FILE:
		archive_entry_set_filetype(en, AE_IFREG);
		archive_entry_set_size(en, (la_int64_t)p->want);
		break;
	case WORKSPACE_DIR:
		archive_entry_set_filetype(en, AE_IFDIR);
		break;
	default:
		archive_entry_set_filetype(en, AE_IFLNK);
		archive_entry_set_symlink(en, it->target);
		break;
	}
	archive_entry_set_perm(en, it->mode);
	int rc = archive_write_header(p->a, en);
	archive_entry_free(en);
	if (rc != ARCHIVE_OK)
		return err_set(e, p->write_err ? p->write_err : -EIO, "writing the tar stream at %s: %s",
			       it->path, archive_error_string(p->a));
	return 0;
}

static int pack_changed(struct workspace_pack *p, const char *path, struct err *e)
{
	(void)p;
	return err_set(e, -EAGAIN, "workspace file %s changed during copy-in (hint: run again once "
		       "nothing else writes to the workspace)", path);
}

/* Opens the next item and writes its header. */
static int pack_start_item(struct workspace_pack *p, struct err *e)
{
	const struct pack_item *it = &p->items[p->next++];
	p->cur = it;
	if (it->type == WORKSPACE_FILE) {
		int fd = ws_open_beneath(p->rootfd, it->path, O_RDONLY | O_NONBLOCK, 0);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size != it->size) {
			if (fd >= 0)
				close(fd);
			return pack_changed(p, it->path, e);
		}
		p->fd = fd;
		p->want = p->left = it->size;
		EVP_DigestInit_ex(p->md, EVP_sha256(), NULL);
	}
	int rc = pack_header(p, it, e);
	if (rc < 0 || it->type == WORKSPACE_FILE)
		return rc;
	return ws_manifest_add(&p->manifest, it->path, it->type, it->mode,
			       it->target ? strlen(it->target) : 0, NULL, it->target);
}

/* Streams one piece of the current file; finishes it at its end. */
static int pack_file_piece(struct workspace_pack *p, struct err *e)
{
	const struct pack_item *it = p->cur;
	size_t want = p->left < PACK_PIECE ? (size_t)p->left : PACK_PIECE;
	ssize_t r = want ? read(p->fd, p->piece, want) : 0;
	if (r < 0 && errno == EINTR)
		return 0;
	if (r < 0)
		return err_set(e, -errno, "reading workspace file %s: %s", it->path, strerror(errno));
	if (r == 0 && p->left)
		return pack_changed(p, it->path, e);
	if (r > 0) {
		EVP_DigestUpdate(p->md, p->piece, (size_t)r);
		if (archive_write_data(p->a, p->piece, (size_t)r) != r)
			return err_set(e, p->write_err ? p->write_err : -EIO, "writing the tar stream: %s",
				       archive_error_string(p->a));
		p->left -= (uint64_t)r;
	}
	if (p->left)
		return 0;
	uint8_t extra;
	ssize_t more = read(p->fd, &extra, 1);
	close(p->fd);
	p->fd = -1;
	if (more != 0)
		return pack_changed(p, it->path, e);
	uint8_t sha[WORKSPACE_SHA256_LEN];
	unsigned len = 0;
	EVP_DigestFinal_ex(p->md, sha, &len);
	p->cur = NULL;
	return ws_manifest_add(&p->manifest, it->path, WORKSPACE_FILE, it->mode, it->size, sha, NULL);
}

long workspace_pack_read(struct workspace_pack *p, uint8_t *out, size_t cap, struct err *e)
{
	/* Step until the caller's chunk is full; each step adds at most one
	 * piece plus a header, so pending stays well under its cap. */
	size_t fill = cap < (1u << 20) ? cap : (1u << 20);
	while (!p->done && p->pending.len < fill) {
		int rc;
		if (p->fd >= 0) {
			rc = pack_file_piece(p, e);
		} else if (p->next < p->n) {
			rc = pack_start_item(p, e);
		} else {
			if (archive_write_close(p->a) != ARCHIVE_OK)
				return err_set(e, -EIO, "ending the tar stream: %s",
					       archive_error_string(p->a));
			p->done = 1;
			rc = ws_manifest_sort(&p->manifest);
		}
		if (rc < 0)
			return rc;
	}
	size_t n = p->pending.len < cap ? p->pending.len : cap;
	if (n) {
		memcpy(out, p->pending.data, n);
		buf_consume(&p->pending, n);
	}
	return (long)n;
}

const struct workspace_manifest *workspace_pack_manifest(const struct workspace_pack *p)
{
	return &p->manifest;
}

void workspace_pack_take_manifest(struct workspace_pack *p, struct workspace_manifest *out)
{
	*out = p->manifest;
	memset(&p->manifest, 0, sizeof(p->manifest));
}

size_t workspace_pack_skipped(const struct workspace_pack *p)
{
	return p->skipped;
}

void workspace_pack_free(struct workspace_pack *p)
{
	if (!p)
		return;
	if (p->a)
		archive_write_free(p->a);
	if (p->fd >= 0)
		close(p->fd);
	if (p->rootfd >= 0)
		close(p->rootfd);
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].path);
		free(p->items[i].target);
	}
	free(p->items);
	EVP_MD_CTX_free(p->md);
	buf_free(&p->pending);
	workspace_manifest_free(&p->manifest);
	free(p);
}
