/* The jail's minimal root: what to bind, planned in the parent.
 *
 * The list is: the VMM binary at its own path, the shared libraries the
 * dynamic loader resolves for it (asked from the loader itself with --list, the
 * way ldd does), the caller's binds (kernel, initramfs, firmware, the VM
 * directory), /dev/null, /dev/urandom, and a /dev/kvm node only when asked.
 * Everything is read-only except binds the caller marks writable. Nothing here
 * knows which VMM it is.
 *
 * The loader query is a fork+exec, so its answer is cached per binary identity
 * (path, size, mtime, inode): it runs once per binary per process, not per VM.
 * The cache is shared by every thread that spawns, under a mutex. */
#include "jail/rootfs.h"

#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jail/jail_internal.h"

#define ROOTFS_LOADER "/lib64/ld-linux-x86-64.so.2"

static int rootfs_add(struct rootfs_plan *p, const char *src, const char *dst, int writable, struct err *e)
{
	if (p->n >= ROOTFS_MAX_MOUNTS)
		return err_set(e, -E2BIG, "jail root: more than %d mounts", ROOTFS_MAX_MOUNTS);
	if (!dst || dst[0] != '/' || strstr(dst, "/../") || strstr(dst, "/./") ||
	    (strlen(dst) >= 3 && !strcmp(dst + strlen(dst) - 3, "/..")))
		return err_set(e, -EINVAL, "jail path '%s' must be absolute and without '.' or '..'", dst ? dst : "");
	struct stat st;
	if (stat(src, &st))
		return err_set(e, -errno, "bind source %s: %s", src, strerror(errno));
	struct rootfs_mount *m = &p->m[p->n];
	if (snprintf(m->src, sizeof(m->src), "%s", src) >= (int)sizeof(m->src) ||
	    snprintf(m->dst, sizeof(m->dst), "%s", dst) >= (int)sizeof(m->dst))
		return err_set(e, -ENAMETOOLONG, "bind path too long: %s", src);
	m->is_dir = S_ISDIR(st.st_mode);
	m->writable = writable;
	p->n++;
	return 0;
}

/* 1 when bin is an ELF with a PT_INTERP header, i.e. dynamically linked (the
 * loader's --list crashes on a static binary instead of saying so). */
static int rootfs_is_dynamic(const char *bin)
{
	int dyn = 0;
	FILE *f = fopen(bin, "rbe");
	if (!f)
		return 0;
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof(eh), 1, f) == 1 && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 128) {
		for (unsigned i = 0; i < eh.e_phnum && !dyn; i++) {
			Elf64_Phdr ph;
			if (fseek(f, (long)(eh.e_phoff + i * sizeof(ph)), SEEK_SET) || fread(&ph, sizeof(ph), 1, f) != 1)
				break;
			dyn = ph.p_type == PT_INTERP;
		}
	}
	fclose(f);
	return dyn;
}

#define ROOTFS_CACHE_MAX 8
#define ROOTFS_LIST_MAX 16384

struct rootfs_libs {
	char bin[ROOTFS_PATH_MAX];
	off_t size;
	struct timespec mtime;
	ino_t ino;
	dev_t dev;
	char *paths;     /* NUL-separated library paths, owned */
	size_t len;
};

static struct rootfs_libs rootfs_cache[ROOTFS_CACHE_MAX];
static size_t rootfs_cache_n, rootfs_cache_next;
static pthread_mutex_t rootfs_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned rootfs_queries;   /* under the lock */

unsigned rootfs_test_queries(void)
{
	pthread_mutex_lock(&rootfs_cache_lock);
	unsigned n = rootfs_queries;
	pthread_mutex_unlock(&rootfs_cache_lock);
	return n;
}

static int rootfs_same(const struct rootfs_libs *c, const char *bin, const struct stat *st)
{
	return c->paths && !strcmp(c->bin, bin) && c->size == st->st_size && c->ino == st->st_ino &&
	       c->dev == st->st_dev && c->mtime.tv_sec == st->st_mtim.tv_sec &&
	       c->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Asks the loader which libraries bin needs (lines "name => /path (0x...)" and
 * "/lib64/ld-linux-x86-64.so.2 (0x...)"); returns them NUL-separated in an
 * owned buffer. A static binary has none. */
static int rootfs_query_libs(const char *bin, char **out, size_t *out_len)
{
	char *text = malloc(ROOTFS_LIST_MAX), *paths = malloc(ROOTFS_LIST_MAX);
	size_t used = 0;
	*out = NULL;
	*out_len = 0;
	if (!text || !paths) {
		free(text);
		free(paths);
		return -ENOMEM;
	}
	char *argv[] = { (char *)ROOTFS_LOADER, (char *)"--list", (char *)bin, NULL };
	if (access(ROOTFS_LOADER, X_OK) == 0 && rootfs_is_dynamic(bin) && jail_run(argv, text, ROOTFS_LIST_MAX) == 0) {
		for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char *path = strstr(line, "=> ");
			path = path ? path + 3 : line;
			while (*path == ' ' || *path == '\t')
				path++;
			if (path[0] != '/')
				continue;   /* linux-vdso.so.1 */
			char *end = strstr(path, " (");
			if (end)
				*end = 0;
			size_t l = strlen(path) + 1;
			if (used + l > ROOTFS_LIST_MAX)
				break;
			memcpy(paths + used, path, l);
			used += l;
		}
	}
	free(text);
	*out = paths;
	*out_len = used;
	return 0;
}

/* Adds bin's libraries, from the cache or from one loader query. */
static int rootfs_add_libs(struct rootfs_plan *p, const char *bin, struct err *e)
{
	struct stat st;
	if (stat(bin, &st))
		return err_set(e, -errno, "VMM %s: %s", bin, strerror(errno));
	if (strlen(bin) >= ROOTFS_PATH_MAX)
		return err_set(e, -ENAMETOOLONG, "VMM path too long: %s", bin);
	int rc = 0;
	pthread_mutex_lock(&rootfs_cache_lock);
	struct rootfs_libs *c = NULL;
	for (size_t i = 0; i < rootfs_cache_n && !c; i++)
		if (rootfs_same(&rootfs_cache[i], bin, &st))
			c = &rootfs_cache[i];
	if (!c) {
		char *paths;
		size_t len;
		/* Under the lock: concurrent first spawns of one binary query once. */
		rootfs_queries++;
		if ((rc = rootfs_query_libs(bin, &paths, &len))) {
			pthread_mutex_unlock(&rootfs_cache_lock);
			return err_set(e, rc, "listing the libraries of %s: %s", bin, strerror(-rc));
		}
		size_t slot = rootfs_cache_n < ROOTFS_CACHE_MAX ? rootfs_cache_n++ : rootfs_cache_next++ % ROOTFS_CACHE_MAX;
		c = &rootfs_cache[slot];
		free(c->paths);
		snprintf(c->bin, sizeof(c->bin), "%s", bin);
		c->size = st.st_size;
		c->mtime = st.st_mtim;
		c->ino = st.st_ino;
		c->dev = st.st_dev;
		c->paths = paths;
		c->len = len;
	}
	for (size_t off = 0; off < c->len && !rc; off += strlen(c->paths + off) + 1)
		if ((rc = rootfs_add(p, c->paths + off, c->paths + off, 0, e)))
			err_wrap(e, "libraries of %s", bin);
	pthread_mutex_unlock(&rootfs_cache_lock);
	return rc;
}

int rootfs_plan_build(struct rootfs_plan *p, const char *vmm, const struct jail_bind *binds, size_t n_binds,
		      int kvm_node, struct err *e)
{
	memset(p, 0, sizeof(*p));
	int rc;
	if (!vmm || vmm[0] != '/')
		return err_set(e, -EINVAL, "VMM path '%s' must be absolute", vmm ? vmm : "");
	if ((rc = rootfs_add(p, vmm, vmm, 0, e)) || (rc = rootfs_add_libs(p, vmm, e)))
		return rc;
	if (n_binds > JAIL_BINDS_MAX)
		return err_set(e, -E2BIG, "%zu binds: at most %d", n_binds, JAIL_BINDS_MAX);
	for (size_t i = 0; i < n_binds; i++)
		if ((rc = rootfs_add(p, binds[i].host_path, binds[i].jail_path, binds[i].writable, e)))
			return rc;
	if ((rc = rootfs_add(p, "/dev/null", "/dev/null", 1, e)) ||
	    (rc = rootfs_add(p, "/dev/urandom", "/dev/urandom", 0, e)))
		return rc;
	if (kvm_node) {
		struct stat st;
		if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode))
			return err_set(e, -ENODEV, "a /dev/kvm node was asked for, but /dev/kvm is not a character device here (hint: use TCG)");
		p->kvm = 1;
		p->kvm_rdev = st.st_rdev;
	}
	return 0;
}
