/* The Firecracker backend through vm.h, in the real jail under Firecracker's
 * seccomp policy, with a stand-in for the firecracker process
 * (tests/integration/peers/fc_api_peer.c: static, serves the API as
 * Firecracker does, and dies, refuses or hangs when its script says so).
 *
 *   - it dies at each step of the configuration: `failed` says Firecracker
 *     exited, quotes its log tail, and comes from the exit (the pidfd), not a
 *     deadline; the time from its exit to `failed` is printed;
 *   - it refuses a step with a fault_message: that message, verbatim;
 *   - it hangs: the boot deadline fires and the process is killed;
 *   - a restore (vm_options.restore_from): only logger and metrics before
 *     /snapshot/load, the snapshot visible read-only at /vm/snapshot, a
 *     refused load quoted; a QEMU template's state file is refused before
 *     any process starts;
 *   - template keys differ by backend, and QEMU's are unchanged;
 *   - after each: no VM directory, no process left.
 *
 * A real Firecracker (boot, exec, snapshot, restore, Seccomp: 2 on every
 * thread) is test_fc_real.c's, which skips where none can run. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "vm/template.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

struct ft {
	uv_loop_t loop;
	struct vm *vm;
	const char *script;
	int failed, destroyed;
	struct err e;
	uint64_t failed_ns;
	char console[4096];
};

static void ft_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct ft *t = ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t->failed_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	t->failed++;
	t->e = *e;
	/* The log is in the VM's directory, gone after destroy: read it now. */
	char path[256];
	snprintf(path, sizeof(path), "/run/ironclaw/%s/console.log", vm_id(vm));
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(t->console, 1, sizeof(t->console) - 1, f);
		t->console[n] = '\0';
		fclose(f);
	}
	vm_destroy(vm);
}

static void ft_ready(struct vm *vm, void *ctx)
{
	(void)ctx;
	vm_destroy(vm);
}

static void ft_destroyed(struct vm *vm, void *ctx)
{
	struct ft *t = ctx;
	(void)vm;
	t->destroyed = 1;
}

static void peer_path(char *out, size_t n)
{
	const char *bin = harness_ironclaw();   /* .../build[/cov]/ironclaw */
	snprintf(out, n, "%.*s/tests/integration/peers/fc_api_peer", (int)(strrchr(bin, '/') - bin), bin);
}

static void run_script_from(struct ft *t, const char *script, unsigned boot_timeout_ms, const char *restore_from)
{
	char peer[4096];
	peer_path(peer, sizeof(peer));
	cr_assert_eq(access(peer, X_OK), 0, "%s missing (make integration-tests builds it)", peer);
	setenv("IRONCLAW_FIRECRACKER", peer, 1);
	vmrun_use_checkout_image();
	memset(t, 0, sizeof(*t));
	uv_loop_init(&t->loop);
	struct vm_options o = { .backend = &vm_backend_firecracker, .boot_timeout_ms = boot_timeout_ms,
				.restore_from = restore_from };
	static const struct vm_events ev = { .ready = ft_ready, .failed = ft_failed, .destroyed = ft_destroyed };
	struct err e = { 0 };
	cr_assert_eq(vm_create(&t->loop, &o, &ev, t, &t->vm, &e), 0, "%s", e.msg);
	/* Written before the loop runs, so before any API request can arrive. */
	char vm_dir[128];
	/* This VM's own directory, not a count: other VMs may come and go meanwhile. */
	snprintf(vm_dir, sizeof(vm_dir), "/run/ironclaw/%s", vm_id(t->vm));
	if (script[0]) {
		char path[256];
		snprintf(path, sizeof(path), "/run/ironclaw/%s/peer-script", vm_id(t->vm));
		FILE *f = fopen(path, "w");
		cr_assert(f, "%s", path);
		fputs(script, f);
		fclose(f);
		chmod(path, 0644);
	}
	while (!t->destroyed && uv_run(&t->loop, UV_RUN_ONCE))
		;
	cr_assert(t->destroyed);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&t->loop), 0, "a handle was left open");
	struct stat st;
	cr_expect_neq(lstat(vm_dir, &st), 0, "the VM directory %s was left behind", vm_dir);
	pid_t left[4];
	cr_expect_eq(harness_find_processes("fc_api_peer", getpid(), left, 4), 0, "the VMM outlived its VM");
	unsetenv("IRONCLAW_FIRECRACKER");
}

static void run_script(struct ft *t, const char *script, unsigned boot_timeout_ms)
{
	run_script_from(t, script, boot_timeout_ms, NULL);
}

Test(fc_backend, death_at_each_step_is_reported_from_the_exit_with_the_log_tail, .timeout = 300)
{
	static const char *paths[] = { "/logger", "/metrics", "/machine-config", "/boot-source", "/vsock",
				       "/entropy", "/actions" };
	for (int k = 0; k < 7; k++) {
		struct ft t;
		char script[32];
		snprintf(script, sizeof(script), "die %d\n", k);
		run_script(&t, script, 60000);
		cr_assert_eq(t.failed, 1, "step %d", k);
		cr_expect(strstr(t.e.msg, "Firecracker exited with status 1"), "step %d: %s", k, t.e.msg);
		char want[64];
		snprintf(want, sizeof(want), "fc-peer: request PUT %s", paths[k]);
		cr_expect(strstr(t.e.msg, "fc-peer: exit-at-ns"), "step %d: the log tail is quoted: %s", k, t.e.msg);
		cr_expect(strstr(t.console, want), "step %d: %s", k, t.console);
		const char *at = strstr(t.console, "exit-at-ns ");
		if (at) {
			unsigned long long exit_ns = strtoull(at + 11, NULL, 10);
			printf("fc_backend: step %d (%s): failed %.2f ms after Firecracker's exit\n", k, paths[k],
			       (double)(t.failed_ns - exit_ns) / 1e6);
		}
	}
}

Test(fc_backend, a_refusal_reports_the_fault_message_verbatim, .timeout = 120)
{
	struct ft t;
	run_script(&t, "fault 3 Kernel image path is invalid: /vm/kernel\n", 60000);
	cr_assert_eq(t.failed, 1);
	cr_expect(strstr(t.e.msg, "Firecracker refused PUT /boot-source (HTTP 400): Kernel image path is invalid: /vm/kernel"),
		  "%s", t.e.msg);
}

Test(fc_backend, a_hung_firecracker_is_killed_at_the_boot_deadline, .timeout = 120)
{
	struct ft t;
	run_script(&t, "hang\n", 2000);
	cr_assert_eq(t.failed, 1);
	cr_expect(strstr(t.e.msg, "not ready within 2 s"), "%s", t.e.msg);
}

Test(fc_backend, a_restore_loads_first_from_the_read_only_snapshot_and_a_refusal_is_quoted, .timeout = 120)
{
	char snap[] = "/tmp/ic-fcsnap-XXXXXX", f[64];
	cr_assert(mkdtemp(snap));
	chmod(snap, 0755);   /* the jail's VMM user reads it */
	for (int i = 0; i < 2; i++) {
		snprintf(f, sizeof(f), "%s/%s", snap, i ? "mem" : "vmstate");
		FILE *q = fopen(f, "w");
		fputs("x", q);
		fclose(q);
		chmod(f, 0644);
	}
	struct ft t;
	run_script_from(&t, "fault 2 Cannot restore microvm state: peer says no\n", 60000, snap);
	cr_assert_eq(t.failed, 1);
	cr_expect(strstr(t.e.msg, "Firecracker refused PUT /snapshot/load (HTTP 400): Cannot restore microvm state: peer says no"),
		  "%s", t.e.msg);
	const char *l = strstr(t.console, "request PUT /logger"), *m = strstr(t.console, "request PUT /metrics"),
		   *s = strstr(t.console, "request PUT /snapshot/load");
	cr_expect(l && m && s && l < m && m < s, "logger, metrics, then the load:\n%s", t.console);
	cr_expect_null(strstr(t.console, "machine-config"), "%s", t.console);
	cr_expect(strstr(t.console, "snapshot vmstate=readable mem=readable writable=no"), "%s", t.console);

	/* A QEMU template's state is one file: refused before anything starts. */
	snprintf(f, sizeof(f), "%s/vmstate", snap);
	run_script_from(&t, "", 60000, f);
	cr_assert_eq(t.failed, 1);
	cr_expect(strstr(t.e.msg, "is not a Firecracker snapshot"), "%s", t.e.msg);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", snap);
	cr_assert_eq(system(cmd), 0);
}

Test(fc_backend, template_keys_differ_by_backend_and_qemu_keys_are_unchanged, .timeout = 300)
{
	vmrun_use_checkout_image();
	char peer[4096];
	peer_path(peer, sizeof(peer));
	setenv("IRONCLAW_FIRECRACKER", peer, 1);
	struct vm_template a, b, c;
	struct err e = { 0 };
	struct vm_template_shape s = { 0 };
	cr_assert_eq(vm_template_key(&s, &a, &e), 0, "%s", e.msg);
	s.backend = "qemu";
	cr_assert_eq(vm_template_key(&s, &b, &e), 0, "%s", e.msg);
	s.backend = "firecracker";
	cr_assert_eq(vm_template_key(&s, &c, &e), 0, "%s", e.msg);
	cr_expect_str_eq(a.key, b.key, "NULL is qemu");
	cr_expect_str_neq(a.key, c.key, "a QEMU template is never Firecracker's");
	setenv("IRONCLAW_FIRECRACKER", "/nonexistent/firecracker", 1);
	cr_expect_eq(vm_template_key(&s, &c, &e), -ENOENT, "no binary, no key");
	unsetenv("IRONCLAW_FIRECRACKER");
}
