/* Fixtures for the workspace tests: temp trees, raw tar streams (so hostile
 * archives can say anything a real tar writer would normalize away), a tree
 * hash to prove "byte for byte untouched", and the pack -> unpack -> changes
 * pipeline a run goes through. Header-only: each test binary includes it. */
#ifndef IRONCLAW_TESTS_WORKSPACE_FIXTURE_H
#define IRONCLAW_TESTS_WORKSPACE_FIXTURE_H

/* Fixture paths are short temp paths; truncation warnings are noise here. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "workspace/workspace.h"

static inline char *fx_tmpdir(void)
{
	char t[] = "/tmp/ws-test-XXXXXX";
	cr_assert(mkdtemp(t));
	return strdup(t);
}

static inline void fx_mkdir(const char *root, const char *rel, unsigned mode)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert(mkdir(p, mode) == 0 || errno == EEXIST, "mkdir %s: %s", p, strerror(errno));
	chmod(p, mode);
}

static inline void fx_write(const char *root, const char *rel, const char *data, size_t len,
			    unsigned mode)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
	cr_assert(fd >= 0, "create %s: %s", p, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	fchmod(fd, mode);
	close(fd);
}

static inline void fx_put(const char *root, const char *rel, const char *text)
{
	fx_write(root, rel, text, strlen(text), 0644);
}

static inline void fx_symlink(const char *root, const char *rel, const char *target)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	unlink(p);
	cr_assert(symlink(target, p) == 0, "symlink %s: %s", p, strerror(errno));
}

/* Whole file or NULL (owned). */
static inline char *fx_read(const char *root, const char *rel)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "re");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static inline int fx_exists(const char *root, const char *rel)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return lstat(p, &st) == 0;
}

/* ---- tree hash: every path, type, mode, owner, bytes and target, sorted ---- */

struct fx_lines {
	char **v;
	size_t n, cap;
};

static inline void fx_walk(const char *root, const char *rel, struct fx_lines *l)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s%s%s", root, rel[0] ? "/" : "", rel);
	DIR *d = opendir(p);
	cr_assert(d, "opendir %s", p);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[4096], full[4096];
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		struct stat st;
		cr_assert(lstat(full, &st) == 0);
		char extra[512] = "";
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(full, extra, sizeof(extra) - 1);
			extra[n > 0 ? n : 0] = '\0';
		} else if (S_ISREG(st.st_mode)) {
			FILE *f = fopen(full, "re");
			uint64_t h = 0xcbf29ce484222325ull;
			int c;
			while (f && (c = fgetc(f)) != EOF)
				h = (h ^ (unsigned char)c) * 0x100000001b3ull;
			if (f)
				fclose(f);
			snprintf(extra, sizeof(extra), "%016llx", (unsigned long long)h);
		}
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			l->v = realloc(l->v, l->cap * sizeof(char *));
		}
		cr_assert(asprintf(&l->v[l->n++], "%s %o %u:%u %s", sub, (unsigned)st.st_mode,
				   (unsigned)st.st_uid, (unsigned)st.st_gid, extra) > 0);
		if (S_ISDIR(st.st_mode))
			fx_walk(root, sub, l);
	}
	closedir(d);
}

static inline int fx_cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* An owned description of the whole tree; equal strings mean equal trees. */
static inline char *fx_tree(const char *root)
{
	struct fx_lines l = { 0 };
	fx_walk(root, "", &l);
	qsort(l.v, l.n, sizeof(char *), fx_cmpstr);
	struct buf b;
	buf_init(&b, 64 << 20);
	for (size_t i = 0; i < l.n; i++) {
		buf_printf(&b, "%s\n", l.v[i]);
		free(l.v[i]);
	}
	free(l.v);
	size_t len;
	char *s = (char *)buf_steal(&b, &len);
	return s ? s : strdup("");
}

/* ---- pipeline ---- */

/* Packs root into memory (small chunks, as the agent would feed stdin). */
static inline int fx_pack(const char *root, const struct workspace_pack_options *o, uint8_t **out,
			  size_t *len, struct workspace_manifest *m, struct err *e)
{
	struct workspace_pack *p;
	int rc = workspace_pack_open(root, o, &p, e);
	if (rc < 0)
		return rc;
	struct buf b;
	buf_init(&b, 256 << 20);
	uint8_t chunk[4096];
	long n;
	while ((n = workspace_pack_read(p, chunk, sizeof(chunk), e)) > 0)
		cr_assert(buf_append(&b, chunk, (size_t)n) == 0);
	if (n == 0 && m)
		workspace_pack_take_manifest(p, m);
	workspace_pack_free(p);
	*out = buf_steal(&b, len);
	return n < 0 ? (int)n : 0;
}

/* A run: host dir `host` is copied in; the "VM" ends with the tree `vm`
 * (a second host dir standing in for the guest's /workspace); its stream is
 * unpacked into staging and compared. */
struct fx_run {
	char *host, *vm, *base, staging[4200];
	struct workspace_manifest before, after;
	struct workspace_changes c;
};

static inline void fx_run_start(struct fx_run *r)
{
	memset(r, 0, sizeof(*r));
	r->base = fx_tmpdir();
	char p[4096];
	snprintf(p, sizeof(p), "%s/host", r->base);
	cr_assert(mkdir(p, 0755) == 0);
	r->host = strdup(p);
	snprintf(p, sizeof(p), "%s/vm", r->base);
	cr_assert(mkdir(p, 0755) == 0);
	r->vm = strdup(p);
	snprintf(r->staging, sizeof(r->staging), "%s/staging", r->base);
}

/* Copies host to vm the way the VM would get it: pack + unpack... then the
 * test edits vm, then fx_run_compute. */
static inline void fx_run_copy_in(struct fx_run *r)
{
	struct err e = { 0 };
	uint8_t *tar;
	size_t len;
	cr_assert(fx_pack(r->host, NULL, &tar, &len, &r->before, &e) == 0, "%s", e.msg);
	free(tar);
	char cmd[8500];
	snprintf(cmd, sizeof(cmd), "cp -a %s/. %s/", r->host, r->vm);
	cr_assert(system(cmd) == 0);
}

/* A workspace_read_fn over memory, in small reads. */
struct fx_mem {
	const uint8_t *p;
	size_t left;
};

static inline long fx_mem_read(void *ctx, uint8_t *buf, size_t cap)
{
	struct fx_mem *m = ctx;
	size_t n = m->left < cap ? m->left : cap;
	memcpy(buf, m->p, n);
	m->p += n;
	m->left -= n;
	return (long)n;
}

static inline int fx_run_compute(struct fx_run *r, struct err *e)
{
	uint8_t *tar;
	size_t len;
	struct workspace_manifest vm_m = { 0 };
	cr_assert(fx_pack(r->vm, NULL, &tar, &len, &vm_m, e) == 0, "%s", e->msg);
	workspace_manifest_free(&vm_m);
	/* As a run does: against the copy-in manifest (unchanged files unstaged). */
	struct fx_mem mem = { tar, len };
	int rc = workspace_unpack_against(fx_mem_read, &mem, r->staging, NULL, &r->before,
					  &r->after, e);
	free(tar);
	if (rc < 0)
		return rc;
	return workspace_changes_compute(r->host, &r->before, r->staging, &r->after, &r->c, e);
}

static inline void fx_run_end(struct fx_run *r)
{
	workspace_changes_free(&r->c);
	workspace_manifest_free(&r->before);
	workspace_manifest_free(&r->after);
	workspace_remove_tree(r->base);
	free(r->base);
	free(r->host);
	free(r->vm);
}

static inline const struct workspace_change *fx_change(const struct workspace_changes *c,
						       const char *path)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].path, path))
			return &c->v[i];
	return NULL;
}

/* ---- raw tar ---- */

static inline void fx_tar_hdr(struct buf *b, const char *name, char type, uint64_t size,
			      const char *link, unsigned mode)
{
	uint8_t h[512] = { 0 };
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	char sz[16];
	snprintf(sz, sizeof(sz), "%011llo", (unsigned long long)size);
	memcpy(h + 124, sz, 11);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (uint8_t)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	buf_append(b, h, 512);
}

static inline void fx_tar_file(struct buf *b, const char *name, const char *data)
{
	size_t n = strlen(data);
	fx_tar_hdr(b, name, '0', n, NULL, 0644);
	buf_append(b, data, n);
	static const uint8_t zero[512];
	if (n % 512)
		buf_append(b, zero, 512 - n % 512);
}

static inline void fx_tar_end(struct buf *b)
{
	static const uint8_t zero[1024];
	buf_append(b, zero, sizeof(zero));
}

#endif
