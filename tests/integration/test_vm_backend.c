/* The backend interface, driven through vm.h on a real QEMU VM: pause and
 * resume go through the backend (QMP for QEMU), and stopping escalates stage by
 * stage: a guest that can answer powers off when asked; a paused guest cannot,
 * so the VMM itself is asked to quit, and SIGKILL is never needed for that. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integration/lib/vmrun.h"
#include "vm/exec.h"
#include "vm/vm.h"

struct bt {
	uv_loop_t loop;
	struct vm *vm;
	int pause_mode;            /* 1: pause, resume, exec; 2: pause, then destroy */
	int paused, resumed, op_errors;
	char out[64];
	size_t out_len;
	int exit_code;
	char how[64];
	char why[1024];
};

static void bt_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct bt *b = ctx;
	(void)x;
	if (stream == 1 && b->out_len + n < sizeof(b->out)) {
		memcpy(b->out + b->out_len, d, n);
		b->out_len += n;
	}
}

static void bt_exec_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct bt *b = ctx;
	(void)x;
	b->exit_code = r->err.code ? -1 : r->code;
	vm_destroy(b->vm);
}

static void bt_exec(struct bt *b)
{
	static char *argv[] = { "echo", "hi", NULL };
	static const struct vm_exec_handlers h = { .output = bt_output, .done = bt_exec_done };
	struct vm_exec_spec spec = { .argv = argv };
	struct vm_exec *x;
	struct err e = { 0 };
	if (vm_exec_start(b->vm, &spec, &h, b, &x, &e) < 0)
		vm_destroy(b->vm);
}

static void bt_on_resumed(void *ctx, const struct err *e)
{
	struct bt *b = ctx;
	if (e)
		b->op_errors++;
	b->resumed = 1;
	bt_exec(b);
}

static void bt_on_paused(void *ctx, const struct err *e)
{
	struct bt *b = ctx;
	if (e) {
		b->op_errors++;
		snprintf(b->why, sizeof(b->why), "%s", e->msg);
	}
	b->paused = 1;
	if (b->pause_mode == 2 || e) {
		vm_destroy(b->vm);
		return;
	}
	if (vm_resume(b->vm, bt_on_resumed, b) < 0)
		vm_destroy(b->vm);
}

static void bt_ready(struct vm *vm, void *ctx)
{
	struct bt *b = ctx;
	if (!b->pause_mode) {
		vm_destroy(vm);
		return;
	}
	if (vm_pause(vm, bt_on_paused, b) < 0)
		vm_destroy(vm);
}

static void bt_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct bt *b = ctx;
	snprintf(b->why, sizeof(b->why), "%s", e->msg);
	vm_destroy(vm);
}

static void bt_destroyed(struct vm *vm, void *ctx)
{
	struct bt *b = ctx;
	snprintf(b->how, sizeof(b->how), "%s", vm_stop_how(vm));
}

static void bt_run(struct bt *b)
{
	static const struct vm_events ev = { .ready = bt_ready, .failed = bt_failed, .destroyed = bt_destroyed };
	vmrun_use_checkout_image();
	struct vm_options o = { 0 };
	struct err e = { 0 };
	b->exit_code = -2;
	cr_assert_eq(uv_loop_init(&b->loop), 0);
	cr_assert_eq(vm_create(&b->loop, &o, &ev, b, &b->vm, &e), 0, "%s", e.msg);
	cr_assert_str_eq(vm_backend_name(b->vm), "qemu");
	uv_run(&b->loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&b->loop), 0);
}

Test(vm_backend, ready_guest_powers_off_when_asked, .timeout = 120)
{
	struct bt b = { 0 };
	bt_run(&b);
	cr_assert_eq(b.why[0], '\0', "%s", b.why);
	cr_assert_str_eq(b.how, "the guest powered off");
}

Test(vm_backend, pause_and_resume_through_the_backend, .timeout = 120)
{
	struct bt b = { .pause_mode = 1 };
	bt_run(&b);
	cr_assert_eq(b.op_errors, 0, "%s", b.why);
	cr_assert(b.paused && b.resumed);
	cr_assert_eq(b.exit_code, 0);
	cr_assert_eq(b.out_len, 3);
	cr_assert_eq(memcmp(b.out, "hi\n", 3), 0);
}

Test(vm_backend, paused_guest_is_stopped_by_the_vmm_not_killed, .timeout = 120)
{
	struct bt b = { .pause_mode = 2 };
	bt_run(&b);
	cr_assert_eq(b.op_errors, 0, "%s", b.why);
	cr_assert_str_eq(b.how, "the VMM quit when asked");
}
