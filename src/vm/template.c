/* Templates on disk: keys, manifests, checks, housekeeping (see template.h).
 * The loop-facing parts (find on the pool, build) are in template_build.c. */
#include "vm/template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vm/template_internal.h"

#include "vm/image.h"
#include "vm/fc_backend.h"
#include "vm/qemu.h"
#include "vm/vm.h"

#define TEMPLATE_MEMO "hashes.json"
#define TEMPLATE_MEMO_MAX 64    /* entries kept in the hash memo */

int vm_template_root(char *out, size_t len, struct err *e)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;
	if (xdg && *xdg)
		n = snprintf(out, len, "%s/ironclaw/templates", xdg);
	else
		n = snprintf(out, len, "%s/.cache/ironclaw/templates", home && *home ? home : "/tmp");
	if (n < 0 || (size_t)n >= len)
		return err_set(e, -ENAMETOOLONG, "cache directory path too long");
	return 0;
}

int vm_template_mkdirs(const char *root, struct err *e)
{
	char p[VM_TEMPLATE_PATH_MAX];
	snprintf(p, sizeof(p), "%s", root);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return err_set(e, -errno, "creating %s: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return err_set(e, -errno, "creating %s: %s", p, strerror(errno));
	return 0;
}

static void template_hex(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* SHA-256 of a whole file, and its size. */
static int template_sha256_file(const char *path, char hex[65], uint64_t *size, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "opening %s: %s", path, strerror(errno));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	static __thread unsigned char chunk[1 << 20];
	uint64_t total = 0;
	int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
	while (rc == 0) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = err_set(e, -errno, "reading %s: %s", path, strerror(errno));
		if (n <= 0)
			break;
		EVP_DigestUpdate(md, chunk, (size_t)n);
		total += (uint64_t)n;
	}
	unsigned char d[32];
	unsigned dl = 0;
	if (rc == 0 && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == 32)
		template_hex(d, 32, hex);
	else if (rc == 0)
		rc = err_set(e, -EIO, "hashing %s failed", path);
	EVP_MD_CTX_free(md);
	close(fd);
	if (size)
		*size = total;
	return rc;
}

static int template_hash_input(const char *root, const char *path, char hex[65], struct err *e);

/* A state that is a directory (Firecracker's vmstate and mem): its regular
 * files in name order, at most this many. */
#define TEMPLATE_STATE_PARTS 8

static int template_state_parts(const char *dir, char names[TEMPLATE_STATE_PARTS][64], size_t *n,
				struct err *e)
{
	DIR *d = opendir(dir);
	if (!d)
		return err_set(e, -errno, "opening %s: %s", dir, strerror(errno));
	struct dirent *de;
	int rc = 0;
	*n = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == TEMPLATE_STATE_PARTS || strlen(de->d_name) >= 64)
			rc = err_set(e, -E2BIG, "the state directory %s holds more than its snapshot", dir);
		else
			memcpy(names[(*n)++], de->d_name, strlen(de->d_name) + 1);   /* < 64, checked */
	}
	closedir(d);
	for (size_t i = 1; i < *n; i++)   /* insertion sort: a handful of names */
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char t[64];
			memcpy(t, names[j], 64);
			memcpy(names[j], names[j - 1], 64);
			memcpy(names[j - 1], t, 64);
		}
	return rc;
}

/* The state's size and SHA-256: a file's own, or for a directory the SHA-256
 * of one "name sha256 size" line per file (each file's hash memoised under
 * memo_root when given). */
static int template_state_hash(const char *memo_root, const char *state, char hex[65], uint64_t *size,
			       struct err *e)
{
	struct stat st;
	if (stat(state, &st) < 0)
		return err_set(e, -errno, "%s: %s", state, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (size)
			*size = (uint64_t)st.st_size;
		return memo_root ? template_hash_input(memo_root, state, hex, e)
				 : template_sha256_file(state, hex, size, e);
	}
	char names[TEMPLATE_STATE_PARTS][64], text[TEMPLATE_STATE_PARTS * 160] = "";
	size_t n = 0, off = 0;
	uint64_t total = 0;
	int rc = template_state_parts(state, names, &n, e);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char p[VM_TEMPLATE_PATH_MAX + 96], h[65];
		snprintf(p, sizeof(p), "%s/%s", state, names[i]);
		if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode))
			return err_set(e, -EBADMSG, "%s is not a regular file", p);
		if ((rc = memo_root ? template_hash_input(memo_root, p, h, e) : template_sha256_file(p, h, NULL, e)) < 0)
			return rc;
		total += (uint64_t)st.st_size;
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s %s %llu\n", names[i], h,
					(unsigned long long)st.st_size);
	}
	if (rc < 0)
		return rc;
	if (n == 0)
		return err_set(e, -EBADMSG, "the state directory %s is empty", state);
	unsigned char d[32];
	unsigned dl = 0;
	if (EVP_Digest(text, off, d, &dl, EVP_sha256(), NULL) != 1 || dl != 32)
		return err_set(e, -EIO, "hashing %s failed", state);
	template_hex(d, 32, hex);
	if (size)
		*size = total;
	return 0;
}

/* The state's size without hashing it (the cheap check before the hash). */
static int template_state_size(const char *state, uint64_t *size)
{
	struct stat st;
	if (stat(state, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	char names[TEMPLATE_STATE_PARTS][64];
	size_t n = 0;
	struct err e = { 0 };
	int rc = template_state_parts(state, names, &n, &e);
	*size = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char p[VM_TEMPLATE_PATH_MAX + 96];
		snprintf(p, sizeof(p), "%s/%s", state, names[i]);
		if (stat(p, &st) < 0)
			return -errno;
		*size += (uint64_t)st.st_size;
	}
	return rc;
}

/* The file's hash, memoised by what stat says about it: a file replaced or
 * rewritten has another inode, size, mtime or ctime. */
static int template_hash_input(const char *root, const char *path, char hex[65], struct err *e)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return err_set(e, -errno, "cannot read %s: %s", path, strerror(errno));
	char stamp[256];
	snprintf(stamp, sizeof(stamp), "%llu:%llu:%lld:%lld.%09ld:%lld.%09ld",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
		 (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	char memo_path[VM_TEMPLATE_PATH_MAX + 32];
	snprintf(memo_path, sizeof(memo_path), "%s/" TEMPLATE_MEMO, root);
	json_t *memo = json_load_file(memo_path, 0, NULL);
	if (!json_is_object(memo)) {
		json_decref(memo);
		memo = json_object();
	}
	json_t *ent = json_object_get(memo, path);
	const char *s = json_string_value(json_object_get(ent, "stat"));
	const char *h = json_string_value(json_object_get(ent, "sha256"));
	if (s && h && !strcmp(s, stamp) && strlen(h) == 64) {
		memcpy(hex, h, 65);
		json_decref(memo);
		return 0;
	}
	int rc = template_sha256_file(path, hex, NULL, e);
	if (rc == 0 && vm_template_mkdirs(root, e) == 0) {
		if (json_object_size(memo) >= TEMPLATE_MEMO_MAX)
			json_object_clear(memo);
		json_object_set_new(memo, path, json_pack("{s:s,s:s}", "stat", stamp, "sha256", hex));
		char tmp[VM_TEMPLATE_PATH_MAX + 64];
		snprintf(tmp, sizeof(tmp), "%s.%d", memo_path, (int)getpid());
		if (json_dump_file(memo, tmp, JSON_COMPACT) == 0)
			rename(tmp, memo_path);
		else
			unlink(tmp);
	}
	err_clear(e);
	json_decref(memo);
	return rc;
}

/* The VMM command line for the shape, as every clone of it runs it (jail
 * paths only): part of the key, because the saved devices must match it. */
static int template_argv_text(const struct vm_template *t, int is_qemu, enum vm_accel accel, char *out,
			      size_t len, struct err *e)
{
	/* An image VM's command line as vm.c makes it (the guest switches root
	 * to the disk); the disk itself is the jail path, the same for all. */
	struct vm_backend_spec spec = { .id = "template", .dir = "/run/vm", .kernel = t->kernel,
					.initrd = t->initrd, .cpus = t->cpus,
					.memory_mib = t->memory_mib, .accel = accel, .tap_fd = -1,
					.root_image = t->root_image[0] ? t->root_image : NULL,
					.cmdline_extra = t->root_image[0] ? "ironclaw.root=1" : NULL };
	static __thread struct vm_launch_plan plan;
	int rc = is_qemu ? qemu_plan_launch(&spec, &plan, e) : fc_plan_launch(&spec, NULL, &plan, e);
	if (rc < 0)
		return rc;
	size_t off = 0;
	if (!is_qemu) {
		/* Firecracker's shape is in its API configuration, not its argv. */
		int n = snprintf(out, len, "machine vcpus %u mem_mib %u\n", t->cpus, t->memory_mib);
		if (n < 0 || (size_t)n >= len)
			return err_set(e, -E2BIG, "VMM command line too long");
		off = (size_t)n;
	}
	for (size_t i = 0; plan.argv[i]; i++) {
		int n = snprintf(out + off, len - off, "%s\n", plan.argv[i]);
		if (n < 0 || (size_t)n >= len - off)
			return err_set(e, -E2BIG, "VMM command line too long");
		off += (size_t)n;
	}
	return 0;
}

int vm_template_key(const struct vm_template_shape *s, struct vm_template *t, struct err *e)
{
	memset(t, 0, sizeof(*t));
	struct vm_image img = { 0 };
	int rc;
	if ((!s->kernel || !s->initrd) && (rc = vm_image_find(&img, e)) < 0)
		return rc;
	snprintf(t->kernel, sizeof(t->kernel), "%s", s->kernel ? s->kernel : img.kernel);
	snprintf(t->initrd, sizeof(t->initrd), "%s", s->initrd ? s->initrd : img.initrd);
	t->cpus = s->cpus ? s->cpus : VM_DEFAULT_CPUS;
	t->memory_mib = s->memory_mib ? s->memory_mib : VM_DEFAULT_MEMORY_MIB;
	if (s->root_image && strlen(s->root_image) >= sizeof(t->root_image))
		return err_set(e, -ENAMETOOLONG, "image path too long");
	snprintf(t->root_image, sizeof(t->root_image), "%s", s->root_image ? s->root_image : "");
	char root[4096];
	if ((rc = vm_template_root(root, sizeof(root), e)) < 0)
		return rc;
	char hk[65], hi[65], hq[65], hr[65] = "";
	/* The backend is in the key (its name, its binary): a QEMU state is never
	 * offered to Firecracker, nor the other way round. */
	const char *backend = s->backend ? s->backend : "qemu";
	int is_qemu = !strcmp(backend, "qemu");
	if (!is_qemu && strcmp(backend, "firecracker"))
		return err_set(e, -EINVAL, "templates are kept for qemu and firecracker, not '%.32s'", backend);
	snprintf(t->backend, sizeof(t->backend), "%s", backend);
	char vmm[4096] = QEMU_BINARY;
	if (!is_qemu && fc_binary_find(vmm, sizeof(vmm)) < 0)
		return err_set(e, -ENOENT, "no %s binary to key a template by", backend);
	/* The image by content, not by name or id: a rebuilt or edited file
	 * (another id, or the same path with other bytes) is another key. */
	if ((rc = template_hash_input(root, t->kernel, hk, e)) < 0 ||
	    (rc = template_hash_input(root, t->initrd, hi, e)) < 0 ||
	    (rc = template_hash_input(root, vmm, hq, e)) < 0 ||
	    (t->root_image[0] && (rc = template_hash_input(root, t->root_image, hr, e)) < 0))
		return err_wrap(e, "computing the template key");
	struct vm_accel_verdict v;
	vm_accel_detect(QEMU_BINARY, t->kernel, t->initrd, &v);
	static __thread char text[VM_PLAN_STORE + 1024];
	/* No image and QEMU: no extra lines, so the initramfs shapes keep the
	 * keys they had and their templates remain valid. */
	int n = snprintf(text, sizeof(text),
			 "ironclaw-template %d\nkernel %s\ninitrd %s\nvmm %s\n%s%s%s%s%s%s",
			 VM_TEMPLATE_FORMAT, hk, hi, hq, t->root_image[0] ? "root-image " : "",
			 t->root_image[0] ? hr : "", t->root_image[0] ? "\n" : "",
			 is_qemu ? "" : "backend ", is_qemu ? "" : backend, is_qemu ? "" : "\n");
	if ((rc = template_argv_text(t, is_qemu, v.accel, text + n, sizeof(text) - (size_t)n, e)) < 0)
		return rc;
	unsigned char d[32];
	unsigned dl = 0;
	if (EVP_Digest(text, strlen(text), d, &dl, EVP_sha256(), NULL) != 1 || dl != 32)
		return err_set(e, -EIO, "hashing the template key failed");
	template_hex(d, 32, t->key);
	snprintf(t->dir, sizeof(t->dir), "%s/%s", root, t->key);
	snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
	return 0;
}

/* ---- manifests ---- */

static int template_read_manifest(const char *dir, struct vm_template *t, char sha[65],
				  struct err *e)
{
	char path[VM_TEMPLATE_PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	json_error_t je;
	json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!m) {
		if (access(path, F_OK) < 0)
			return err_set(e, -ENOENT, "no template manifest in %s", dir);
		return err_set(e, -EBADMSG, "its manifest is not valid JSON (%.100s)", je.text);
	}
	json_int_t fmt = 0, cpus = 0, mem = 0, bytes = -1, created = 0;
	const char *key = NULL, *k = NULL, *i = NULL, *h = NULL, *r = "", *b = "qemu";
	double save_ms = 0;
	int rc = json_unpack(m, "{s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:I,s?F,s?s,s?s}", "format", &fmt,
			     "key", &key, "kernel", &k, "initrd", &i, "cpus", &cpus,
			     "memory_mib", &mem, "state_bytes", &bytes, "state_sha256", &h,
			     "created", &created, "save_ms", &save_ms, "root_image", &r, "backend", &b);
	if (rc < 0 || fmt != VM_TEMPLATE_FORMAT || strlen(key) != VM_TEMPLATE_KEY_LEN ||
	    strlen(h) != 64 || cpus <= 0 || cpus > 1024 || mem <= 0 || mem > (1 << 24) || bytes < 0) {
		json_decref(m);
		return err_set(e, -EBADMSG, "its manifest is incomplete or of another format");
	}
	memcpy(t->key, key, VM_TEMPLATE_KEY_LEN + 1);
	snprintf(t->kernel, sizeof(t->kernel), "%s", k);
	snprintf(t->initrd, sizeof(t->initrd), "%s", i);
	snprintf(t->root_image, sizeof(t->root_image), "%s", r);
	snprintf(t->backend, sizeof(t->backend), "%s", b);
	t->cpus = (unsigned)cpus;
	t->memory_mib = (unsigned)mem;
	t->state_bytes = (uint64_t)bytes;
	t->created = created;
	t->save_ms = save_ms;
	memcpy(sha, h, 65);
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	snprintf(t->state, sizeof(t->state), "%s/state", dir);
	json_decref(m);
	return 0;
}

/* Used by template_build.c: hashes dir/state and writes dir/manifest.json. */
int vm_template_write_manifest(const struct vm_template *t, const char *dir, struct err *e)
{
	char state[VM_TEMPLATE_PATH_MAX + 16], path[VM_TEMPLATE_PATH_MAX + 32];
	char sha[65];
	uint64_t size = 0;
	snprintf(state, sizeof(state), "%s/state", dir);
	int rc = template_state_hash(NULL, state, sha, &size, e);
	if (rc < 0)
		return rc;
	json_t *m = json_pack("{s:i,s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:s,s:I,s:f,s:s}", "format",
			      VM_TEMPLATE_FORMAT, "key", t->key, "kernel", t->kernel, "initrd",
			      t->initrd, "root_image", t->root_image, "cpus", (int)t->cpus,
			      "memory_mib", (int)t->memory_mib, "state_bytes", (json_int_t)size,
			      "state_sha256", sha, "created", (json_int_t)time(NULL), "save_ms",
			      t->save_ms, "backend", t->backend[0] ? t->backend : "qemu");
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	rc = m && json_dump_file(m, path, JSON_INDENT(2)) == 0 ? 0 : -EIO;
	json_decref(m);
	if (rc < 0)
		return err_set(e, rc, "writing %s", path);
	int fd = open(state, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);   /* the rename that publishes it must not outrun the data */
		close(fd);
	}
	return 0;
}

static int template_check(const char *dir, struct vm_template *t, struct err *e)
{
	char want[65], got[65];
	int rc = template_read_manifest(dir, t, want, e);
	if (rc < 0)
		return rc;
	uint64_t size = 0;
	if ((rc = template_state_size(t->state, &size)) < 0)
		return err_set(e, -EBADMSG, "its state file is missing (%s)", strerror(-rc));
	if (size != t->state_bytes)
		return err_set(e, -EBADMSG, "its state file is truncated or grown: %llu bytes, the manifest says %llu",
			       (unsigned long long)size, (unsigned long long)t->state_bytes);
	/* Memoised like the inputs: a write to the file (a flipped byte, a
	 * truncation) changes its mtime and ctime, so it is hashed again. */
	char root[VM_TEMPLATE_PATH_MAX];
	snprintf(root, sizeof(root), "%s", dir);
	char *slash = strrchr(root, '/');
	if (slash)
		*slash = '\0';
	if ((rc = template_state_hash(root, t->state, got, NULL, e)) < 0)
		return rc;
	if (strcmp(want, got))
		return err_set(e, -EBADMSG, "its state file is corrupt (SHA-256 %.12s, the manifest says %.12s)",
			       got, want);
	return 0;
}

int vm_template_open(const struct vm_template_shape *s, struct vm_template *t, struct err *e)
{
	int rc = vm_template_key(s, t, e);
	if (rc < 0)
		return rc;
	char key[VM_TEMPLATE_KEY_LEN + 1], dir[sizeof(t->dir)];
	memcpy(key, t->key, sizeof(key));
	snprintf(dir, sizeof(dir), "%s", t->dir);
	if (access(dir, F_OK) < 0)
		return err_set(e, -ENOENT, "no template for this shape yet");
	if ((rc = template_check(dir, t, e)) < 0 || (strcmp(t->key, key) &&
	    (rc = err_set(e, -EBADMSG, "its manifest names another key")) < 0)) {
		if (rc == -ENOENT)
			rc = -EBADMSG;
		err_wrap(e, "template %.*s is unusable (hint: `ironclaw snapshot rm %.*s`, or `ironclaw snapshot prune`)",
			 VM_TEMPLATE_SHORT, key, VM_TEMPLATE_SHORT, key);
		e->code = rc;
		return rc;
	}
	return 0;
}

/* ---- housekeeping ---- */

static int template_is_key(const char *name)
{
	if (strlen(name) != VM_TEMPLATE_KEY_LEN)
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return 0;
	return 1;
}

static int template_remove_tree(const char *dir, int depth, struct err *e)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_set(e, -errno, "opening %s: %s", dir, strerror(errno));
	struct dirent *de;
	char p[VM_TEMPLATE_PATH_MAX + 300];
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		/* A template holds files, and its state may be a directory of files. */
		if (unlink(p) < 0 && (errno == EISDIR || errno == EPERM) && depth == 0)
			template_remove_tree(p, 1, NULL);
	}
	closedir(d);
	if (rmdir(dir) < 0)
		return err_set(e, -errno, "removing %s: %s", dir, strerror(errno));
	return 0;
}

static int template_remove_dir(const char *dir, struct err *e)
{
	return template_remove_tree(dir, 0, e);
}

int vm_template_remove_dir(const char *dir, struct err *e)
{
	return template_remove_dir(dir, e);
}

/* A template is stale when its recorded inputs no longer give its key. */
static int template_stale(const struct vm_template *t)
{
	struct vm_template now;
	struct err e = { 0 };
	struct vm_template_shape s = { t->kernel, t->initrd, t->cpus, t->memory_mib,
				       t->root_image[0] ? t->root_image : NULL, t->backend[0] ? t->backend : NULL };
	return vm_template_key(&s, &now, &e) < 0 || strcmp(now.key, t->key) != 0;
}

int vm_template_list(struct vm_template *out, size_t max, size_t *n, struct err *e)
{
	char root[4096];
	int rc = vm_template_root(root, sizeof(root), e);
	*n = 0;
	if (rc < 0)
		return rc;
	DIR *d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : err_set(e, -errno, "opening %s: %s", root, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!template_is_key(de->d_name))
			continue;
		struct vm_template t = { 0 };
		char sha[65], dir[4360];
		struct err me = { 0 };
		snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
		if (template_read_manifest(dir, &t, sha, &me) < 0) {
			memcpy(t.key, de->d_name, VM_TEMPLATE_KEY_LEN + 1);   /* a key: 64 characters */
			snprintf(t.dir, sizeof(t.dir), "%s", dir);
			t.stale = 1;
		} else {
			t.stale = strcmp(t.key, de->d_name) != 0 || template_stale(&t);
		}
		if (*n < max)
			out[*n] = t;
		(*n)++;
	}
	closedir(d);
	return 0;
}

int vm_template_remove(const char *prefix, char *removed_key, size_t len, struct err *e)
{
	char root[4096];
	int rc = vm_template_root(root, sizeof(root), e);
	if (rc < 0)
		return rc;
	size_t pl = strlen(prefix);
	if (pl < 4 || pl > VM_TEMPLATE_KEY_LEN)
		return err_set(e, -EINVAL, "give at least 4 characters of a key (see `ironclaw snapshot ls`)");
	DIR *d = opendir(root);
	if (!d)
		return err_set(e, -ENOENT, "no template matches %s (there are none)", prefix);
	struct dirent *de;
	char found[VM_TEMPLATE_KEY_LEN + 1] = "";
	int matches = 0;
	while ((de = readdir(d)))
		if (template_is_key(de->d_name) && !strncmp(de->d_name, prefix, pl)) {
			matches++;
			memcpy(found, de->d_name, VM_TEMPLATE_KEY_LEN + 1);
		}
	closedir(d);
	if (matches == 0)
		return err_set(e, -ENOENT, "no template matches %s (see `ironclaw snapshot ls`)", prefix);
	if (matches > 1)
		return err_set(e, -EEXIST, "%d templates match %s: give more of the key", matches, prefix);
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/%s", root, found);
	if ((rc = template_remove_dir(dir, e)) < 0)
		return rc;
	snprintf(removed_key, len, "%s", found);
	return 0;
}

int vm_template_prune(unsigned *removed, struct err *e)
{
	char root[4096];
	int rc = vm_template_root(root, sizeof(root), e);
	*removed = 0;
	if (rc < 0)
		return rc;
	DIR *d = opendir(root);
	if (!d)
		return errno == ENOENT ? 0 : err_set(e, -errno, "opening %s: %s", root, strerror(errno));
	struct dirent *de;
	char dir[VM_TEMPLATE_PATH_MAX + 300];
	while ((de = readdir(d))) {
		struct vm_template t = { 0 };
		char sha[65];
		struct err me = { 0 };
		snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
		int drop;
		if (!strncmp(de->d_name, ".build-", 7)) {
			/* an interrupted build, unless its builder still runs */
			int pid = atoi(de->d_name + 7);
			drop = pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH);
		} else if (template_is_key(de->d_name)) {
			drop = template_read_manifest(dir, &t, sha, &me) < 0 ||
			       strcmp(t.key, de->d_name) != 0 || template_stale(&t);
		} else {
			continue;
		}
		if (drop && template_remove_dir(dir, e) == 0)
			(*removed)++;
		err_clear(e);
	}
	closedir(d);
	return 0;
}
