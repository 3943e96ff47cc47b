/* End to end: a real host tree goes into a real micro-VM as a tar stream on an
 * exec's stdin (busybox tar unpacks it), a shell changes it in the VM, the VM's
 * `tar -cf -` comes back on stdout, is unpacked into staging, and the diff card
 * shows exactly those changes; applying them makes the host tree match. */
#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "lib/vmrun.h"
#include "unit/test_workspace_fixture.h"
#include "vm/vm.h"
#include "workspace/workspace.h"
#include "integration/lib/vmrun.h"

struct flow {
	uv_loop_t loop;
	uv_timer_t deadline;
	struct vm *vm;
	struct workspace_pack *pack;
	int stage;              /* 0 copy-in, 1 change, 2 copy-out */
	struct buf out;
	struct buf err;
	int failed;
	char why[1024];
	int destroyed;
};

static void flow_next(struct flow *f);

static void flow_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct flow *f = ctx;
	(void)x;
	if (stream == 1 && f->stage == 2) {
		if (buf_append(&f->out, data, len) < 0)
			f->failed = 1;
	} else {
		buf_append(&f->err, data, len);
	}
}

static void flow_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct flow *f = ctx;
	(void)x;
	if (r->err.code || r->code || r->signal) {
		f->failed = 1;
		snprintf(f->why, sizeof(f->why), "stage %d: %s exit %d; stderr: %.*s", f->stage,
			 r->err.msg, r->code, (int)f->err.len, f->err.data ? (char *)f->err.data : "");
		vm_destroy(f->vm);
		return;
	}
	f->stage++;
	flow_next(f);
}

static void flow_next(struct flow *f)
{
	static const struct vm_exec_handlers h = { .output = flow_output, .done = flow_done };
	static char *const copy_in[] = { "sh", "-c", "mkdir -p /workspace && tar -xf - -C /workspace", NULL };
	static char *const change[] = { "sh", "-c",
		"cd /workspace && echo added >> notes.txt && rm gone.txt && mkdir -p new && "
		"echo fresh > new/f && chmod 755 run.sh && ln -sf notes.txt link && "
		"printf 'bin\\000ary' > blob", NULL };
	static char *const copy_out[] = { "tar", "-cf", "-", "-C", "/workspace", ".", NULL };
	if (f->stage == 3) {
		vm_destroy(f->vm);
		return;
	}
	struct vm_exec_spec spec = {
		.argv = f->stage == 0 ? copy_in : f->stage == 1 ? change : copy_out,
		.want_stdin = f->stage == 0,
		.timeout_ms = 120000,
	};
	struct vm_exec *x;
	struct err e = { 0 };
	if (vm_exec_start(f->vm, &spec, &h, f, &x, &e) < 0) {
		f->failed = 1;
		snprintf(f->why, sizeof(f->why), "exec: %s", e.msg);
		vm_destroy(f->vm);
		return;
	}
	if (f->stage != 0)
		return;
	/* the tar stream, chunk by chunk, onto the exec's stdin */
	uint8_t chunk[16384];
	long n;
	while ((n = workspace_pack_read(f->pack, chunk, sizeof(chunk), &e)) > 0)
		vm_exec_write_stdin(x, chunk, (size_t)n, 0);
	if (n < 0) {
		f->failed = 1;
		snprintf(f->why, sizeof(f->why), "pack: %s", e.msg);
	}
	vm_exec_write_stdin(x, NULL, 0, 1);
}

static void flow_ready(struct vm *vm, void *ctx)
{
	(void)vm;
	flow_next(ctx);
}

static void flow_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct flow *f = ctx;
	f->failed = 1;
	snprintf(f->why, sizeof(f->why), "vm: %s", e->msg);
	vm_destroy(vm);
}

static void flow_destroyed(struct vm *vm, void *ctx)
{
	struct flow *f = ctx;
	(void)vm;
	f->destroyed = 1;
	uv_timer_stop(&f->deadline);
	uv_close((uv_handle_t *)&f->deadline, NULL);
}

static void flow_deadline(uv_timer_t *t)
{
	struct flow *f = t->data;
	f->failed = 1;
	snprintf(f->why, sizeof(f->why), "the flow did not finish in time (stage %d)", f->stage);
	vm_destroy(f->vm);
}

Test(workspace_vm, copy_in_change_in_the_vm_copy_out_card_and_apply)
{
	vmrun_use_checkout_image();
	struct fx_run r;
	fx_run_start(&r);
	fx_put(r.host, "notes.txt", "first line\n");
	fx_put(r.host, "gone.txt", "bye\n");
	fx_write(r.host, "run.sh", "#!/bin/sh\n", 10, 0644);
	fx_mkdir(r.host, "src", 0750);
	fx_put(r.host, "src/a.c", "int a;\n");
	fx_symlink(r.host, "link", "src/a.c");
	fx_mkdir(r.host, "node_modules", 0755);
	fx_put(r.host, "node_modules/big.js", "excluded\n");

	struct flow f = { 0 };
	struct err e = { 0 };
	buf_init(&f.out, 64 << 20);
	buf_init(&f.err, 1 << 20);
	const char *ex[] = { "node_modules" };
	struct workspace_pack_options po = { .excludes = ex, .n_excludes = 1 };
	cr_assert_eq(workspace_pack_open(r.host, &po, &f.pack, &e), 0, "%s", e.msg);
	cr_assert_eq(uv_loop_init(&f.loop), 0);
	uv_timer_init(&f.loop, &f.deadline);
	f.deadline.data = &f;
	uv_timer_start(&f.deadline, flow_deadline, 300000, 0);
	static const struct vm_events ev = { .ready = flow_ready, .failed = flow_failed,
					     .destroyed = flow_destroyed };
	struct vm_options vo = { 0 };
	cr_assert_eq(vm_create(&f.loop, &vo, &ev, &f, &f.vm, &e), 0, "%s", e.msg);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	uv_loop_close(&f.loop);
	cr_assert(f.destroyed);
	cr_assert_not(f.failed, "%s", f.why);
	workspace_pack_take_manifest(f.pack, &r.before);
	workspace_pack_free(f.pack);
	cr_assert_null(workspace_manifest_find(&r.before, "node_modules"));

	cr_assert_eq(workspace_unpack_mem(f.out.data, f.out.len, r.staging, NULL, &r.after, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(workspace_changes_compute(r.host, &r.before, r.staging, &r.after, &r.c, &e), 0,
		     "%s", e.msg);
	char *card = workspace_card_text(&r.c);
	cr_assert(strstr(card, "workspace changes: 7 files changed, +2 -1"), "%s", card);
	cr_assert(strstr(card, "+added\n") && strstr(card, "D gone.txt"), "%s", card);
	cr_assert(strstr(card, "A new/f") && strstr(card, "A new/") , "%s", card);
	cr_assert(strstr(card, "M run.sh  mode 0644 -> 0755"), "%s", card);
	cr_assert(strstr(card, "M link  -> notes.txt (was -> src/a.c)"), "%s", card);
	cr_assert(strstr(card, "A blob  mode 0644  (binary)"), "%s", card);
	fprintf(stderr, "%s", card);
	free(card);

	cr_assert_eq(workspace_apply(&r.c, NULL, &e), 7, "%s", e.msg);
	char *s = fx_read(r.host, "notes.txt");
	cr_assert_str_eq(s, "first line\nadded\n");
	free(s);
	s = fx_read(r.host, "new/f");
	cr_assert_str_eq(s, "fresh\n");
	free(s);
	cr_assert(!fx_exists(r.host, "gone.txt"));
	cr_assert(fx_exists(r.host, "node_modules/big.js"), "excluded files stay on the host");
	buf_free(&f.out);
	buf_free(&f.err);
	fx_run_end(&r);
}
