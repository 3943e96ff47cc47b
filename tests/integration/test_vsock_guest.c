/* The Firecracker backend's channel code (vm/vsock_connect.c, then the
 * channel) end to end against a real guest kernel's AF_VSOCK: QEMU with
 * `-device vhost-user-vsock-device` backed by the test device in
 * tests/integration/lib/vhost_vsock.c, which speaks Firecracker's hybrid
 * Unix-socket protocol on the host side. Guest RAM is a shared memfd
 * (memory-backend-memfd,share=on; with share=off the device would see none of
 * the guest's writes).
 *
 * The VM is QEMU's (its plan, its jail, its seccomp policy) with three changes
 * made here: the shared memory backend, the vhost-user chardev and device, and
 * the connect step, which is the Firecracker backend's. The guest agent sees a
 * vsock device and listens on port 52 (src/guest/vsock.c).
 *
 *   - an exec round trip, and 8 MiB of output byte-exact;
 *   - OK and the guest's first frame in one write (one read on the host);
 *   - a port nobody listens on: the guest kernel resets it, the device
 *     closes the host connection without OK (as Firecracker does), and the
 *     connect step retries until its deadline and says so;
 *   - a reset in the middle of a frame (the device resets after 10 bytes of
 *     the hello): the VM fails, nothing half-read is taken as a message.
 * Not here: a CONNECT line split across writes (the device reads it byte by
 * byte, as Firecracker must; our own connect step writes it whole) and a
 * guest-initiated connection (the image has no tool that opens one); both
 * are in tests/unit/test_vsock_connect.c against a protocol peer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "integration/lib/vhost_vsock.h"
#include "integration/lib/vmrun.h"
#include "proto/frame.h"
#include "vm/launch.h"
#include "vm/qemu.h"
#include "vm/unix_connect.h"
#include "vm/vm.h"
#include "vm/vsock_connect.h"

static int dev_mode;
static uint64_t dev_reset_after;
static uint32_t vv_port = VSOCK_GUEST_PORT;

struct vv_state {
	pid_t dev;
	struct vsock_connect *vc;
	char vsock[300];
};

static int vv_append(struct vm_launch_plan *p, size_t *used, size_t *argc, const char *s)
{
	size_t len = strlen(s) + 1;
	if (*used + len > sizeof(p->store) || *argc + 1 >= VM_PLAN_ARGV_MAX)
		return -E2BIG;
	memcpy(p->store + *used, s, len);
	p->argv[(*argc)++] = p->store + *used;
	p->argv[*argc] = NULL;
	*used += len;
	return 0;
}

static int vv_plan(struct vm_backend_vm *bv, const struct vm_backend_spec *spec, struct vm_launch_plan *p,
		   struct err *e)
{
	struct vv_state *st = bv->state;
	int rc = qemu_plan_launch(spec, p, e);
	if (rc < 0)
		return rc;
	size_t argc = 0, used = 0;
	for (; p->argv[argc]; argc++) {
		size_t end = (size_t)(p->argv[argc] - p->store) + strlen(p->argv[argc]) + 1;
		used = end > used ? end : used;
	}
	char mem[128], machine[128];
	snprintf(mem, sizeof(mem), "memory-backend-memfd,id=mem,size=%uM,share=on", spec->memory_mib);
	for (size_t i = 0; i + 1 < argc; i++)
		if (!strcmp(p->argv[i], "-M")) {
			snprintf(machine, sizeof(machine), "%s,memory-backend=mem", p->argv[i + 1]);
			size_t k = argc;
			if (vv_append(p, &used, &k, machine) < 0)
				return err_set(e, -E2BIG, "argv");
			p->argv[i + 1] = p->argv[k - 1];
			p->argv[k - 1] = NULL;
		}
	const char *extra[] = { "-object", mem, "-chardev", "socket,id=vv,path=/run/vm/vhost.sock", "-device",
				"vhost-user-vsock-device,chardev=vv" };
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (vv_append(p, &used, &argc, extra[i]) < 0)
			return err_set(e, -E2BIG, "argv");
	/* Test code: the device starts here, before QEMU connects to it. */
	char vhost[300];
	snprintf(vhost, sizeof(vhost), "%s/vhost.sock", bv->dir);
	snprintf(st->vsock, sizeof(st->vsock), "%s/v.sock", bv->dir);
	st->dev = vhost_vsock_start(vhost, st->vsock, 3, dev_mode, dev_reset_after);
	if (st->dev < 0)
		return err_set(e, (int)st->dev, "starting the vhost-user vsock device: %s", strerror((int)-st->dev));
	struct stat d;
	if (stat(bv->dir, &d) == 0)
		(void)!chown(vhost, d.st_uid, d.st_gid);   /* QEMU runs as the directory's owner */
	return 0;
}

static int vv_connect(struct vm_backend_vm *bv, unsigned deadline_ms, vm_connect_cb done, void *ctx, struct err *e)
{
	struct vv_state *st = bv->state;
	return vsock_connect_start(bv->loop, st->vsock, vv_port, deadline_ms, done, ctx, &st->vc, e);
}

static enum vm_readiness vv_readiness(struct vm_backend_vm *bv)
{
	(void)bv;
	return VM_READY_ON_HELLO;
}

static int vv_unsup(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx)
{
	(void)bv;
	(void)done;
	(void)ctx;
	return -ENOTSUP;
}

static int vv_snap_unsup(struct vm_backend_vm *bv, const char *path, vm_backend_cb done, void *ctx)
{
	(void)path;
	return vv_unsup(bv, done, ctx);
}

static void vv_kill(struct vm_backend_vm *bv)
{
	vm_launch_kill(bv->launch);
}

static void vv_release(struct vm_backend_vm *bv)
{
	struct vv_state *st = bv->state;
	vsock_connect_cancel(st->vc);
	st->vc = NULL;
	vhost_vsock_stop(st->dev);
	st->dev = 0;
}

static void vv_probe(uv_loop_t *loop, const char *kernel, const char *initrd, vm_probe_cb done, void *ctx)
{
	vm_backend_qemu.probe(loop, kernel, initrd, done, ctx);
}

static const struct vm_backend_ops vv_backend = {
	.name = "qemu-vhost-user-vsock", .vmm_name = "QEMU", .vmm_binary = QEMU_BINARY,
	.state_size = sizeof(struct vv_state), .probe = vv_probe, .plan = vv_plan, .connect = vv_connect,
	.readiness = vv_readiness, .pause = vv_unsup, .resume = vv_unsup, .snapshot_save = vv_snap_unsup,
	.snapshot_load = vv_snap_unsup, .stop = vv_kill, .force_stop = vv_kill, .release = vv_release,
};

static void setup_image(void)
{
	vmrun_use_checkout_image();
}

static void on_run_done(struct vmrun *r)
{
	(void)r;
}

static void run_one(struct vmrun *r, char *const *argv)
{
	setup_image();
	uv_loop_t loop;
	uv_loop_init(&loop);
	memset(r, 0, sizeof(*r));
	r->loop = &loop;
	r->argv = argv;
	r->backend = &vv_backend;
	r->exit_code = -1;
	r->on_done = on_run_done;
	cr_assert_eq(vmrun_start(r), 0);
	while (!r->destroyed && uv_run(&loop, UV_RUN_ONCE))
		;
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&loop), 0);
}

Test(vsock_guest, exec_round_trip_and_8_mib_byte_exact, .timeout = 300)
{
	dev_mode = 0;
	dev_reset_after = 0;
	static char *echo[] = { "echo", "hi", NULL };
	struct vmrun r;
	run_one(&r, echo);
	cr_assert_not(r.failed, "%s", r.why);
	cr_expect_eq(r.exit_code, 0);
	cr_expect_eq(r.out_hash, vmrun_fnv1a(VMRUN_FNV_INIT, "hi\n", 3));
	/* seq 1 1200000: 8.3 MB of known bytes. */
	static char *seq[] = { "seq", "1", "1200000", NULL };
	run_one(&r, seq);
	cr_assert_not(r.failed, "%s", r.why);
	uint64_t h = VMRUN_FNV_INIT;
	size_t len = 0;
	char line[16];
	for (int i = 1; i <= 1200000; i++) {
		int n = snprintf(line, sizeof(line), "%d\n", i);
		h = vmrun_fnv1a(h, line, (size_t)n);
		len += (size_t)n;
	}
	cr_expect_gt(len, 8u << 20);
	cr_expect_eq(r.out_len, len, "%zu of %zu bytes", r.out_len, len);
	cr_expect_eq(r.out_hash, h, "the 8 MiB arrived changed");
}

Test(vsock_guest, ok_and_the_first_frame_in_one_read, .timeout = 300)
{
	dev_mode = VHOST_VSOCK_COALESCE_OK;
	dev_reset_after = 0;
	static char *echo[] = { "echo", "coalesced", NULL };
	struct vmrun r;
	run_one(&r, echo);
	cr_assert_not(r.failed, "%s", r.why);
	cr_expect_eq(r.out_hash, vmrun_fnv1a(VMRUN_FNV_INIT, "coalesced\n", 10));
	dev_mode = 0;
}

Test(vsock_guest, a_reset_mid_frame_fails_the_vm, .timeout = 300)
{
	dev_mode = 0;
	dev_reset_after = 10;   /* inside the hello frame */
	static char *echo[] = { "echo", "never", NULL };
	struct vmrun r;
	run_one(&r, echo);
	dev_reset_after = 0;
	cr_assert(r.failed, "the VM should fail");
	cr_expect_neq(r.exit_code, 0);
	printf("vsock_guest: reset mid-frame: %s\n", r.why);
}

struct refused {
	int failed, destroyed;
	struct err e;
};

static void rf_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct refused *t = ctx;
	t->failed = 1;
	t->e = *e;
	vm_destroy(vm);
}

static void rf_ready(struct vm *vm, void *ctx)
{
	(void)ctx;
	vm_destroy(vm);
}

static void rf_destroyed(struct vm *vm, void *ctx)
{
	struct refused *t = ctx;
	(void)vm;
	t->destroyed = 1;
}

Test(vsock_guest, a_port_nobody_listens_on_is_refused_by_the_guest_kernel, .timeout = 300)
{
	setup_image();
	dev_mode = 0;
	dev_reset_after = 0;
	vv_port = 53;   /* the agent listens on 52 only: the guest kernel answers RST */
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct refused t = { 0 };
	struct vm_options o = { .backend = &vv_backend, .boot_timeout_ms = 20000 };
	static const struct vm_events ev = { .ready = rf_ready, .failed = rf_failed, .destroyed = rf_destroyed };
	struct vm *vm;
	struct err e = { 0 };
	cr_assert_eq(vm_create(&loop, &o, &ev, &t, &vm, &e), 0, "%s", e.msg);
	while (!t.destroyed && uv_run(&loop, UV_RUN_ONCE))
		;
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	vv_port = VSOCK_GUEST_PORT;
	cr_assert(t.failed);
	cr_expect(strstr(t.e.msg, "nothing answered on vsock port 53"), "%s", t.e.msg);
	cr_expect(strstr(t.e.msg, "closed before OK"), "refused by closing, as Firecracker does: %s", t.e.msg);
}
