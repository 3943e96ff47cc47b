/* Paths, confined opens, hashes and manifests: the small pieces every step of
 * the workspace flow stands on.
 *
 * Every host path here is resolved relative to an fd of a tree's root with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), so a
 * symlink planted anywhere on the way (by a hostile guest in staging, or by
 * anyone in the host workspace) makes the open fail instead of redirecting it.
 * Where openat2 is missing (kernels before 5.6) the same walk is done one
 * component at a time with O_NOFOLLOW; paths were already checked to have no
 * "..", so the walk cannot climb. */
#include "workspace/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/io.h"

int workspace_path_check(const char *path, size_t len)
{
	if (len == 0 || len > WORKSPACE_PATH_MAX || path[0] == '/')
		return -EINVAL;
	size_t depth = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] == '\0')
			return -EINVAL;
		if (i < len && path[i] != '/')
			continue;
		size_t clen = i - start;
		if (clen == 0 || (clen == 1 && path[start] == '.') ||
		    (clen == 2 && path[start] == '.' && path[start + 1] == '.'))
			return -EINVAL;
		if (++depth > WORKSPACE_DEPTH_MAX)
			return -EINVAL;
		start = i + 1;
	}
	return 0;
}

void workspace_hex(const uint8_t sha[WORKSPACE_SHA256_LEN], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < WORKSPACE_SHA256_LEN; i++) {
		out[2 * i] = digits[sha[i] >> 4];
		out[2 * i + 1] = digits[sha[i] & 15];
	}
	out[64] = '\0';
}

/* openat2 confined to dirfd; ENOSYS when the kernel lacks it. */
static int ws_openat2(int dirfd, const char *rel, int flags, unsigned mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;
	do
		fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : (int)fd;
}

/* The component walk both the openat2 fallback and the staging tree's
 * creating open stand on: opens each directory of rel before its last
 * component with O_NOFOLLOW (first making it, 0700, when make is set), and
 * points *last at that component. Returns the fd of the last directory
 * (dirfd itself when rel has no '/'; never closes dirfd) or -errno. */
static int ws_walk_parent(int dirfd, const char *rel, int make, const char **last)
{
	char part[WORKSPACE_PATH_MAX + 1];
	int cur = dirfd;
	const char *p = rel;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (!slash)
			break;
		size_t n = (size_t)(slash - p);
		memcpy(part, p, n);
		part[n] = '\0';
		if (make && mkdirat(cur, part, 0700) < 0 && errno != EEXIST) {
			int rc = -errno;
			if (cur != dirfd)
				close(cur);
			return rc;
		}
		int next = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int rc = -errno;
		if (cur != dirfd)
			close(cur);
		if (next < 0)
			return rc;
		cur = next;
		p = slash + 1;
	}
	*last = p;
	return cur;
}

/* The fallback walk: each directory component opened with O_NOFOLLOW. */
static int ws_walk(int dirfd, const char *rel, int flags, unsigned mode)
{
	const char *p;
	int cur = ws_walk_parent(dirfd, rel, 0, &p);
	if (cur < 0)
		return cur;
	int fd = openat(cur, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	int rc = fd < 0 ? -errno : fd;
	if (cur != dirfd)
		close(cur);
	return rc;
}

int ws_open_beneath(int rootfd, const char *rel, int flags, unsigned mode)
{
	if (workspace_path_check(rel, strlen(rel)) < 0 && strcmp(rel, "."))
		return -EINVAL;
	flags |= O_NOFOLLOW;
	int fd = ws_openat2(rootfd, rel, flags, mode);
	if (fd == -ENOSYS)
		fd = ws_walk(rootfd, rel, flags, mode);
	return fd;
}

int ws_open_parent(int rootfd, const char *rel, const char **name)
{
	if (workspace_path_check(rel, strlen(rel)) < 0)
		return -EINVAL;
	const char *slash = strrchr(rel, '/');
	*name = slash ? slash + 1 : rel;
	if (!slash) {
		int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	char dir[WORKSPACE_PATH_MAX + 1];
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	return ws_open_beneath(rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
}

int ws_open_parent_mkdir(int rootfd, const char *rel, const char **name)
{
	if (workspace_path_check(rel, strlen(rel)) < 0)
		return -EINVAL;
	int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return -errno;
	int fd = ws_walk_parent(cur, rel, 1, name);
	if (fd != cur)
		close(cur);
	return fd;
}

int ws_sha256_copy(int src, int dst, uint8_t out[WORKSPACE_SHA256_LEN], uint64_t *size)
{
	if (size)
		*size = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return -ENOMEM;
	}
	static __thread uint8_t chunk[65536];
	uint64_t total = 0;
	int rc = 0;
	for (;;) {
		ssize_t r = io_read(src, chunk, sizeof(chunk));
		if (r <= 0) {
			rc = (int)r;
			break;
		}
		EVP_DigestUpdate(md, chunk, (size_t)r);
		if (dst >= 0 && (rc = io_write_all(dst, chunk, (size_t)r)) < 0)
			break;
		total += (uint64_t)r;
	}
	unsigned len = 0;
	EVP_DigestFinal_ex(md, out, &len);
	EVP_MD_CTX_free(md);
	if (size)
		*size = total;
	return rc;
}

int ws_state_at(int dirfd, const char *name, struct ws_state *s)
{
	struct stat st;
	memset(s, 0, sizeof(*s));
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	s->mode = st.st_mode & 0777;
	s->uid = st.st_uid;
	s->gid = st.st_gid;
	s->size = (uint64_t)st.st_size;
	if (S_ISDIR(st.st_mode)) {
		s->type = WORKSPACE_DIR;
	} else if (S_ISLNK(st.st_mode)) {
		s->type = WORKSPACE_SYMLINK;
		ssize_t n = readlinkat(dirfd, name, s->target, sizeof(s->target) - 1);
		if (n < 0)
			return -errno;
		s->target[n] = '\0';
		s->size = (uint64_t)n;
	} else if (S_ISREG(st.st_mode)) {
		s->type = WORKSPACE_FILE;
		int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return -errno;
		int rc = ws_sha256_copy(fd, -1, s->sha256, &s->size);
		close(fd);
		if (rc < 0)
			return rc;
	} else {
		s->type = WORKSPACE_NONE;
		s->mode = 01000;  /* something unusable is there: matches no entry */
	}
	return 0;
}

int ws_state_beneath(int rootfd, const char *rel, struct ws_state *s)
{
	const char *name;
	int dfd = ws_open_parent(rootfd, rel, &name);
	if (dfd == -ENOENT) {
		memset(s, 0, sizeof(*s));
		return 0;
	}
	if (dfd < 0)
		return dfd;
	int rc = ws_state_at(dfd, name, s);
	close(dfd);
	return rc;
}

int ws_state_is(const struct ws_state *s, const struct workspace_entry *en)
{
	if (!en)
		return s->type == WORKSPACE_NONE && s->mode == 0;
	if (s->type != en->type || s->mode != en->mode)
		return 0;
	if (en->type == WORKSPACE_FILE)
		return s->size == en->size && !memcmp(s->sha256, en->sha256, WORKSPACE_SHA256_LEN);
	if (en->type == WORKSPACE_SYMLINK)
		return en->target && !strcmp(s->target, en->target);
	return 1;
}

/* ---- manifests ---- */

int ws_manifest_add(struct workspace_manifest *m, const char *path, enum workspace_type type,
		    unsigned mode, uint64_t size, const uint8_t *sha, const char *target)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct workspace_entry *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	struct workspace_entry *en = &m->v[m->n];
	memset(en, 0, sizeof(*en));
	en->path = strdup(path);
	en->target = target ? strdup(target) : NULL;
	if (!en->path || (target && !en->target)) {
		free(en->path);
		free(en->target);
		return -ENOMEM;
	}
	en->type = type;
	en->mode = mode & 0777;
	en->size = size;
	if (sha)
		memcpy(en->sha256, sha, WORKSPACE_SHA256_LEN);
	if (type == WORKSPACE_FILE)
		m->bytes += size;
	m->n++;
	return 0;
}

static int ws_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct workspace_entry *)a)->path,
		      ((const struct workspace_entry *)b)->path);
}

int ws_manifest_sort(struct workspace_manifest *m)
{
	if (m->n)
		qsort(m->v, m->n, sizeof(*m->v), ws_entry_cmp);
	for (size_t i = 1; i < m->n; i++)
		if (!strcmp(m->v[i - 1].path, m->v[i].path))
			return -EEXIST;
	return 0;
}

const struct workspace_entry *workspace_manifest_find(const struct workspace_manifest *m,
						      const char *path)
{
	struct workspace_entry key = { .path = (char *)path };
	if (!m->n)
		return NULL;
	return bsearch(&key, m->v, m->n, sizeof(*m->v), ws_entry_cmp);
}

void workspace_manifest_free(struct workspace_manifest *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].path);
		free(m->v[i].target);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}
