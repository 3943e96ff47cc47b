/* The Firecracker backend (see backend.h): Firecracker in our jail, configured
 * over its API socket (fc_api.c), its guest channel a vsock connection through
 * the hybrid Unix socket (vsock_connect.c), its process-wide seccomp filter
 * ours (fc_seccomp.c) with Firecracker's own per-thread filters on top.
 *
 * Starting is `connect`: wait for the API socket, configure (or restore) in
 * the documented order, InstanceStart, then connect to the guest agent's vsock
 * port. Firecracker's death during any of it reaches vm.c through the
 * launcher's pidfd on the same loop, with the log tail (Firecracker's logger
 * writes to the VM's console.log, which vm.c quotes); an API connection error
 * is held back for FC_DEATH_GRACE_MS so that the exit, which explains it
 * better, is what the user reads.
 *
 * Every file Firecracker writes is in the per-VM directory, which the jail
 * removes. Snapshots through vm.h work as QEMU's do: vm_snapshot_save(path)
 * leaves the guest paused and a new directory at path holding vmstate and
 * mem (Firecracker writes them into the VM directory, the pool moves them
 * out); vm_options.restore_from names such a directory, bound read-only into
 * the jail and loaded before any other configuration.
 *
 * With Firecracker's jailer configured (fc_jailer.c) the jail starts the
 * jailer, which starts Firecracker in a chroot inside the VM directory; the
 * host side of every path then lies in that chroot, and its files are put
 * there on the pool before the API socket is awaited. */
#include "vm/fc_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"
#include "vm/accel.h"
#include "vm/fc_api.h"
#include "vm/fc_jailer.h"
#include "vm/fc_seccomp.h"
#include "vm/launch.h"
#include "vm/qemu.h"
#include "vm/unix_connect.h"
#include "vm/vsock_connect.h"

/* Guest RAM plus what Firecracker itself needs. */
#define FC_VMM_OVERHEAD_MIB 128
#define FC_DEATH_GRACE_MS 200
#define FC_GUEST_CID 3
/* In-jail paths (the VM directory is /run/vm, as for QEMU). */
#define FC_JAIL_DIR "/run/vm"
#define FC_JAIL_API FC_JAIL_DIR "/fc.sock"
#define FC_JAIL_VSOCK FC_JAIL_DIR "/v.sock"
#define FC_JAIL_LOG FC_JAIL_DIR "/console.log"
#define FC_JAIL_METRICS FC_JAIL_DIR "/metrics.json"
#define FC_JAIL_KERNEL "/vm/kernel"
#define FC_JAIL_INITRD "/vm/initramfs.cpio"
#define FC_JAIL_FILTER "/vm/seccomp.bpf"
#define FC_JAIL_SNAPSHOT "/vm/snapshot"
/* Where Firecracker writes a snapshot before it is moved to the caller's path. */
#define FC_SAVE_SUBDIR "snapshot-save"
#define FC_SAVE_CHUNK (1u << 20)
/* A saved snapshot is ours and read-only to everyone else: a restore binds
 * the directory into a jail whose VMM runs as another, per-VM uid, and
 * Firecracker opens vmstate and mem by path. Keep it under a private
 * directory (templates live under a 0700 one), which the bind bypasses. */
#define FC_SNAP_DIR_MODE 0755
#define FC_SNAP_FILE_MODE 0644

enum fc_phase { FC_IDLE, FC_WAIT_API, FC_CONFIGURING, FC_VSOCK, FC_DONE };

struct fc_state {
	uv_loop_t *loop;
	enum fc_phase phase;
	struct unix_connect *api_wait;
	struct fc_api *api;
	struct vsock_connect *vsock;
	uv_timer_t grace;
	int grace_init;
	struct err pending;
	vm_connect_cb done;
	void *ctx;
	uint64_t deadline;
	unsigned cpus, memory_mib;
	char dir[PATH_MAX - 64];   /* the host side of Firecracker's /run/vm */
	char api_path[PATH_MAX], vsock_path[PATH_MAX];
	char boot_args[1200];
	/* Firecracker's jailer: the chroot (host path), what goes into it. */
	int jailer;
	char chroot_root[PATH_MAX - 128];
	char kernel[PATH_MAX], initrd[PATH_MAX];
	uid_t uid;
	gid_t gid;
	struct fc_jailer_place *place;
	unsigned connect_ms;
	int net;             /* a NIC: JAIL_TAP_NAME in the VM's netns */
	char guest_mac[18];
	/* A restore (snapshot_load before connect). */
	char restore_dir[PATH_MAX];
	vm_backend_cb restore_done;
	void *restore_ctx;
	/* A pause/resume/snapshot in flight. */
	vm_backend_cb op_done;
	void *op_ctx;
	/* A saved snapshot being moved out of the VM directory on the pool. */
	struct fc_save_job *save_job;
	char save_to[PATH_MAX];
};

int fc_binary_find(char *out, size_t n)
{
	const char *conf = getenv("IRONCLAW_FIRECRACKER");
	if (conf && conf[0]) {
		snprintf(out, n, "%s", conf);
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		if (len > 0 && (size_t)snprintf(out, n, "%.*s/firecracker", (int)len, path) < n &&
		    out[0] == '/' && access(out, X_OK) == 0)
			return 0;
		path += len + (path[len] == ':');
	}
	out[0] = '\0';
	return -ENOENT;
}

/* ---- probe: Firecracker only runs under KVM ---- */

struct fc_probe {
	vm_probe_cb done;
	void *ctx;
};

static void fc_on_probe(void *ctx, const struct vm_accel_verdict *v)
{
	struct fc_probe *p = ctx;
	struct vm_accel_verdict out = *v;
	out.accel = VM_ACCEL_KVM;
	if (v->accel != VM_ACCEL_KVM) {
		/* Asked for explicitly: try it, and let Firecracker's own error speak. */
		log_warn("the KVM probe says KVM does not run guests here (%s); trying Firecracker anyway",
			 v->reason);
		snprintf(out.reason, sizeof(out.reason), "Firecracker needs KVM; the KVM probe failed (%.180s), trying anyway",
			 v->reason);
	}
	p->done(p->ctx, &out);
	free(p);
}

static void fc_probe_accel(uv_loop_t *loop, const char *kernel, const char *initrd, vm_probe_cb done,
			   void *ctx)
{
	struct fc_probe *p = calloc(1, sizeof(*p));
	if (!p) {
		struct vm_accel_verdict v = { .accel = VM_ACCEL_KVM };
		snprintf(v.reason, sizeof(v.reason), "out of memory for the probe; trying KVM");
		done(ctx, &v);
		return;
	}
	p->done = done;
	p->ctx = ctx;
	/* The same cached verdict QEMU uses: does KVM really run our guest here? */
	vm_accel_probe(loop, QEMU_BINARY, kernel, initrd, fc_on_probe, p);
}

/* ---- plan ---- */

int fc_plan_launch(const struct vm_backend_spec *spec, const char *filter, struct vm_launch_plan *plan,
		   struct err *e)
{
	memset(plan, 0, sizeof(*plan));
	char bin[PATH_MAX];
	if (fc_binary_find(bin, sizeof(bin)) < 0)
		return err_set(e, -ENOENT, "no firecracker binary (hint: put it on PATH or set "
			       "IRONCLAW_FIRECRACKER; docs/backends.md says how to install it)");
	/* --net: Firecracker opens the tap by name; the jail makes it persistent
	 * and owned by the VMM's uid and gives it /dev/net/tun (tap_by_name). */
	plan->tap_by_name = spec->tap_fd >= 0;
	size_t used = 0, argc = 0;
	const char *args[] = { bin, "--api-sock", FC_JAIL_API, "--id", spec->id,
			       filter ? "--seccomp-filter" : NULL, filter ? FC_JAIL_FILTER : NULL };
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]) && args[i]; i++) {
		size_t len = strlen(args[i]) + 1;
		if (used + len > sizeof(plan->store) || argc + 1 >= VM_PLAN_ARGV_MAX)
			return err_set(e, -E2BIG, "Firecracker command line too long");
		memcpy(plan->store + used, args[i], len);
		plan->argv[argc++] = plan->store + used;
		used += len;
	}
	plan->argv[argc] = NULL;
	plan->binds[plan->n_binds++] = (struct jail_bind){ spec->kernel, FC_JAIL_KERNEL, 0 };
	plan->binds[plan->n_binds++] = (struct jail_bind){ spec->initrd, FC_JAIL_INITRD, 0 };
	plan->binds[plan->n_binds++] = (struct jail_bind){ spec->dir, FC_JAIL_DIR, 1 };
	if (filter)
		plan->binds[plan->n_binds++] = (struct jail_bind){ filter, FC_JAIL_FILTER, 0 };
	plan->kvm_node = 1;
	plan->seccomp = fc_seccomp_policy();
	plan->memory_max_bytes = (uint64_t)(spec->memory_mib + FC_VMM_OVERHEAD_MIB) << 20;
	/* A snapshot's mem file is as large as guest RAM. */
	plan->fsize_max_bytes = (uint64_t)(spec->memory_mib + 1) << 20;
	plan->cpu_percent = spec->cpus * 100;
	return 0;
}

/* A Firecracker snapshot is a directory with vmstate and mem (what
 * fc_snapshot_save leaves); a QEMU state file is not one. */
static int fc_snapshot_check(const char *dir, struct err *e)
{
	char p[PATH_MAX + 16];
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return err_set(e, -errno, "the snapshot %.200s: %s", dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return err_set(e, -EINVAL, "%.200s is not a Firecracker snapshot (a directory with vmstate and mem; "
			       "a QEMU template's state is one file): restore it with the backend that saved it",
			       dir);
	static const char *const parts[] = { "vmstate", "mem" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, parts[i]);
		if (stat(p, &sb) < 0 || !S_ISREG(sb.st_mode))
			return err_set(e, -ENOENT, "the Firecracker snapshot %.200s has no %s file", dir, parts[i]);
	}
	return 0;
}

static int fc_plan(struct vm_backend_vm *bv, const struct vm_backend_spec *spec,
		   struct vm_launch_plan *plan, struct err *e)
{
	struct fc_state *st = bv->state;
	const char *filter = getenv("IRONCLAW_FC_SECCOMP_FILTER");
	if (filter && !filter[0])
		filter = NULL;
	if (filter && access(filter, R_OK) < 0)
		return err_set(e, -errno, "cannot read the compiled seccomp filter %s (IRONCLAW_FC_SECCOMP_FILTER): %s",
			       filter, strerror(errno));
	char jailer[PATH_MAX], bin[PATH_MAX];
	struct err je = { 0 };
	int rc = fc_jailer_find(jailer, sizeof(jailer), &je);
	if (rc < 0 && rc != -ENOENT) {
		*e = je;
		return rc;
	}
	st->jailer = rc == 0;
	if (!st->jailer) {
		rc = fc_plan_launch(spec, filter, plan, e);
	} else if (fc_binary_find(bin, sizeof(bin)) < 0) {
		rc = err_set(e, -ENOENT, "no firecracker binary for the jailer to exec (hint: put it on PATH or set "
			     "IRONCLAW_FIRECRACKER)");
	} else {
		struct jail_names names;
		if ((rc = jail_names_make(spec->id, &names, e)) == 0 &&
		    (rc = fc_jailer_root(spec->dir, bin, spec->id, st->chroot_root, sizeof(st->chroot_root))) < 0)
			err_set(e, rc, "the jailer's chroot path is too long");
		if (rc == 0)
			rc = fc_jailer_plan(spec, jailer, bin, filter, plan, e);
		st->uid = names.uid;
		st->gid = names.gid;
		snprintf(st->kernel, sizeof(st->kernel), "%s", spec->kernel);
		snprintf(st->initrd, sizeof(st->initrd), "%s", spec->initrd);
	}
	if (rc < 0)
		return rc;
	if (spec->restore && spec->restore_from && !st->restore_dir[0]) {
		/* vm_options.restore_from: loaded during connect, acknowledged by
		 * the snapshot_load vm.c sends once the channel is up. */
		if (spec->restore_from[0] != '/' || strlen(spec->restore_from) >= sizeof(st->restore_dir))
			return err_set(e, -EINVAL, "a Firecracker snapshot must be an absolute path: %.200s",
				       spec->restore_from);
		snprintf(st->restore_dir, sizeof(st->restore_dir), "%s", spec->restore_from);
	}
	if (st->restore_dir[0]) {
		if ((rc = fc_snapshot_check(st->restore_dir, e)) < 0)
			return rc;
		if (st->jailer)
			;   /* linked into the chroot by the placement job */
		else if (plan->n_binds >= VM_PLAN_BINDS_MAX)
			return err_set(e, -E2BIG, "too many binds");
		plan->binds[plan->n_binds++] = (struct jail_bind){ st->restore_dir, FC_JAIL_SNAPSHOT, 0 };
	}
	st->cpus = spec->cpus;
	st->memory_mib = spec->memory_mib;
	st->net = spec->tap_fd >= 0;
	if (st->net) {
		/* Locally administered, unicast, stable per VM id (FNV-1a). */
		uint64_t h = 1469598103934665603ull;
		for (const char *p = spec->id; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		snprintf(st->guest_mac, sizeof(st->guest_mac), "06:fc:%02x:%02x:%02x:%02x", (unsigned)(h >> 24) & 0xff,
			 (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 8) & 0xff, (unsigned)h & 0xff);
	}
	snprintf(st->boot_args, sizeof(st->boot_args), "console=ttyS0 reboot=k panic=1 pci=off%s%s",
		 spec->cmdline_extra ? " " : "", spec->cmdline_extra ? spec->cmdline_extra : "");
	return 0;
}

/* ---- connect: API socket, configuration, vsock ---- */

static void fc_report(struct fc_state *st, int fd, const struct err *e)
{
	st->phase = FC_DONE;
	vm_connect_cb done = st->done;
	st->done = NULL;
	if (done)
		done(st->ctx, fd, e);
	else if (fd >= 0)
		close(fd);
}

static void fc_on_grace(uv_timer_t *t)
{
	struct fc_state *st = t->data;
	struct err e = st->pending;
	fc_report(st, -1, &e);
}

static void fc_fail(struct fc_state *st, const struct err *e)
{
	if (st->restore_done) {
		/* The load never happened: its caller hears why too. */
		vm_backend_cb rd = st->restore_done;
		st->restore_done = NULL;
		rd(st->restore_ctx, e);
	}
	/* A refusal is Firecracker's answer: report it now. A broken connection
	 * means it probably died: give the pidfd's exit report the first word. */
	if (e->code == -EREMOTEIO || e->code == -EPROTO || !st->grace_init) {
		fc_report(st, -1, e);
		return;
	}
	st->pending = *e;
	uv_timer_start(&st->grace, fc_on_grace, FC_DEATH_GRACE_MS, 0);
}

static unsigned fc_left_ms(struct fc_state *st)
{
	uv_update_time(st->loop);
	uint64_t now = uv_now(st->loop);
	return st->deadline > now ? (unsigned)(st->deadline - now) : 1;
}

static void fc_on_vsock(void *ctx, int fd, const struct err *e)
{
	struct fc_state *st = ctx;
	st->vsock = NULL;
	if (e) {
		struct err w = *e;
		err_wrap(&w, "the guest agent's vsock port");
		fc_fail(st, &w);
		return;
	}
	fc_report(st, fd, NULL);
}

static void fc_on_configured(void *ctx, const struct err *e)
{
	struct fc_state *st = ctx;
	if (st->restore_done) {
		vm_backend_cb rd = st->restore_done;
		st->restore_done = NULL;
		rd(st->restore_ctx, e);
	}
	if (e) {
		fc_fail(st, e);
		return;
	}
	st->phase = FC_VSOCK;
	struct err ve = { 0 };
	if (vsock_connect_start(st->loop, st->vsock_path, VSOCK_GUEST_PORT, fc_left_ms(st), fc_on_vsock, st,
				&st->vsock, &ve) < 0)
		fc_fail(st, &ve);
}

/* Firecracker writes its log and metrics into files that must exist; they are
 * the VMM's (it runs as the VM directory's owner, not as us). */
static int fc_make_file(struct fc_state *st, const char *name, struct err *e)
{
	char path[PATH_MAX + 32];
	struct stat d;
	snprintf(path, sizeof(path), "%s/%s", st->dir, name);
	if (stat(st->dir, &d) < 0)
		return err_set(e, -errno, "%s: %s", st->dir, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(e, -errno, "creating %s: %s", path, strerror(errno));
	int rc = fchown(fd, d.st_uid, d.st_gid) < 0 && geteuid() == 0 ? -errno : 0;
	close(fd);
	return rc < 0 ? err_set(e, rc, "chown %s: %s", path, strerror(-rc)) : 0;
}

static void fc_on_api_socket(void *ctx, int fd, const struct err *ue)
{
	struct fc_state *st = ctx;
	st->api_wait = NULL;
	if (ue) {
		struct err w = *ue;
		err_wrap(&w, "Firecracker's API socket");
		fc_fail(st, &w);
		return;
	}
	close(fd);   /* it exists and accepts: libcurl makes its own connections */
	struct err e = { 0 };
	struct fc_api_req reqs[FC_API_SEQ_MAX];
	size_t n = 0;
	int rc;
	if (st->restore_dir[0]) {
		const struct fc_restore_config rc_cfg = {
			.log_path = FC_JAIL_LOG, .metrics_path = FC_JAIL_METRICS,
			.snapshot_path = FC_JAIL_SNAPSHOT "/vmstate", .mem_path = FC_JAIL_SNAPSHOT "/mem",
		};
		rc = fc_api_restore_sequence(&rc_cfg, reqs, &n, &e);
	} else {
		const struct fc_boot_config c = {
			.log_path = FC_JAIL_LOG, .metrics_path = FC_JAIL_METRICS, .vcpus = st->cpus,
			.mem_mib = st->memory_mib, .kernel = FC_JAIL_KERNEL, .initrd = FC_JAIL_INITRD,
			.boot_args = st->boot_args, .guest_cid = FC_GUEST_CID, .vsock_uds = FC_JAIL_VSOCK,
			.tap_name = st->net ? JAIL_TAP_NAME : NULL, .guest_mac = st->net ? st->guest_mac : NULL,
		};
		rc = fc_api_boot_sequence(&c, reqs, &n, &e);
	}
	if (rc < 0 || (rc = fc_api_open(st->loop, st->api_path, &st->api, &e)) < 0) {
		fc_api_reqs_free(reqs, n);
		fc_fail(st, &e);
		return;
	}
	st->phase = FC_CONFIGURING;
	if (fc_api_run(st->api, reqs, n, FC_API_TIMEOUT_MS, fc_on_configured, st, &e) < 0)
		fc_fail(st, &e);
}

/* The files exist (the VM directory, or the jailer's chroot): wait for the API. */
static int fc_connect_api(struct fc_state *st, struct err *e)
{
	int rc;
	if ((rc = fc_make_file(st, "console.log", e)) < 0 || (rc = fc_make_file(st, "metrics.json", e)) < 0)
		return rc;
	st->phase = FC_WAIT_API;
	return unix_connect_start(st->loop, st->api_path, fc_left_ms(st), fc_on_api_socket, st, &st->api_wait, e);
}

static void fc_on_placed(void *ctx, const struct err *pe)
{
	struct fc_state *st = ctx;
	st->place = NULL;
	struct err e = { 0 };
	if (pe) {
		e = *pe;
		err_wrap(&e, "preparing the jailer's chroot");
		fc_fail(st, &e);
	} else if (fc_connect_api(st, &e) < 0) {
		fc_fail(st, &e);
	}
}

static int fc_connect(struct vm_backend_vm *bv, unsigned deadline_ms, vm_connect_cb done, void *ctx,
		      struct err *e)
{
	struct fc_state *st = bv->state;
	st->loop = bv->loop;
	st->done = done;
	st->ctx = ctx;
	/* Under the jailer, Firecracker's /run/vm is the chroot's. */
	if (st->jailer)
		snprintf(st->dir, sizeof(st->dir), "%s/run/vm", st->chroot_root);
	else
		snprintf(st->dir, sizeof(st->dir), "%s", bv->dir);
	snprintf(st->api_path, sizeof(st->api_path), "%s/fc.sock", st->dir);
	snprintf(st->vsock_path, sizeof(st->vsock_path), "%s/v.sock", st->dir);
	uv_update_time(bv->loop);
	st->deadline = uv_now(bv->loop) + deadline_ms;
	uv_timer_init(bv->loop, &st->grace);
	st->grace.data = st;
	st->grace_init = 1;
	if (!st->jailer)
		return fc_connect_api(st, e);
	st->phase = FC_WAIT_API;
	return fc_jailer_place_start(bv->loop, st->chroot_root, st->uid, st->gid, st->kernel, st->initrd,
				     st->restore_dir[0] ? st->restore_dir : NULL, fc_on_placed, st, &st->place, e);
}

static enum vm_readiness fc_readiness(struct vm_backend_vm *bv)
{
	struct fc_state *st = bv->state;
	return st->restore_dir[0] ? VM_READY_ON_PING : VM_READY_ON_HELLO;
}

/* ---- pause, resume, snapshots, stop ---- */

static void fc_on_op(void *ctx, const struct err *e)
{
	struct fc_state *st = ctx;
	vm_backend_cb done = st->op_done;
	st->op_done = NULL;
	if (done)
		done(st->op_ctx, e);
}

static int fc_run_op(struct fc_state *st, struct fc_api_req *reqs, size_t n, unsigned timeout_ms,
		     vm_backend_cb done, void *ctx)
{
	if (!st->api || st->phase != FC_DONE || fc_api_busy(st->api) || st->op_done) {
		fc_api_reqs_free(reqs, n);
		return st->api ? -EBUSY : -ENOTCONN;
	}
	st->op_done = done;
	st->op_ctx = ctx;
	struct err e = { 0 };
	int rc = fc_api_run(st->api, reqs, n, timeout_ms, fc_on_op, st, &e);
	if (rc < 0)
		st->op_done = NULL;
	return rc;
}

static int fc_pause(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx)
{
	struct fc_api_req r;
	if (fc_api_req_vm_state(&r, 1) < 0)
		return -ENOMEM;
	return fc_run_op(bv->state, &r, 1, FC_API_TIMEOUT_MS, done, ctx);
}

static int fc_resume(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx)
{
	struct fc_api_req r;
	if (fc_api_req_vm_state(&r, 0) < 0)
		return -ENOMEM;
	return fc_run_op(bv->state, &r, 1, FC_API_TIMEOUT_MS, done, ctx);
}

/* ---- snapshot save: Firecracker writes in the VM directory, the pool moves it ---- */

struct fc_save_job {
	uv_work_t work;
	struct fc_state *st;    /* NULL once released: nobody is told */
	vm_backend_cb done;
	void *ctx;
	char from[PATH_MAX], to[PATH_MAX];
	struct err e;
};

/* Pool: one file from the VM directory to the caller's directory, ours and
 * 0644. rename when both are on one filesystem; a copy otherwise (the VM
 * directory is under /run, a template under the cache directory). */
static int fc_save_move(const char *from, const char *to, struct err *e)
{
	if (rename(from, to) == 0)
		return chown(to, getuid(), getgid()) < 0 || chmod(to, FC_SNAP_FILE_MODE) < 0
			       ? err_set(e, -errno, "%s: %s", to, strerror(errno)) : 0;
	if (errno != EXDEV)
		return err_set(e, -errno, "moving %s to %s: %s", from, to, strerror(errno));
	int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return err_set(e, -errno, "%s: %s", from, strerror(errno));
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FC_SNAP_FILE_MODE);
	if (out < 0) {
		int rc = -errno;
		close(in);
		return err_set(e, rc, "%s: %s", to, strerror(-rc));
	}
	int rc = 0, plain = 0;
	char *buf = NULL;
	for (;;) {
		ssize_t n;
		if (!plain) {
			n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
			/* Across filesystems of different types the kernel refuses it. */
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
				plain = 1;
				continue;
			}
		} else {
			if (!buf && !(buf = malloc(FC_SAVE_CHUNK))) {
				rc = err_set(e, -ENOMEM, "out of memory copying %s", from);
				break;
			}
			n = read(in, buf, FC_SAVE_CHUNK);
			if (n > 0 && io_write_all(out, buf, (size_t)n) < 0)
				n = -1;
		}
		if (n == 0)
			break;
		if (n < 0) {
			rc = err_set(e, -errno, "copying %s to %s: %s", from, to, strerror(errno));
			break;
		}
	}
	free(buf);
	if (rc == 0 && fsync(out) < 0)
		rc = err_set(e, -errno, "%s: %s", to, strerror(errno));
	close(in);
	close(out);
	if (rc < 0)
		unlink(to);
	else
		unlink(from);
	return rc;
}

static void fc_save_job_run(uv_work_t *w)
{
	struct fc_save_job *j = w->data;
	static const char *const parts[] = { "vmstate", "mem" };
	char a[PATH_MAX + 16], b[PATH_MAX + 16];
	if (mkdir(j->to, FC_SNAP_DIR_MODE) < 0 || chmod(j->to, FC_SNAP_DIR_MODE) < 0) {
		err_set(&j->e, -errno, "creating the snapshot directory %s: %s", j->to, strerror(errno));
		rmdir(j->from);
		return;
	}
	for (size_t i = 0; i < 2 && !j->e.code; i++) {
		snprintf(a, sizeof(a), "%s/%s", j->from, parts[i]);
		snprintf(b, sizeof(b), "%s/%s", j->to, parts[i]);
		fc_save_move(a, b, &j->e);
	}
	if (j->e.code) {
		for (size_t i = 0; i < 2; i++) {
			snprintf(b, sizeof(b), "%s/%s", j->to, parts[i]);
			unlink(b);
		}
		rmdir(j->to);
	}
	rmdir(j->from);
}

static void fc_save_job_after(uv_work_t *w, int status)
{
	struct fc_save_job *j = w->data;
	(void)status;
	if (j->st) {
		j->st->save_job = NULL;
		if (j->done)
			j->done(j->ctx, j->e.code ? &j->e : NULL);
	}
	free(j);
}

/* The snapshot was created (or refused) in the VM directory. */
static void fc_on_saved(void *ctx, const struct err *e)
{
	struct fc_state *st = ctx;
	vm_backend_cb done = st->op_done;
	void *dctx = st->op_ctx;
	st->op_done = NULL;
	struct fc_save_job *j = e ? NULL : calloc(1, sizeof(*j));
	if (!j) {
		struct err ne = { 0 };
		err_set(&ne, -ENOMEM, "out of memory moving the snapshot");
		if (done)
			done(dctx, e ? e : &ne);
		return;
	}
	j->st = st;
	j->done = done;
	j->ctx = dctx;
	j->work.data = j;
	snprintf(j->from, sizeof(j->from), "%s/" FC_SAVE_SUBDIR, st->dir);
	snprintf(j->to, sizeof(j->to), "%s", st->save_to);
	st->save_job = j;
	if (uv_queue_work(st->loop, &j->work, fc_save_job_run, fc_save_job_after) < 0) {
		fc_save_job_run(&j->work);   /* no pool: do it here rather than lose it */
		fc_save_job_after(&j->work, 0);
	}
}

/* As QEMU's: pauses the guest and saves its state into a new directory at
 * path (vmstate and mem); the guest stays paused, resume or destroy it. */
static int fc_snapshot_save(struct vm_backend_vm *bv, const char *path, vm_backend_cb done, void *ctx)
{
	struct fc_state *st = bv->state;
	if (path[0] != '/' || strstr(path, "/..") || strlen(path) >= sizeof(st->save_to) - 16)
		return -EINVAL;
	if (access(path, F_OK) == 0)
		return -EEXIST;
	if (st->save_job)
		return -EBUSY;
	char where[PATH_MAX + 32];
	/* Where Firecracker's /run/vm is on the host (the VM directory, or the
	 * jailer's chroot). */
	snprintf(where, sizeof(where), "%s/" FC_SAVE_SUBDIR, st->dir);
	struct stat d;
	if (stat(st->dir, &d) < 0)
		return -errno;
	/* Firecracker runs as the VM directory's owner and writes only there. */
	if (mkdir(where, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (chown(where, d.st_uid, d.st_gid) < 0 && geteuid() == 0)
		return -errno;
	snprintf(st->save_to, sizeof(st->save_to), "%s", path);
	struct fc_api_req r[2] = { 0 };
	if (fc_api_req_vm_state(&r[0], 1) < 0 ||
	    fc_api_req_snapshot_create(&r[1], FC_JAIL_DIR "/" FC_SAVE_SUBDIR "/vmstate",
				       FC_JAIL_DIR "/" FC_SAVE_SUBDIR "/mem") < 0) {
		fc_api_reqs_free(r, 2);
		return -ENOMEM;
	}
	if (!st->api || st->phase != FC_DONE || fc_api_busy(st->api) || st->op_done) {
		fc_api_reqs_free(r, 2);
		return st->api ? -EBUSY : -ENOTCONN;
	}
	st->op_done = done;
	st->op_ctx = ctx;
	struct err e = { 0 };
	int rc = fc_api_run(st->api, r, 2, FC_API_SNAPSHOT_TIMEOUT_MS, fc_on_saved, st, &e);
	if (rc < 0)
		st->op_done = NULL;
	return rc;
}

/* path: a host directory holding vmstate and mem, bound read-only into the
 * jail. Called before the VMM starts (a restore replaces the boot: done runs
 * when Firecracker has loaded it), or, as vm.c does for vm_options.
 * restore_from, after connect, when plan already took the path from the spec
 * and the load happened before the channel came up: done runs at once. */
static int fc_snapshot_load(struct vm_backend_vm *bv, const char *path, vm_backend_cb done, void *ctx)
{
	struct fc_state *st = bv->state;
	if (st->phase == FC_DONE && st->restore_dir[0] && !strcmp(path, st->restore_dir) && !st->restore_done) {
		done(ctx, NULL);
		return 0;
	}
	if (st->phase != FC_IDLE || bv->launch)
		return -EALREADY;
	if (path[0] != '/' || strlen(path) >= sizeof(st->restore_dir))
		return -EINVAL;
	snprintf(st->restore_dir, sizeof(st->restore_dir), "%s", path);
	st->restore_done = done;
	st->restore_ctx = ctx;
	return 0;
}

static void fc_stop(struct vm_backend_vm *bv)
{
	struct fc_state *st = bv->state;
	struct fc_api_req r;
	/* x86 Firecracker exits when the guest resets on Ctrl-Alt-Del; the answer
	 * is its exit (vm.c escalates to force_stop otherwise). */
	if (st->api && !fc_api_busy(st->api) && fc_api_req_ctrl_alt_del(&r) == 0) {
		struct err e = { 0 };
		fc_api_run(st->api, &r, 1, FC_API_TIMEOUT_MS, NULL, NULL, &e);
	}
}

static void fc_force_stop(struct vm_backend_vm *bv)
{
	vm_launch_kill(bv->launch);
}

static void fc_release(struct vm_backend_vm *bv)
{
	struct fc_state *st = bv->state;
	st->done = NULL;
	st->op_done = NULL;
	st->restore_done = NULL;
	if (st->save_job)
		st->save_job->st = NULL;   /* the move finishes on the pool, unheard */
	st->save_job = NULL;
	unix_connect_cancel(st->api_wait);
	st->api_wait = NULL;
	fc_jailer_place_cancel(st->place);
	st->place = NULL;
	vsock_connect_cancel(st->vsock);
	st->vsock = NULL;
	fc_api_close(st->api);
	st->api = NULL;
	if (st->grace_init) {
		/* The timer lives in bv->state, which vm.c frees only after its own
		 * handles are closed, later than this close completes. */
		uv_timer_stop(&st->grace);
		uv_close((uv_handle_t *)&st->grace, NULL);
		st->grace_init = 0;
	}
}

const struct vm_backend_ops vm_backend_firecracker = {
	.name = "firecracker",
	.vmm_name = "Firecracker",
	.vmm_binary = "firecracker",
	.state_size = sizeof(struct fc_state),
	.probe = fc_probe_accel,
	.plan = fc_plan,
	.connect = fc_connect,
	.readiness = fc_readiness,
	.pause = fc_pause,
	.resume = fc_resume,
	.snapshot_save = fc_snapshot_save,
	.snapshot_load = fc_snapshot_load,
	.stop = fc_stop,
	.force_stop = fc_force_stop,
	.release = fc_release,
};
