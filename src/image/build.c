/* `ironclaw image build`: a Debian root from packages, as a content-addressed
 * ext4 image.
 *
 *   resolve   mmdebstrap --simulate: apt's full package closure with versions
 *             (about 4 s); with the injected files it gives the image id, and
 *             an id already in the store is reused without building
 *   download, install   mmdebstrap in unshare mode: maintainer scripts run as
 *             root only inside a user namespace, never as the host's root
 *   pack      a customize hook, still inside that namespace (so owners are
 *             the image's own), injects the guest agent and the overlay
 *             module and runs `mkfs.ext4 -d` on a non-recursive bind of the
 *             root (the root has /proc, /sys and /dev mounted at that point)
 *
 * The id is recomputed from what dpkg says is installed after the build: if
 * the mirror moved between the two steps, the image is stored under the id of
 * what it really holds. Progress lines come from mmdebstrap's own "I:" lines. */
#include "image/image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/io.h"

#define BUILD_LIST_MAX (256u * 1024)
#define BUILD_ARG_MAX 8192

/* Runs in mmdebstrap's namespace with $1 = the root. `set -e`: any failure
 * fails the build. The apt lists and .debs are still there at hook time and
 * would be a third of the image. */
static const char build_hook[] =
	"set -e\n"
	"d=$(mktemp -d)\n"
	"mount --bind \"$1\" \"$d\"\n"
	"rm -rf \"$d\"/var/cache/apt/archives/*.deb \"$d\"/var/lib/apt/lists/* \"$d\"/var/cache/apt/*.bin \"$d\"/var/log/*.log\n"
	"mkdir -p \"$d/usr/lib/ironclaw\" \"$d/workspace\"\n"
	"cp \"$IRONCLAW_HOOK_GUEST\" \"$d/usr/lib/ironclaw/ironclaw-guest\"\n"
	"cp \"$IRONCLAW_HOOK_OVERLAY\" \"$d/usr/lib/ironclaw/overlay.ko\"\n"
	"echo ironclaw >\"$d/etc/hostname\"\n"
	"chroot \"$d\" dpkg-query -W -f '${Package}=${Version}\\n' | LC_ALL=C sort >\"$IRONCLAW_HOOK_OUT.versions\"\n"
	"s=$(du -sm \"$d\" | cut -f1)\n"
	"size=${IRONCLAW_HOOK_SIZE_MIB:-$((s + s / 4 + 64))}\n"
	"echo \"I: ironclaw: packing $s MiB into a $size MiB ext4 image\"\n"
	"mkfs.ext4 -q -F -L ironclaw -E root_owner=0:0 -d \"$d\" \"$IRONCLAW_HOOK_OUT\" \"${size}M\"\n"
	"umount \"$d\"\n"
	"rmdir \"$d\"\n";

struct image_build {
	uv_loop_t *loop;
	image_done_cb done;
	void *ctx;
	int progress;
	char name[IMAGE_NAME_MAX + 1];
	char suite[64];
	char sources[IMAGE_PATH_MAX];
	char include[BUILD_ARG_MAX];      /* --include=p1,p2 (sorted, deduplicated) */
	json_t *packages;                 /* the requested names, sorted */
	unsigned size_mib;
	struct image_inject inject;
	struct buf resolved;              /* "name=version\n", as apt resolved them */
	size_t n_resolved;
	char id[IMAGE_ID_HEX + 1];
	char tmp[IMAGE_PATH_MAX];
	char out[IMAGE_PATH_MAX + 32];
	char download[64];
	int phase;
	uint64_t t0;
};

enum { PHASE_RESOLVE, PHASE_DOWNLOAD, PHASE_INSTALL, PHASE_PACK };
static const char *const build_phase_names[] = { "resolve", "download", "install", "pack" };

static double build_elapsed(struct image_build *b)
{
	uv_update_time(b->loop);
	return (double)(uv_now(b->loop) - b->t0) / 1000.0;
}

static void build_say(struct image_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void build_say(struct image_build *b, const char *fmt, ...)
{
	if (!b->progress)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "image %s: [%5.1f s] ", b->name, build_elapsed(b));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void build_free(struct image_build *b)
{
	json_decref(b->packages);
	buf_free(&b->resolved);
	free(b);
}

static void build_finish(struct image_build *b, const struct image_info *info, const struct err *e)
{
	if (b->tmp[0])
		image_store_rmtree(b->tmp);
	b->done(b->ctx, info, e);
	build_free(b);
}

static void build_fail(struct image_build *b, const struct err *e)
{
	build_finish(b, NULL, e);
}

/* Turns mmdebstrap's last lines into a message that says what to do. */
static int build_diagnose(struct image_build *b, const char *what, int status, const char *tail,
			  struct err *e)
{
	const char *p;
	static const char *const unreachable[] = {
		"Temporary failure resolving", "Could not resolve", "Failed to fetch", "Unable to connect",
		"Could not connect", "Connection failed", "Connection refused", "No route to host",
		"does not have a Release file",
	};
	if ((p = strstr(tail, "Unable to locate package ")) || (p = strstr(tail, "E: Package '"))) {
		char pkg[128] = "";
		const char *s = p[0] == 'U' ? p + strlen("Unable to locate package ") : p + strlen("E: Package '");
		size_t n = strcspn(s, "' \n");
		snprintf(pkg, sizeof(pkg), "%.*s", (int)(n < sizeof(pkg) ? n : sizeof(pkg) - 1), s);
		return err_set(e, -ENOENT,
			       "package '%s' does not exist in %s (hint: check its name with `apt-cache policy %s`; packages come from %s)",
			       pkg, b->suite, pkg, b->sources);
	}
	for (size_t i = 0; i < sizeof(unreachable) / sizeof(unreachable[0]); i++)
		if (strstr(tail, unreachable[i]))
			return err_set(e, -EHOSTUNREACH,
				       "cannot reach the Debian mirror named in %s (hint: check the network and that file's URIs; `apt-get update` shows the same error): %.300s",
				       b->sources, strstr(tail, unreachable[i]));
	size_t tl = strlen(tail);
	const char *last = tl > 400 ? tail + tl - 400 : tail;
	if (status < 0)
		return err_set(e, status, "%s could not start", what);
	return err_set(e, -EIO, "%s failed (exit %d): %s", what, status, last);
}

/* "Inst NAME (VERSION Debian:..." from apt's simulation. */
static void build_on_resolve_line(void *ctx, const char *line, size_t len)
{
	struct image_build *b = ctx;
	if (len < 6 || strncmp(line, "Inst ", 5))
		return;
	const char *name = line + 5;
	const char *sp = memchr(name, ' ', len - 5);
	if (!sp || (size_t)(sp - line) + 2 >= len || sp[1] != '(')
		return;
	const char *ver = sp + 2;
	size_t vlen = strcspn(ver, " )");
	char entry[512];
	int n = snprintf(entry, sizeof(entry), "%.*s=%.*s\n", (int)(sp - name), name, (int)vlen, ver);
	if (n > 0 && (size_t)n < sizeof(entry) && buf_append(&b->resolved, entry, (size_t)n) == 0)
		b->n_resolved++;
}

static int build_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the lines of text ("\n"-separated, room for a terminator) in place
 * and drops repeats: apt's simulation lists the essential set twice. Returns
 * the number of distinct lines. */
static size_t build_sort_lines(char *text, size_t len)
{
	size_t n = 0, kept = 0;
	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	char **lines = calloc(n + 1, sizeof(char *));
	char *copy = malloc(len + 1);
	if (!lines || !copy)
		goto out;
	memcpy(copy, text, len);
	copy[len] = '\0';
	size_t k = 0;
	for (char *save = NULL, *t = strtok_r(copy, "\n", &save); t && k < n; t = strtok_r(NULL, "\n", &save))
		lines[k++] = t;
	qsort(lines, k, sizeof(char *), build_cmp);
	size_t at = 0;
	for (size_t i = 0; i < k; i++) {
		if (i > 0 && !strcmp(lines[i], lines[i - 1]))
			continue;
		kept++;
		size_t l = strlen(lines[i]);
		memcpy(text + at, lines[i], l);
		text[at + l] = '\n';
		at += l + 1;
	}
	text[at] = '\0';
out:
	free(lines);
	free(copy);
	return kept;
}

/* The id: every input, in a fixed order, hashed. */
static void build_id(struct image_build *b, const char *resolved, char id[IMAGE_ID_HEX + 1])
{
	char hook_sha[IMAGE_ID_HEX + 1];
	image_sha256_text(build_hook, sizeof(build_hook) - 1, hook_sha);
	char *pk = json_dumps(b->packages, JSON_COMPACT);
	struct buf t = { 0 };
	buf_init(&t, 1u << 20);
	buf_printf(&t, "ironclaw-image-v1\nsource=mmdebstrap minbase\nsuite=%s\nsize_mib=%u\npackages=%s\n"
		       "guest=%s\noverlay=%s\nhook=%s\nresolved:\n%s",
		   b->suite, b->size_mib, pk ? pk : "", b->inject.guest_sha, b->inject.overlay_sha, hook_sha,
		   resolved);
	image_sha256_text((const char *)t.data, t.len, id);
	free(pk);
	buf_free(&t);
}

static json_t *build_meta(struct image_build *b, const char *versions)
{
	json_t *m = json_object();
	json_t *res = json_array();
	char *copy = strdup(versions);
	for (char *save = NULL, *t = copy ? strtok_r(copy, "\n", &save) : NULL; t; t = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(t, '=');
		if (!eq)
			continue;
		*eq = '\0';
		json_array_append_new(res, json_pack("{s:s,s:s}", "package", t, "version", eq + 1));
	}
	free(copy);
	char created[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(m, "source", json_string("mmdebstrap"));
	json_object_set_new(m, "suite", json_string(b->suite));
	json_object_set_new(m, "sources", json_string(b->sources));
	json_object_set_new(m, "packages", json_incref(b->packages));
	json_object_set_new(m, "resolved", res);
	json_object_set_new(m, "guest_sha256", json_string(b->inject.guest_sha));
	json_object_set_new(m, "overlay_sha256", json_string(b->inject.overlay_sha));
	json_object_set_new(m, "created", json_string(created));
	json_object_set_new(m, "build_seconds", json_real(build_elapsed(b)));
	return m;
}

static void build_enter(struct image_build *b, int phase, const char *extra)
{
	if (phase <= b->phase && phase != PHASE_RESOLVE)
		return;
	b->phase = phase;
	build_say(b, "%s%s%s", build_phase_names[phase], extra ? ": " : "", extra ? extra : "");
}

static void build_on_build_line(void *ctx, const char *line, size_t len)
{
	struct image_build *b = ctx;
	const char *p;
	(void)len;
	if (!strncmp(line, "I: downloading packages", 23)) {
		build_enter(b, PHASE_DOWNLOAD, NULL);
	} else if ((p = strstr(line, "Need to get ")) && b->phase >= PHASE_DOWNLOAD) {
		/* apt downloads twice (the essential set, then the rest): both show. */
		size_t n = strcspn(p + 12, " ");
		char size[64];
		snprintf(size, sizeof(size), "%.*s %.*s", (int)(n < 20 ? n : 20), p + 12, 2,
			 p + 12 + n + (p[12 + n] ? 1 : 0));
		build_say(b, "download: %s of archives", size);
	} else if (!strncmp(line, "I: extracting archives", 22) || !strncmp(line, "I: installing", 13)) {
		build_enter(b, PHASE_INSTALL, NULL);
	} else if (!strncmp(line, "I: ironclaw: packing ", 21)) {
		build_enter(b, PHASE_PACK, line + 21);
	}
}

static void build_on_built(void *ctx, int status, const char *tail)
{
	struct image_build *b = ctx;
	struct err e = { 0 };
	struct image_info info;
	char versions_path[IMAGE_PATH_MAX + 64], id[IMAGE_ID_HEX + 1];
	char *versions = NULL;
	size_t vlen = 0;
	if (status != 0) {
		build_diagnose(b, "mmdebstrap", status, tail, &e);
		build_fail(b, &e);
		return;
	}
	snprintf(versions_path, sizeof(versions_path), "%s.versions", b->out);
	if (io_read_file(versions_path, BUILD_LIST_MAX, &versions, &vlen) < 0 ||
	    image_check_file(b->out, &e) < 0) {
		if (!e.code)
			err_set(&e, -EIO, "the build left no package list at %s", versions_path);
		build_fail(b, &e);
		free(versions);
		return;
	}
	unlink(versions_path);
	build_sort_lines(versions, vlen);
	build_id(b, versions, id);
	json_t *meta = build_meta(b, versions);
	free(versions);
	int rc = image_store_publish(b->tmp, b->name, id, meta, &info, &e);
	json_decref(meta);
	if (rc < 0) {
		build_fail(b, &e);
		return;
	}
	b->tmp[0] = '\0';
	if (strcmp(id, b->id))
		image_store_key_set(b->id, id, NULL);
	build_say(b, "done: %s, %.1f MiB, id %.12s", info.path, (double)info.bytes / 1048576.0, info.id);
	build_finish(b, &info, NULL);
	image_info_free(&info);
}

static void build_start_mmdebstrap(struct image_build *b)
{
	struct err e = { 0 };
	char hook_arg[sizeof(build_hook) + 64];
	char env_guest[IMAGE_PATH_MAX + 32], env_overlay[IMAGE_PATH_MAX + 32], env_out[IMAGE_PATH_MAX + 64];
	char env_size[64];
	if (image_store_tmpdir(b->tmp, sizeof(b->tmp), &e) < 0) {
		build_fail(b, &e);
		return;
	}
	/* The hook's root is mapped, not the host's: it must be able to write here. */
	chmod(b->tmp, 0777);
	snprintf(b->out, sizeof(b->out), "%s/rootfs.ext4", b->tmp);
	snprintf(hook_arg, sizeof(hook_arg), "--customize-hook=%s", build_hook);
	snprintf(env_guest, sizeof(env_guest), "IRONCLAW_HOOK_GUEST=%s", b->inject.guest);
	snprintf(env_overlay, sizeof(env_overlay), "IRONCLAW_HOOK_OVERLAY=%s", b->inject.overlay);
	snprintf(env_out, sizeof(env_out), "IRONCLAW_HOOK_OUT=%s", b->out);
	snprintf(env_size, sizeof(env_size), "IRONCLAW_HOOK_SIZE_MIB=%u", b->size_mib);
	char *env[] = { env_guest, env_overlay, env_out, b->size_mib ? env_size : NULL, NULL };
	char *argv[] = {
		"mmdebstrap", "--mode=unshare", "--variant=minbase", "--format=null", "--verbose",
		b->include,
		/* Documentation and translations are a quarter of a minbase root and
		 * of no use to an agent. */
		"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
		hook_arg, b->suite, "/dev/null", b->sources, NULL,
	};
	if (!b->include[0])
		memmove(&argv[5], &argv[6], sizeof(argv) - 6 * sizeof(argv[0]));
	if (image_proc_start(b->loop, argv, env, build_on_build_line, build_on_built, b, NULL, &e) < 0)
		build_fail(b, &e);
}

static void build_on_resolved(void *ctx, int status, const char *tail)
{
	struct image_build *b = ctx;
	struct err e = { 0 };
	struct image_info info;
	if (status != 0 || b->n_resolved == 0) {
		build_diagnose(b, "resolving the packages (mmdebstrap --simulate)", status, tail, &e);
		build_fail(b, &e);
		return;
	}
	/* A terminator for the text (counted out of len again). */
	if (buf_append(&b->resolved, "", 1) < 0) {
		err_set(&e, -E2BIG, "apt resolved too many packages");
		build_fail(b, &e);
		return;
	}
	b->resolved.len--;
	b->n_resolved = build_sort_lines((char *)b->resolved.data, b->resolved.len);
	b->resolved.len = strlen((char *)b->resolved.data);
	build_id(b, (const char *)b->resolved.data, b->id);
	build_say(b, "resolve: %zu packages (key %.12s)", b->n_resolved, b->id);
	char known[IMAGE_ID_HEX + 1];
	int rc = image_store_reuse(b->name, b->id, &info, &e);
	if (rc == -ENOENT && image_store_key_get(b->id, known) == 0)
		rc = image_store_reuse(b->name, known, &info, &e);
	if (rc == 0) {
		build_say(b, "cached: %s (same inputs, nothing to build)", info.path);
		build_finish(b, &info, NULL);
		image_info_free(&info);
		return;
	}
	if (rc != -ENOENT) {
		build_fail(b, &e);
		return;
	}
	build_start_mmdebstrap(b);
}

static int build_pkg_valid(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > 100)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && strchr("+-.", c))))
			return 0;
	}
	return 1;
}

int image_build_start(uv_loop_t *loop, const struct image_build_spec *s, image_done_cb done,
		      void *ctx, struct err *e)
{
	int rc;
	if (!image_name_valid(s->name))
		return err_set(e, -EINVAL, "'%s' is not an image name (hint: lower-case letters, digits, '.', '_', '-'; at most %d)",
			       s->name, IMAGE_NAME_MAX);
	const char *suite = s->suite ? s->suite : IMAGE_DEFAULT_SUITE;
	if (!build_pkg_valid(suite) || strlen(suite) >= 64)
		return err_set(e, -EINVAL, "'%s' is not a Debian suite name (hint: bookworm)", suite);
	const char *sources = s->sources ? s->sources : IMAGE_DEFAULT_SOURCES;
	if (access(sources, R_OK) < 0)
		return err_set(e, -errno, "cannot read the apt sources %s: %s (hint: pass --sources FILE, a sources.list or deb822 .sources file)",
			       sources, strerror(errno));
	struct image_build *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(e, -ENOMEM, "out of memory");
	b->loop = loop;
	b->done = done;
	b->ctx = ctx;
	b->progress = s->progress;
	b->size_mib = s->size_mib;
	snprintf(b->name, sizeof(b->name), "%s", s->name);
	snprintf(b->suite, sizeof(b->suite), "%s", suite);
	snprintf(b->sources, sizeof(b->sources), "%s", sources);
	buf_init(&b->resolved, BUILD_LIST_MAX);
	b->packages = json_array();
	const char *sorted[IMAGE_PACKAGES_MAX];
	size_t n = 0;
	for (size_t i = 0; i < s->n_packages && i < IMAGE_PACKAGES_MAX; i++) {
		if (!build_pkg_valid(s->packages[i])) {
			rc = err_set(e, -EINVAL, "'%s' is not a Debian package name", s->packages[i]);
			goto fail;
		}
		sorted[n++] = s->packages[i];
	}
	qsort(sorted, n, sizeof(sorted[0]), build_cmp);
	size_t at = (size_t)snprintf(b->include, sizeof(b->include), "--include=");
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && !strcmp(sorted[i], sorted[i - 1]))
			continue;
		json_array_append_new(b->packages, json_string(sorted[i]));
		int w = snprintf(b->include + at, sizeof(b->include) - at, "%s%s",
				 json_array_size(b->packages) > 1 ? "," : "", sorted[i]);
		if (w < 0 || (size_t)w >= sizeof(b->include) - at) {
			rc = err_set(e, -E2BIG, "package list too long");
			goto fail;
		}
		at += (size_t)w;
	}
	if (n == 0)
		b->include[0] = '\0';
	if ((rc = image_inject_find(&b->inject, e)) < 0)
		goto fail;
	uv_update_time(loop);
	b->t0 = uv_now(loop);
	build_enter(b, PHASE_RESOLVE, n ? b->include + 10 : "minbase only");
	char *argv[] = { "mmdebstrap", "--mode=unshare", "--variant=minbase", "--format=null",
			 "--simulate", "--verbose", b->include, b->suite, "/dev/null", b->sources, NULL };
	if (!b->include[0])
		memmove(&argv[6], &argv[7], sizeof(argv) - 7 * sizeof(argv[0]));
	if ((rc = image_proc_start(loop, argv, NULL, build_on_resolve_line, build_on_resolved, b, NULL, e)) < 0)
		goto fail;
	return 0;
fail:
	build_free(b);
	return rc;
}
