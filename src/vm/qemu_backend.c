/* The QEMU backend (see backend.h): a `microvm` machine whose guest channel is a
 * virtio-serial port bound to a Unix socket in the VM's directory, controlled
 * over QMP on another socket there.
 *
 * QMP is opened lazily, only for the operations that need QEMU itself (pause,
 * resume, quit, snapshots): a VM that boots, runs and powers off never pays for
 * it. A restored VM runs the same command line plus `-incoming defer` and is
 * ready on a `ping` reply instead of `hello` (docs/snapshots.md). */
#include "vm/qemu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "vm/accel.h"
#include "vm/launch.h"
#include "vm/layout.h"
#include "vm/qemu_seccomp.h"
#include "vm/qmp.h"
#include "vm/snapshot_qemu.h"
#include "vm/unix_connect.h"

_Static_assert(VM_LAYOUT_BINDS + QEMU_FIRMWARE_BINDS_MAX + 1 <= VM_PLAN_BINDS_MAX, "plan binds");

/* Guest RAM plus what QEMU itself needs (TCG's translation cache, device state). */
#define QEMU_VMM_OVERHEAD_MIB 384

struct qemu_state {
	struct qmp *qmp;
	struct unix_connect *connecting;
	vm_connect_cb connect_done;
	void *connect_ctx;
	char qmp_path[300];
	char channel_path[300];
	int restoring;               /* started with -incoming defer */
	struct qemu_snap *snap;      /* a save or load in progress */
	vm_backend_cb snap_done;
	void *snap_ctx;
};

int qemu_plan_launch(const struct vm_backend_spec *spec, struct vm_launch_plan *plan,
		     struct err *e)
{
	struct qemu_spec qs = {
		.accel = spec->accel,
		.cpus = spec->cpus,
		.memory_mib = spec->memory_mib,
		.cmdline_extra = spec->cmdline_extra,
		.tap_fd = spec->tap_fd,
	};
	memset(plan, 0, sizeof(*plan));
	vm_layout_apply(&qs, plan->binds, spec->kernel, spec->initrd, spec->dir);
	plan->n_binds = VM_LAYOUT_BINDS;
	plan->n_binds += qemu_firmware_binds(plan->binds + plan->n_binds);
	/* The image is bound read-only: even a VMM that ignored readonly=on
	 * could not write it. The scratch disk lives in the VM's own directory
	 * (/run/vm, already writable), so it needs no bind of its own. */
	if (spec->root_image) {
		plan->binds[plan->n_binds++] = (struct jail_bind){ spec->root_image, VM_LAYOUT_ROOT_IMAGE, 0 };
		qs.root_path = VM_LAYOUT_ROOT_IMAGE;
	}
	if (spec->scratch_image) {
		qs.scratch_path = VM_LAYOUT_SCRATCH_IMAGE;
		/* RLIMIT_FSIZE would stop QEMU's writes at the default 256 MiB. */
		plan->fsize_max_bytes = (uint64_t)spec->scratch_mib << 20;
	}
	if (qemu_build_argv(&qs, plan->argv, plan->store, sizeof(plan->store)) < 0)
		return err_set(e, -E2BIG, "QEMU command line too long");
	plan->kvm_node = spec->accel == VM_ACCEL_KVM;
	plan->seccomp = qemu_seccomp_policy(plan->kvm_node);
	plan->memory_max_bytes = (uint64_t)(spec->memory_mib + QEMU_VMM_OVERHEAD_MIB) << 20;
	plan->cpu_percent = spec->cpus * 100;
	return 0;
}

static int qemu_plan_incoming(struct qemu_state *st, struct vm_launch_plan *plan, struct err *e);

static void qemu_probe(uv_loop_t *loop, const char *kernel, const char *initrd, vm_probe_cb done,
		       void *ctx)
{
	vm_accel_probe(loop, QEMU_BINARY, kernel, initrd, done, ctx);
}

static int qemu_plan(struct vm_backend_vm *bv, const struct vm_backend_spec *spec,
		     struct vm_launch_plan *plan, struct err *e)
{
	struct qemu_state *st = bv->state;
	snprintf(st->qmp_path, sizeof(st->qmp_path), "%s/qmp.sock", bv->dir);
	snprintf(st->channel_path, sizeof(st->channel_path), "%s/channel.sock", bv->dir);
	int rc = qemu_plan_launch(spec, plan, e);
	if (rc == 0 && spec->restore)
		rc = qemu_plan_incoming(st, plan, e);
	return rc;
}

/* ---- snapshots (snapshot_qemu.c does the QMP work) ---- */

/* A restored VM's QEMU is the same command line plus `-incoming defer`: the
 * devices must match the saved ones exactly, and the state arrives later over
 * QMP (getfd + migrate-incoming), never from a path QEMU opens itself. */
static int qemu_plan_incoming(struct qemu_state *st, struct vm_launch_plan *plan, struct err *e)
{
	size_t argc = 0;
	while (argc < VM_PLAN_ARGV_MAX && plan->argv[argc])
		argc++;
	const char *last = argc ? plan->argv[argc - 1] : plan->store;
	char *free_at = argc ? (char *)last + strlen(last) + 1 : plan->store;
	static const char incoming[] = "-incoming\0defer";
	if (argc + 3 > VM_PLAN_ARGV_MAX ||
	    (size_t)(free_at - plan->store) + sizeof(incoming) > sizeof(plan->store))
		return err_set(e, -E2BIG, "QEMU command line too long for -incoming");
	memcpy(free_at, incoming, sizeof(incoming));
	plan->argv[argc] = free_at;
	plan->argv[argc + 1] = free_at + strlen("-incoming") + 1;
	plan->argv[argc + 2] = NULL;
	st->restoring = 1;
	return 0;
}

static void qemu_on_snap_done(void *ctx, const struct err *e)
{
	struct qemu_state *st = ctx;
	st->snap = NULL;
	st->snap_done(st->snap_ctx, e);
}

static int qemu_snapshot(struct vm_backend_vm *bv, const char *path, int load, vm_backend_cb done,
			 void *ctx)
{
	struct qemu_state *st = bv->state;
	struct err e = { 0 };
	if (st->snap)
		return -EBUSY;
	if (load && !st->restoring)
		return -EINVAL;   /* only a QEMU started with -incoming takes a state */
	st->snap_done = done;
	st->snap_ctx = ctx;
	int rc = (load ? qemu_snap_load : qemu_snap_save)(bv->loop, &st->qmp, st->qmp_path, path,
						       qemu_on_snap_done, st, &st->snap, &e);
	if (rc < 0)
		log_warn("%s", e.msg);
	return rc;
}

static int qemu_snapshot_save(struct vm_backend_vm *bv, const char *path, vm_backend_cb done,
			      void *ctx)
{
	return qemu_snapshot(bv, path, 0, done, ctx);
}

static int qemu_snapshot_load(struct vm_backend_vm *bv, const char *path, vm_backend_cb done,
			      void *ctx)
{
	return qemu_snapshot(bv, path, 1, done, ctx);
}

static void qemu_snapshot_release(struct qemu_state *st)
{
	if (!st->snap)
		return;
	qemu_snap_cancel(st->snap);
	st->snap = NULL;
}

/* ---- the channel ---- */

static void qemu_on_connected(void *ctx, int fd, const struct err *e)
{
	struct qemu_state *st = ctx;
	st->connecting = NULL;
	st->connect_done(st->connect_ctx, fd, e);
}

static int qemu_connect(struct vm_backend_vm *bv, unsigned deadline_ms, vm_connect_cb done,
			void *ctx, struct err *e)
{
	struct qemu_state *st = bv->state;
	st->connect_done = done;
	st->connect_ctx = ctx;
	/* QEMU creates the socket (server=on) a moment after it starts. */
	return unix_connect_start(bv->loop, st->channel_path, deadline_ms, qemu_on_connected, st,
				  &st->connecting, e);
}

static enum vm_readiness qemu_readiness(struct vm_backend_vm *bv)
{
	struct qemu_state *st = bv->state;
	return st->restoring ? VM_READY_ON_PING : VM_READY_ON_HELLO;
}

static struct qmp *qemu_qmp(struct vm_backend_vm *bv)
{
	struct qemu_state *st = bv->state;
	struct err e = { 0 };
	if (!st->qmp && qmp_open(bv->loop, st->qmp_path, &st->qmp, &e) < 0)
		st->qmp = NULL;
	return st->qmp;
}

struct qemu_op {
	vm_backend_cb done;
	void *ctx;
};

static void qemu_on_qmp_reply(struct qmp *q, json_t *result, const struct err *e, void *ctx)
{
	struct qemu_op *op = ctx;
	(void)q;
	(void)result;
	if (op->done)
		op->done(op->ctx, e);
	free(op);
}

static int qemu_qmp_op(struct vm_backend_vm *bv, const char *cmd, vm_backend_cb done, void *ctx)
{
	struct qmp *q = qemu_qmp(bv);
	if (!q)
		return -ENOTCONN;
	struct qemu_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->done = done;
	op->ctx = ctx;
	int rc = qmp_execute(q, cmd, NULL, qemu_on_qmp_reply, op);
	if (rc < 0)
		free(op);
	return rc;
}

static int qemu_pause(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx)
{
	return qemu_qmp_op(bv, "stop", done, ctx);
}

static int qemu_resume(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx)
{
	return qemu_qmp_op(bv, "cont", done, ctx);
}

static void qemu_stop(struct vm_backend_vm *bv)
{
	/* The answer is QEMU's exit, which vm.c watches; a refusal or a wedged QMP
	 * leaves the escalation timer to force_stop. */
	qemu_qmp_op(bv, "quit", NULL, NULL);
}

static void qemu_force_stop(struct vm_backend_vm *bv)
{
	vm_launch_kill(bv->launch);
}

static void qemu_release(struct vm_backend_vm *bv)
{
	struct qemu_state *st = bv->state;
	unix_connect_cancel(st->connecting);
	st->connecting = NULL;
	qemu_snapshot_release(st);
	qmp_close(st->qmp);
	st->qmp = NULL;
}

const struct vm_backend_ops vm_backend_qemu = {
	.name = "qemu",
	.vmm_name = "QEMU",
	.vmm_binary = QEMU_BINARY,
	.state_size = sizeof(struct qemu_state),
	.probe = qemu_probe,
	.plan = qemu_plan,
	.connect = qemu_connect,
	.readiness = qemu_readiness,
	.pause = qemu_pause,
	.resume = qemu_resume,
	.snapshot_save = qemu_snapshot_save,
	.snapshot_load = qemu_snapshot_load,
	.stop = qemu_stop,
	.force_stop = qemu_force_stop,
	.release = qemu_release,
};

const struct vm_backend_ops *vm_backend_default(void)
{
	return &vm_backend_qemu;
}
