/* Copy-out: the guest's tar stream, unpacked safely into a private staging dir.
 *
 * The stream is hostile. libarchive only parses it (tar formats, no filters,
 * nothing extracted by libarchive itself); every write is ours, relative to an
 * fd of the staging root: parents are created and opened one component at a
 * time with O_NOFOLLOW, files with O_CREAT|O_EXCL|O_NOFOLLOW, so an entry can
 * neither climb out (paths with ".." or a leading '/' are refused before any
 * write) nor pass through a symlink an earlier entry planted, nor replace an
 * earlier entry. Caps on entries and bytes are checked against each header
 * before its data is read; staging copies are 0600/0700 whatever the archive
 * says, and the archive's modes are kept in the manifest instead, so a guest
 * cannot make the host's staging tree setuid, unreadable or world-writable.
 *
 * Given the copy-in manifest, a small file whose header matches its copy-in
 * entry (size, mode) is read into memory while hashed; when the hash matches
 * too it is recorded as unchanged and never written, else written from that
 * buffer. Skipping the write loses two checks staging's O_EXCL gave for free,
 * so they are made on the manifest instead: a second entry for the path
 * (ws_manifest_sort's -EEXIST) and an entry beneath a file
 * (unpack_add_parents). */
#include "workspace/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io.h"

#define UNPACK_CHUNK 65536

struct unpack {
	workspace_read_fn read;
	void *ctx;
	uint8_t in[UNPACK_CHUNK];
	uint8_t data[UNPACK_CHUNK];
	int stagefd;
	uint64_t bytes, max_bytes;
	size_t entries, max_files;
	struct workspace_manifest *m;
	const struct workspace_manifest *before;   /* NULL: write every file */
	uint8_t *keep;                             /* WORKSPACE_UNCHANGED_MAX, lazily */
	struct err *e;
};

static la_ssize_t unpack_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct unpack *u = ctx;
	long n = u->read(u->ctx, u->in, sizeof(u->in));
	if (n < 0) {
		archive_set_error(a, (int)-n, "reading the copy-out stream: %s", strerror((int)-n));
		return -1;
	}
	*buf = u->in;
	return n;
}

static int unpack_refuse(struct unpack *u, const char *path, int code, const char *why)
{
	return err_set(u->e, code, "copy-out refused at entry %zu%s%.200s%s: %s", u->entries,
		       path ? " (" : "", path ? path : "", path ? ")" : "", why);
}

/* "./a/b/" -> "a/b"; "" for the root itself. Writes into out (cap PATH_MAX+1). */
static int unpack_normalize(const char *in, char *out)
{
	while (in[0] == '.' && in[1] == '/')
		for (in += 2; *in == '/';)
			in++;
	size_t len = strnlen(in, WORKSPACE_PATH_MAX + 1);
	if (len > WORKSPACE_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(out, in, len + 1);
	while (len > 0 && out[len - 1] == '/')
		out[--len] = '\0';
	if (!strcmp(out, "."))
		out[0] = '\0';
	return 0;
}

/* Copies the entry's data (or, for a hardlink, the earlier file) into fd. */
static int unpack_copy_data(struct unpack *u, struct archive *a, int fd, int srcfd, const char *path,
			    uint8_t sha[WORKSPACE_SHA256_LEN], uint64_t *size)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return err_set(u->e, -ENOMEM, "out of memory");
	}
	int rc = 0;
	uint64_t total = 0;
	for (;;) {
		la_ssize_t n = srcfd >= 0 ? io_read(srcfd, u->data, sizeof(u->data))
					  : archive_read_data(a, u->data, sizeof(u->data));
		if (n < 0) {
			rc = srcfd >= 0 ? unpack_refuse(u, path, (int)n, "cannot read the linked file")
					: unpack_refuse(u, path, -EPROTO, archive_error_string(a));
			break;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		u->bytes += (uint64_t)n;
		if (u->bytes > u->max_bytes) {
			rc = unpack_refuse(u, path, -EFBIG, "the workspace grew over the copy-out cap");
			break;
		}
		EVP_DigestUpdate(md, u->data, (size_t)n);
		rc = io_write_all(fd, u->data, (size_t)n);
		if (rc < 0) {
			rc = unpack_refuse(u, path, rc, "writing to staging failed");
			break;
		}
	}
	unsigned len = 0;
	EVP_DigestFinal_ex(md, sha, &len);
	EVP_MD_CTX_free(md);
	*size = total;
	return rc;
}

/* Reads the entry's data (at most WORKSPACE_UNCHANGED_MAX bytes, which its
 * header promised) into u->keep, hashing and counting it against the cap as
 * unpack_copy_data does. */
static int unpack_keep_data(struct unpack *u, struct archive *a, const char *path,
			    uint8_t sha[WORKSPACE_SHA256_LEN], uint64_t *size)
{
	if (!u->keep && !(u->keep = malloc(WORKSPACE_UNCHANGED_MAX)))
		return err_set(u->e, -ENOMEM, "out of memory");
	uint64_t total = 0;
	for (;;) {
		size_t room = WORKSPACE_UNCHANGED_MAX - (size_t)total;
		la_ssize_t n = archive_read_data(a, room ? u->keep + total : u->data,
						 room ? (room < UNPACK_CHUNK ? room : UNPACK_CHUNK)
						      : sizeof(u->data));
		if (n < 0)
			return unpack_refuse(u, path, -EPROTO, archive_error_string(a));
		if (n == 0)
			break;
		if (!room)   /* libarchive never gives more than the header's size */
			return unpack_refuse(u, path, -EPROTO, "more data than its header said");
		total += (uint64_t)n;
		u->bytes += (uint64_t)n;
		if (u->bytes > u->max_bytes)
			return unpack_refuse(u, path, -EFBIG, "the workspace grew over the copy-out cap");
	}
	unsigned len = 0;
	if (!EVP_Digest(u->keep, (size_t)total, sha, &len, EVP_sha256(), NULL))
		return err_set(u->e, -ENOMEM, "out of memory");
	*size = total;
	return 0;
}

/* 1 when b is a file entry with this size, mode and (sha non-NULL) hash. */
static int unpack_same(const struct workspace_entry *b, uint64_t size, unsigned mode,
		       const uint8_t *sha)
{
	return b && b->type == WORKSPACE_FILE && b->size == size && b->mode == (mode & 0777) &&
	       (!sha || !memcmp(b->sha256, sha, WORKSPACE_SHA256_LEN));
}

static int unpack_add_unchanged(struct unpack *u, const char *path, const struct workspace_entry *b)
{
	int rc = ws_manifest_add(u->m, path, WORKSPACE_FILE, b->mode, b->size, b->sha256, NULL);
	if (rc == 0)
		u->m->v[u->m->n - 1].unchanged = 1;
	return rc < 0 ? err_set(u->e, rc, "out of memory") : 0;
}

static const struct workspace_entry *unpack_find_file(const struct workspace_manifest *m,
						      const char *path)
{
	for (size_t i = m->n; i-- > 0;)
		if (!strcmp(m->v[i].path, path))
			return m->v[i].type == WORKSPACE_FILE ? &m->v[i] : NULL;
	return NULL;
}

static int unpack_file(struct unpack *u, struct archive *a, struct archive_entry *en,
		       const char *path, int pfd, const char *name)
{
	const char *link = archive_entry_hardlink(en);
	int srcfd = -1, rc;
	uint8_t sha[WORKSPACE_SHA256_LEN];
	uint64_t size = 0;
	const struct workspace_entry *t = NULL;
	if (link) {
		char lp[WORKSPACE_PATH_MAX + 1];
		if (unpack_normalize(link, lp) < 0 || workspace_path_check(lp, strlen(lp)) < 0)
			return unpack_refuse(u, path, -EPERM, "a hardlink to a path outside the workspace");
		t = unpack_find_file(u->m, lp);
		if (!t)
			return unpack_refuse(u, path, -EPERM,
					     "a hardlink to something that is not an earlier file of the stream");
		if (u->bytes + t->size > u->max_bytes)
			return unpack_refuse(u, path, -EFBIG, "the workspace grew over the copy-out cap");
		srcfd = t->unchanged ? -1 : ws_open_beneath(u->stagefd, lp, O_RDONLY, 0);
		if (srcfd < 0 && !t->unchanged)
			return unpack_refuse(u, path, srcfd, "the linked file cannot be opened in staging");
	} else {
		la_int64_t hs = archive_entry_size(en);
		if (hs < 0 || (uint64_t)hs > u->max_bytes || u->bytes + (uint64_t)hs > u->max_bytes) {
			return unpack_refuse(u, path, -EFBIG, "the workspace grew over the copy-out cap");
		}
	}
	unsigned perm = archive_entry_perm(en) & 0777;
	const struct workspace_entry *b = u->before ? workspace_manifest_find(u->before, path) : NULL;
	int kept = 0;
	if (link && t->unchanged) {
		/* Its target has no staging copy; the link is only taken when it
		 * too is unchanged (same bytes, mode), else refused. */
		u->bytes += t->size;
		if (unpack_same(b, t->size, perm, t->sha256))
			return unpack_add_unchanged(u, path, b);
		return unpack_refuse(u, path, -EPERM,
				     "a hardlink that changes a path to an unchanged file's bytes; "
				     "send the file itself instead of a hardlink");
	}
	if (!link && unpack_same(b, (uint64_t)archive_entry_size(en), perm, NULL) &&
	    b->size <= WORKSPACE_UNCHANGED_MAX) {
		rc = unpack_keep_data(u, a, path, sha, &size);
		if (rc < 0)
			return rc;
		if (unpack_same(b, size, perm, sha))
			return unpack_add_unchanged(u, path, b);
		kept = 1;
	}
	int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = unpack_refuse(u, path, errno == EEXIST ? -EEXIST : -errno,
				   errno == EEXIST ? "a second entry for the same path" : strerror(errno));
		goto out;
	}
	if (kept) {
		rc = io_write_all(fd, u->keep, (size_t)size);
		if (rc < 0)
			rc = unpack_refuse(u, path, rc, "writing to staging failed");
	} else {
		rc = unpack_copy_data(u, a, fd, srcfd, path, sha, &size);
	}
	close(fd);
	if (rc == 0)
		rc = ws_manifest_add(u->m, path, WORKSPACE_FILE, archive_entry_perm(en), size, sha, NULL);
out:
	if (srcfd >= 0)
		close(srcfd);
	return rc;
}

static int unpack_entry(struct unpack *u, struct archive *a, struct archive_entry *en)
{
	char path[WORKSPACE_PATH_MAX + 1];
	const char *raw = archive_entry_pathname(en);
	if (!raw)
		return unpack_refuse(u, NULL, -EPROTO, "an entry without a path");
	if (unpack_normalize(raw, path) < 0)
		return unpack_refuse(u, NULL, -ENAMETOOLONG, "a path longer than the cap");
	mode_t type = archive_entry_filetype(en);
	int is_link = archive_entry_hardlink(en) != NULL;
	if (!path[0]) {
		if (type == AE_IFDIR && !is_link)
			return 0;   /* "./": the root, which staging already is */
		return unpack_refuse(u, raw, -EPERM, "the workspace root must be a directory");
	}
	if (workspace_path_check(path, strlen(path)) < 0)
		return unpack_refuse(u, raw, -EPERM,
				     "an absolute path, a \"..\" component, or a path too long or deep");
	if (++u->entries > u->max_files)
		return unpack_refuse(u, path, -EFBIG, "more entries than the copy-out cap");
	if (!is_link && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		return unpack_refuse(u, path, -EPERM, "a device, fifo or socket");
	const char *name;
	int pfd = ws_open_parent_mkdir(u->stagefd, path, &name);
	if (pfd < 0)
		return unpack_refuse(u, path, pfd, pfd == -ELOOP || pfd == -ENOTDIR
				     ? "a path through a symlink or a file" : strerror(-pfd));
	int rc;
	if (is_link || type == AE_IFREG) {
		rc = unpack_file(u, a, en, path, pfd, name);
	} else if (type == AE_IFDIR) {
		struct stat st;
		if (mkdirat(pfd, name, 0700) < 0 &&
		    !(errno == EEXIST && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		      S_ISDIR(st.st_mode)))
			rc = unpack_refuse(u, path, -errno, "cannot create the directory");
		else
			rc = ws_manifest_add(u->m, path, WORKSPACE_DIR, archive_entry_perm(en), 0, NULL, NULL);
	} else {
		const char *target = archive_entry_symlink(en);
		size_t tlen = target ? strnlen(target, WORKSPACE_PATH_MAX + 1) : 0;
		if (!target || !tlen || tlen > WORKSPACE_PATH_MAX)
			rc = unpack_refuse(u, path, -EPERM, "a symlink with an empty or too long target");
		else if (symlinkat(target, pfd, name) < 0)
			rc = unpack_refuse(u, path, -errno, errno == EEXIST
					   ? "a second entry for the same path" : strerror(errno));
		else
			rc = ws_manifest_add(u->m, path, WORKSPACE_SYMLINK, 0777, tlen, NULL, target);
	}
	close(pfd);
	return rc;
}

/* Archives may leave out parent directories; the manifest names them all, so
 * a missing parent is not mistaken for a deleted directory. m is sorted and
 * unique; parents are looked up in that sorted part, added (perhaps several
 * times), then the whole is sorted again and the added duplicates dropped. */
static int unpack_add_parents(struct workspace_manifest *m)
{
	struct workspace_manifest sorted = { .v = m->v, .n = m->n };
	size_t n = m->n;
	int added = 0;
	for (size_t i = 0; i < n; i++) {
		char p[WORKSPACE_PATH_MAX + 1];
		snprintf(p, sizeof(p), "%s", m->v[i].path);
		for (char *s = strrchr(p, '/'); s; s = strrchr(p, '/')) {
			*s = '\0';
			sorted.v = m->v;   /* realloc may move it */
			const struct workspace_entry *pe = workspace_manifest_find(&sorted, p);
			if (pe && pe->type != WORKSPACE_DIR)
				return -ENOTDIR;   /* an entry beneath a file or symlink */
			if (pe)
				break;
			int rc = ws_manifest_add(m, p, WORKSPACE_DIR, 0755, 0, NULL, NULL);
			if (rc < 0)
				return rc;
			added = 1;
		}
	}
	if (!added)
		return 0;
	ws_manifest_sort(m);   /* duplicates here are ours, dropped below */
	size_t w = 0;
	for (size_t r = 0; r < m->n; r++) {
		if (w > 0 && !strcmp(m->v[w - 1].path, m->v[r].path)) {
			free(m->v[r].path);
			free(m->v[r].target);
			continue;
		}
		m->v[w++] = m->v[r];
	}
	m->n = w;
	return 0;
}

int workspace_unpack(workspace_read_fn read, void *ctx, const char *staging,
		     const struct workspace_limits *lim, struct workspace_manifest *out, struct err *e)
{
	return workspace_unpack_against(read, ctx, staging, lim, NULL, out, e);
}

int workspace_unpack_against(workspace_read_fn read, void *ctx, const char *staging,
			     const struct workspace_limits *lim,
			     const struct workspace_manifest *before,
			     struct workspace_manifest *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	struct unpack *u = calloc(1, sizeof(*u));
	if (!u)
		return err_set(e, -ENOMEM, "out of memory");
	u->read = read;
	u->ctx = ctx;
	u->m = out;
	u->before = before;
	u->e = e;
	u->max_bytes = lim && lim->max_bytes ? lim->max_bytes : WORKSPACE_DEFAULT_MAX_BYTES;
	u->max_files = lim && lim->max_files ? lim->max_files : WORKSPACE_DEFAULT_MAX_FILES;
	u->stagefd = -1;
	struct archive *a = NULL;
	int rc;
	if (mkdir(staging, 0700) < 0) {
		rc = err_set(e, -errno, "creating staging dir %s: %s", staging, strerror(errno));
		goto out;
	}
	u->stagefd = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u->stagefd < 0) {
		rc = err_set(e, -errno, "opening staging dir %s: %s", staging, strerror(errno));
		goto out;
	}
	a = archive_read_new();
	if (!a || archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open(a, u, NULL, unpack_read_cb, NULL) != ARCHIVE_OK) {
		rc = err_set(e, -EPROTO, "copy-out stream: %s",
			     a ? archive_error_string(a) : "out of memory");
		goto out;
	}
	for (;;) {
		struct archive_entry *en;
		int r = archive_read_next_header(a, &en);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			rc = unpack_refuse(u, NULL, -EPROTO, archive_error_string(a)
					   ? archive_error_string(a) : "a broken tar stream");
			goto out;
		}
		rc = unpack_entry(u, a, en);
		if (rc < 0)
			goto out;
	}
	rc = ws_manifest_sort(out);
	if (rc == 0)
		rc = unpack_add_parents(out);
	if (rc == -EEXIST)
		rc = err_set(e, rc, "copy-out refused: a path appears twice in the stream");
	else if (rc == -ENOTDIR)
		rc = err_set(e, rc, "copy-out refused: an entry beneath a file or symlink");
	else if (rc < 0)
		rc = err_set(e, rc, "copy-out: %s", strerror(-rc));
out:
	if (a)
		archive_read_free(a);
	if (u->stagefd >= 0)
		close(u->stagefd);
	free(u->keep);
	free(u);
	if (rc < 0)
		workspace_manifest_free(out);
	return rc < 0 ? rc : 0;
}

static long unpack_fd_read(void *ctx, uint8_t *buf, size_t cap)
{
	return io_read(*(int *)ctx, buf, cap);
}

int workspace_unpack_fd(int fd, const char *staging, const struct workspace_limits *lim,
			struct workspace_manifest *out, struct err *e)
{
	return workspace_unpack(unpack_fd_read, &fd, staging, lim, out, e);
}

struct unpack_mem {
	const uint8_t *p;
	size_t left;
};

static long unpack_mem_read(void *ctx, uint8_t *buf, size_t cap)
{
	struct unpack_mem *m = ctx;
	size_t n = m->left < cap ? m->left : cap;
	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (long)n;
}

int workspace_unpack_mem(const void *data, size_t len, const char *staging,
			 const struct workspace_limits *lim, struct workspace_manifest *out,
			 struct err *e)
{
	struct unpack_mem m = { data, len };
	return workspace_unpack(unpack_mem_read, &m, staging, lim, out, e);
}

static int remove_at(int dfd, const char *name, unsigned depth)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > WORKSPACE_DEPTH_MAX + 8)
		return -errno;
	int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return -errno;
	fchmod(sub, 0700);
	DIR *d = fdopendir(sub);
	if (!d) {
		close(sub);
		return -errno;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && rc == 0)
			rc = remove_at(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

int workspace_remove_tree(const char *path)
{
	return remove_at(AT_FDCWD, path, 0);
}
