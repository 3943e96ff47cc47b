/* Firecracker templates through the same template code QEMU's use
 * (vm_template_build, vm_template_open, the CLI's `snapshot create --backend
 * firecracker` and `exec --backend firecracker`), in the real jail, with the
 * stand-in for the firecracker process (peers/fc_api_peer.c) serving the API
 * and the guest's end of the vsock device:
 *
 *   - a build boots, is paused, /snapshot/create writes vmstate and mem into
 *     the VM directory, and the template is published with both (a manifest
 *     naming the backend, size and SHA-256 over the two files);
 *   - the template is found for Firecracker's shape only, never for QEMU's;
 *   - a clone loads it before any other configuration (logger and metrics
 *     only, then /snapshot/load with mem_backend and resume_vm), sees it
 *     read-only at /vm/snapshot, and is ready after ping and vm.identity;
 *   - a flipped byte in mem makes it unusable, with the fix in the message;
 *   - `ironclaw snapshot create --backend firecracker` builds it, `ls` shows it
 *     fresh, `exec --backend firecracker` restores from it, `rm` removes it;
 *   - no VM directory or process is left.
 * The request bodies are the ones test_fc_contract checks against
 * Firecracker's spec. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"
#include "lib/harness.h"
#include "vm/template.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

static char cache[64];

static void peer_path(char *out, size_t n)
{
	const char *bin = harness_ironclaw();
	snprintf(out, n, "%.*s/tests/integration/peers/fc_api_peer", (int)(strrchr(bin, '/') - bin), bin);
}

static void tpl_init(void)
{
	char peer[4096];
	peer_path(peer, sizeof(peer));
	cr_assert_eq(access(peer, X_OK), 0, "%s missing (make integration-tests builds it)", peer);
	setenv("IRONCLAW_FIRECRACKER", peer, 1);
	vmrun_use_checkout_image();
	snprintf(cache, sizeof(cache), "/tmp/ic-fctpl-XXXXXX");
	cr_assert(mkdtemp(cache));
	setenv("XDG_CACHE_HOME", cache, 1);
}

static void tpl_fini(void)
{
	if (cache[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
		if (system(cmd) != 0)
			cr_log_warn("could not remove %s", cache);
	}
	unsetenv("XDG_CACHE_HOME");
	unsetenv("IRONCLAW_FIRECRACKER");
}

TestSuite(fc_template, .init = tpl_init, .fini = tpl_fini);

struct built {
	int done;
	struct vm_template t;
	struct err e;
};

static void on_built(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct built *b = ctx;
	b->done = 1;
	if (t)
		b->t = *t;
	else
		b->e = *e;
}

struct clone {
	uv_loop_t loop;
	int ready, failed, destroyed;
	struct err e;
	char console[8192];
	char dir[128];
};

static void read_console(struct clone *c, struct vm *vm)
{
	char path[256];
	snprintf(path, sizeof(path), "/run/ironclaw/%s/console.log", vm_id(vm));
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(c->console, 1, sizeof(c->console) - 1, f);
		c->console[n] = '\0';
		fclose(f);
	}
}

static void cl_ready(struct vm *vm, void *ctx)
{
	struct clone *c = ctx;
	c->ready = 1;
	read_console(c, vm);
	vm_destroy(vm);
}

static void cl_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct clone *c = ctx;
	c->failed = 1;
	c->e = *e;
	read_console(c, vm);
	vm_destroy(vm);
}

static void cl_destroyed(struct vm *vm, void *ctx)
{
	(void)vm;
	((struct clone *)ctx)->destroyed = 1;
}

static void clone_run(struct clone *c, const char *restore_from)
{
	memset(c, 0, sizeof(*c));
	uv_loop_init(&c->loop);
	struct vm_options o = { .backend = &vm_backend_firecracker, .boot_timeout_ms = 60000,
				.restore_from = restore_from };
	static const struct vm_events ev = { .ready = cl_ready, .failed = cl_failed, .destroyed = cl_destroyed };
	struct vm *vm;
	struct err e = { 0 };
	cr_assert_eq(vm_create(&c->loop, &o, &ev, c, &vm, &e), 0, "%s", e.msg);
	snprintf(c->dir, sizeof(c->dir), "/run/ironclaw/%s", vm_id(vm));
	while (!c->destroyed && uv_run(&c->loop, UV_RUN_ONCE))
		;
	uv_run(&c->loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&c->loop), 0, "a handle was left open");
	struct stat st;
	cr_expect_neq(lstat(c->dir, &st), 0, "the VM directory %s was left behind", c->dir);
}

static void no_vmm_left(void)
{
	pid_t left[4];
	cr_expect_eq(harness_find_processes("fc_api_peer", getpid(), left, 4), 0, "a VMM outlived its VM");
}

Test(fc_template, built_from_a_paused_vm_found_for_its_backend_only_and_restored_first_thing, .timeout = 300)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vm_template_shape s = { .backend = "firecracker" };
	struct built b = { 0 };
	struct err e = { 0 };
	cr_assert_eq(vm_template_build(&loop, &s, on_built, &b, &e), 0, "%s", e.msg);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&loop), 0);
	cr_assert(b.done);
	cr_assert_eq(b.e.code, 0, "%s", b.e.msg);
	no_vmm_left();

	/* Published: a directory state with both files, and a manifest naming
	 * the backend and covering both. */
	char f[VM_TEMPLATE_PATH_MAX + 32];
	struct stat st;
	cr_assert_eq(stat(b.t.state, &st), 0, "%s", b.t.state);
	cr_expect(S_ISDIR(st.st_mode), "Firecracker's state is a directory");
	char *text = NULL;
	size_t n = 0;
	snprintf(f, sizeof(f), "%s/mem", b.t.state);
	cr_expect_eq(io_read_file(f, 1 << 20, &text, &n), 0, "%s", f);
	cr_expect(text && !strcmp(text, "mem of the stand-in\n"), "what /snapshot/create wrote");
	free(text);
	text = NULL;
	snprintf(f, sizeof(f), "%s/vmstate", b.t.state);
	cr_expect_eq(io_read_file(f, 1 << 20, &text, &n), 0, "%s", f);
	free(text);
	text = NULL;
	snprintf(f, sizeof(f), "%s/manifest.json", b.t.dir);
	cr_assert_eq(io_read_file(f, 1 << 20, &text, &n), 0, "%s", f);
	cr_expect(strstr(text, "\"backend\": \"firecracker\""), "%s", text);
	cr_expect_eq(b.t.state_bytes, strlen("mem of the stand-in\n") + strlen("vmstate of the stand-in\n"));
	free(text);

	/* Found for Firecracker's shape; QEMU's shape has another key. */
	struct vm_template t, q;
	cr_assert_eq(vm_template_open(&s, &t, &e), 0, "%s", e.msg);
	cr_expect_str_eq(t.key, b.t.key);
	cr_expect_str_eq(t.backend, "firecracker");
	struct vm_template_shape qs = { .backend = "qemu" };
	cr_expect_eq(vm_template_open(&qs, &q, &e), -ENOENT, "QEMU is never offered Firecracker's template");
	struct vm_template_shape big = { .backend = "firecracker", .memory_mib = 512 };
	cr_expect_eq(vm_template_open(&big, &q, &e), -ENOENT, "another memory size is another template");
	struct vm_template list[8];
	size_t nl = 0;
	cr_assert_eq(vm_template_list(list, 8, &nl, &e), 0, "%s", e.msg);
	cr_assert_eq(nl, 1);
	cr_expect_not(list[0].stale, "a Firecracker template is keyed by its own backend, not stale");

	/* A clone: the load comes before any other configuration. */
	struct clone c;
	clone_run(&c, t.state);
	cr_assert(c.ready, "the clone never became ready: %s\n%s", c.e.msg, c.console);
	const char *l = strstr(c.console, "request PUT /logger"), *m = strstr(c.console, "request PUT /metrics"),
		   *ld = strstr(c.console, "request PUT /snapshot/load");
	cr_expect(l && m && ld && l < m && m < ld, "logger, metrics, then the load:\n%s", c.console);
	cr_expect_null(strstr(c.console, "machine-config"), "%s", c.console);
	cr_expect_null(strstr(c.console, "InstanceStart"), "%s", c.console);
	cr_expect(strstr(c.console, "snapshot vmstate=readable mem=readable writable=no"), "%s", c.console);
	const char *p = strstr(c.console, "guest request ping"), *id = strstr(c.console, "guest request vm.identity");
	cr_expect(p && id && p < id, "ready after ping and a fresh identity:\n%s", c.console);
	no_vmm_left();

	/* A flipped byte: unusable, and the message says how to remove it. */
	snprintf(f, sizeof(f), "%s/mem", t.state);
	FILE *w = fopen(f, "r+");
	cr_assert(w);
	fputc('M', w);
	fclose(w);
	cr_expect_eq(vm_template_open(&s, &q, &e), -EBADMSG);
	cr_expect(strstr(e.msg, "corrupt") && strstr(e.msg, "ironclaw snapshot rm"), "%s", e.msg);
	unsigned removed = 0;
	cr_expect_eq(vm_template_prune(&removed, &e), 0, "%s", e.msg);
	cr_expect_eq(vm_template_remove(t.key, f, sizeof(f), &e), 0, "%s", e.msg);
	cr_expect_neq(stat(t.dir, &st), 0, "rm removes the directory state too");
}

Test(fc_template, the_cli_creates_lists_restores_and_removes_a_firecracker_template, .timeout = 300)
{
	char *create[] = { (char *)harness_ironclaw(), "snapshot", "create", "--backend", "firecracker", NULL };
	struct run_result r;
	cr_assert_eq(harness_run(create, NULL, 0, 120000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s%s", r.out, r.err);
	harness_result_free(&r);

	char *ls[] = { (char *)harness_ironclaw(), "snapshot", "ls", "--json", NULL };
	cr_assert_eq(harness_run(ls, NULL, 0, 30000, &r), 0);
	cr_expect(strstr(r.out, "\"stale\": false") || strstr(r.out, "\"stale\":false"), "%s", r.out);
	harness_result_free(&r);

	char *bad[] = { (char *)harness_ironclaw(), "snapshot", "create", "--backend", "auto", NULL };
	cr_assert_eq(harness_run(bad, NULL, 0, 30000, &r), 0);
	cr_expect_eq(r.exit_code, 2, "a template is for one backend: %s", r.err);
	harness_result_free(&r);

	/* exec restores from it (the stand-in then runs no command: that part is
	 * the real-binary test's). */
	char *ex[] = { (char *)harness_ironclaw(), "exec", "--backend", "firecracker", "--no-daemon", "--", "true",
		       NULL };
	setenv("IRONCLAW_LOG", "debug", 1);
	cr_assert_eq(harness_run(ex, NULL, 0, 120000, &r), 0);
	unsetenv("IRONCLAW_LOG");
	cr_expect(strstr(r.err, "restored from a template"), "exec used the template:\n%s", r.err);
	cr_expect_null(strstr(r.err, "booting cold"), "%s", r.err);
	harness_result_free(&r);
	no_vmm_left();

	struct vm_template list[4];
	size_t n = 0;
	struct err e = { 0 };
	cr_assert_eq(vm_template_list(list, 4, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 1);
	char *rm[] = { (char *)harness_ironclaw(), "snapshot", "rm", list[0].key, NULL };
	cr_assert_eq(harness_run(rm, NULL, 0, 30000, &r), 0);
	cr_expect_eq(r.exit_code, 0, "%s", r.err);
	harness_result_free(&r);
	struct stat st;
	cr_expect_neq(stat(list[0].dir, &st), 0);
}
