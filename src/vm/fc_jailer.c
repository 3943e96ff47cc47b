/* Launching Firecracker through its own jailer (fc_jailer.h).
 *
 * Our jail still does all it does for any VMM (namespaces, a minimal root,
 * cgroups and rlimits, the VM's netns, no_new_privs, a seccomp filter loaded
 * before exec), except the privilege drop: the jailer needs root for its
 * setup and drops to --uid/--gid itself, the uid and gid our jail would have
 * used. The filter loaded before the jailer stays in force on Firecracker:
 * ours for Firecracker plus the jailer's setup calls (fc_seccomp.c), with
 * Firecracker's own per-thread filters (or --seccomp-filter's) on top.
 *
 * Firecracker's jailer documents (docs/jailer.md in its source): it makes
 * <chroot-base>/<exec-file name>/<id>/root, copies the exec file in, joins
 * --netns by its path (before the chroot: so the VM's netns file is bound
 * into our jail), pivot_roots there, makes /dev/kvm and /dev/net/tun, drops
 * to --uid/--gid and execs the copy with --id and what follows `--`. Its
 * chroot is a non-recursive bind of that directory, so no bind of ours
 * reaches inside: the files Firecracker opens by path are hard links (or
 * copies, across filesystems) in the chroot's /vm, and the paths it is given
 * are the ones our own jail would give it (/run/vm/..., /vm/...), so the
 * API requests are the same either way. The chroot base is the VM
 * directory, so removing the VM directory removes the chroot.
 *
 * Not passed: --daemonize (the launcher keeps the process's stderr and
 * watches its pid, which the jailer keeps across exec), --new-pid-ns (our
 * jail made a PID namespace), --cgroup and --node (our jail's cgroup has
 * the VM's limits; without them the jailer creates no cgroup of its own, so
 * --parent-cgroup and --cgroup-version name where it would). */
#include "vm/fc_jailer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"
#include "jail/jail.h"
#include "vm/fc_seccomp.h"

#define FC_JAILER_OVERHEAD_MIB 160   /* Firecracker's overhead plus the copied binary in tmpfs */
#define FC_JAILER_FILTER_MAX (1u << 20)
#define FC_JAILER_COPY_CHUNK (1u << 20)

int fc_jailer_find(char *out, size_t n, struct err *e)
{
	const char *conf = getenv("IRONCLAW_FC_JAILER");
	out[0] = '\0';
	if (!conf || !conf[0])
		return -ENOENT;
	if (conf[0] != '/' || (size_t)snprintf(out, n, "%s", conf) >= n)
		return err_set(e, -EINVAL, "the jailer must be an absolute path (--jailer or IRONCLAW_FC_JAILER): %.200s",
			       conf);
	if (access(out, X_OK) < 0)
		return err_set(e, -errno, "cannot run the jailer %.200s: %s (hint: --jailer PATH to Firecracker's "
			       "jailer binary from the same release as firecracker)", out, strerror(errno));
	return 0;
}

int fc_jailer_root(const char *vm_dir, const char *fc_bin, const char *id, char *out, size_t n)
{
	const char *name = strrchr(fc_bin, '/');
	name = name ? name + 1 : fc_bin;
	int len = snprintf(out, n, "%s/%s/%s/root", vm_dir, name, id);
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

static int fc_jailer_arg(struct vm_launch_plan *p, size_t *used, size_t *argc, const char *a, struct err *e)
{
	size_t len = strlen(a) + 1;
	if (*used + len > sizeof(p->store) || *argc + 1 >= VM_PLAN_ARGV_MAX)
		return err_set(e, -E2BIG, "the jailer's command line is too long");
	memcpy(p->store + *used, a, len);
	p->argv[(*argc)++] = p->store + *used;
	p->argv[*argc] = NULL;
	*used += len;
	return 0;
}

static int fc_jailer_mkdirs(const char *path, mode_t mode)
{
	char p[PATH_MAX];
	if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		if (!c)
			return 0;
		*s = c;
	}
}

/* A hard link where both are on one filesystem (no bytes move), else a copy;
 * the result is ours and 0644: the VMM's uid reads it, nobody writes it. */
static int fc_jailer_link_or_copy(const char *from, const char *to, uint64_t max, struct err *e)
{
	unlink(to);
	if (link(from, to) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return err_set(e, -errno, "linking %s into the jailer's chroot: %s", from, strerror(errno));
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return err_set(e, -errno, "%s: %s", from, strerror(errno));
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		int rc = -errno;
		close(in);
		return err_set(e, rc, "%s: %s", to, strerror(-rc));
	}
	char *buf = malloc(FC_JAILER_COPY_CHUNK);
	int rc = buf ? 0 : err_set(e, -ENOMEM, "out of memory copying %s", from);
	uint64_t total = 0;
	while (rc == 0) {
		ssize_t n = read(in, buf, FC_JAILER_COPY_CHUNK);
		if (n == 0)
			break;
		if (n < 0 || (total += (uint64_t)n) > max || io_write_all(out, buf, (size_t)n) < 0)
			rc = err_set(e, n < 0 || total <= max ? -errno : -EFBIG, "copying %s into the jailer's chroot: %s",
				     from, total > max ? "too large" : strerror(errno));
	}
	free(buf);
	close(in);
	close(out);
	if (rc < 0)
		unlink(to);
	return rc;
}

int fc_jailer_plan(const struct vm_backend_spec *spec, const char *jailer, const char *fc_bin,
		   const char *filter, struct vm_launch_plan *plan, struct err *e)
{
	memset(plan, 0, sizeof(*plan));
	struct jail_names names;
	int rc;
	if ((rc = jail_names_make(spec->id, &names, e)) < 0)
		return rc;
	char uid[16], gid[16], root[PATH_MAX];
	snprintf(uid, sizeof(uid), "%u", (unsigned)names.uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)names.gid);
	/* No --cgroup is passed, so this only names the hierarchy it would use. */
	struct stat st;
	const char *cgv = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0 ? "2" : "1";
	size_t used = 0, argc = 0;
	const char *head[] = { jailer, "--id", spec->id, "--exec-file", fc_bin, "--uid", uid, "--gid", gid,
			       "--chroot-base-dir", FC_JAILER_BASE, "--cgroup-version", cgv,
			       "--parent-cgroup", "ironclaw" };
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		if ((rc = fc_jailer_arg(plan, &used, &argc, head[i], e)) < 0)
			return rc;
	if (spec->tap_fd >= 0 && ((rc = fc_jailer_arg(plan, &used, &argc, "--netns", e)) < 0 ||
				  (rc = fc_jailer_arg(plan, &used, &argc, names.netns_path, e)) < 0))
		return rc;
	/* Firecracker's own options; the jailer adds --id. Paths are the chroot's. */
	const char *tail[] = { "--", "--api-sock", "/run/vm/fc.sock", filter ? "--seccomp-filter" : NULL,
			       "/vm/seccomp.bpf" };
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]) && tail[i]; i++)
		if ((rc = fc_jailer_arg(plan, &used, &argc, tail[i], e)) < 0)
			return rc;
	plan->binds[plan->n_binds++] = (struct jail_bind){ fc_bin, fc_bin, 0 };
	plan->binds[plan->n_binds++] = (struct jail_bind){ spec->dir, FC_JAILER_BASE, 1 };
	if (spec->tap_fd >= 0)
		plan->binds[plan->n_binds++] = (struct jail_bind){ names.netns_path, names.netns_path, 0 };
	plan->tap_by_name = spec->tap_fd >= 0;
	plan->vmm_drops_privileges = 1;
	plan->seccomp = fc_seccomp_jailer_policy();
	plan->memory_max_bytes = (uint64_t)(spec->memory_mib + FC_JAILER_OVERHEAD_MIB) << 20;
	plan->fsize_max_bytes = (uint64_t)(spec->memory_mib + 64) << 20;
	plan->cpu_percent = spec->cpus * 100;
	if (!filter)
		return 0;
	/* Firecracker reads its filter as it starts, before any request of ours:
	 * it must be in the chroot before the jailer runs. */
	char vm[PATH_MAX + 16], to[PATH_MAX + 32];
	if (fc_jailer_root(spec->dir, fc_bin, spec->id, root, sizeof(root)) < 0)
		return err_set(e, -ENAMETOOLONG, "the jailer's chroot path is too long");
	snprintf(vm, sizeof(vm), "%s/vm", root);
	snprintf(to, sizeof(to), "%s/seccomp.bpf", vm);
	if ((rc = jail_prepare_dir(&names, e)) < 0)
		return rc;
	if ((rc = fc_jailer_mkdirs(vm, 0755)) < 0)
		return err_set(e, rc, "creating %s: %s", vm, strerror(-rc));
	return fc_jailer_link_or_copy(filter, to, FC_JAILER_FILTER_MAX, e);
}

/* ---- the chroot's files, on the pool ---- */

struct fc_jailer_place {
	uv_work_t work;
	int cancelled;
	fc_jailer_place_cb done;
	void *ctx;
	uid_t uid;
	gid_t gid;
	char root[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], snapshot[PATH_MAX];
	struct err e;
};

static void fc_jailer_place_run(uv_work_t *w)
{
	struct fc_jailer_place *p = w->data;
	char d[PATH_MAX + 32], f[PATH_MAX + 96], s[PATH_MAX + 64];
	int rc;
	snprintf(d, sizeof(d), "%s/run/vm", p->root);
	if ((rc = fc_jailer_mkdirs(d, 0700)) < 0 || chown(d, p->uid, p->gid) < 0) {
		err_set(&p->e, rc < 0 ? rc : -errno, "creating %s: %s", d, strerror(rc < 0 ? -rc : errno));
		return;
	}
	snprintf(d, sizeof(d), "%s/vm", p->root);
	if ((rc = fc_jailer_mkdirs(d, 0755)) < 0) {
		err_set(&p->e, rc, "creating %s: %s", d, strerror(-rc));
		return;
	}
	snprintf(f, sizeof(f), "%s/kernel", d);
	if (fc_jailer_link_or_copy(p->kernel, f, UINT64_MAX, &p->e) < 0)
		return;
	snprintf(f, sizeof(f), "%s/initramfs.cpio", d);
	if (fc_jailer_link_or_copy(p->initrd, f, UINT64_MAX, &p->e) < 0 || !p->snapshot[0])
		return;
	snprintf(s, sizeof(s), "%s/snapshot", d);
	if (mkdir(s, 0755) < 0 && errno != EEXIST) {
		err_set(&p->e, -errno, "creating %s: %s", s, strerror(errno));
		return;
	}
	static const char *const parts[] = { "vmstate", "mem" };
	for (size_t i = 0; i < 2; i++) {
		char from[PATH_MAX + 16];
		snprintf(from, sizeof(from), "%s/%s", p->snapshot, parts[i]);
		snprintf(f, sizeof(f), "%s/%s", s, parts[i]);
		if (fc_jailer_link_or_copy(from, f, UINT64_MAX, &p->e) < 0)
			return;
	}
}

static void fc_jailer_place_after(uv_work_t *w, int status)
{
	struct fc_jailer_place *p = w->data;
	(void)status;
	if (!p->cancelled && p->done)
		p->done(p->ctx, p->e.code ? &p->e : NULL);
	free(p);
}

int fc_jailer_place_start(uv_loop_t *loop, const char *root, uid_t uid, gid_t gid, const char *kernel,
			  const char *initrd, const char *snapshot_dir, fc_jailer_place_cb done, void *ctx,
			  struct fc_jailer_place **out, struct err *e)
{
	struct fc_jailer_place *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	p->done = done;
	p->ctx = ctx;
	p->uid = uid;
	p->gid = gid;
	p->work.data = p;
	snprintf(p->root, sizeof(p->root), "%s", root);
	snprintf(p->kernel, sizeof(p->kernel), "%s", kernel);
	snprintf(p->initrd, sizeof(p->initrd), "%s", initrd);
	snprintf(p->snapshot, sizeof(p->snapshot), "%s", snapshot_dir ? snapshot_dir : "");
	int rc = uv_queue_work(loop, &p->work, fc_jailer_place_run, fc_jailer_place_after);
	if (rc < 0) {
		free(p);
		return err_set(e, rc, "queueing the jailer's files: %s", uv_strerror(rc));
	}
	*out = p;
	return 0;
}

void fc_jailer_place_cancel(struct fc_jailer_place *p)
{
	if (p)
		p->cancelled = 1;
}
