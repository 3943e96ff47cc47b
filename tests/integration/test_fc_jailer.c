/* Firecracker's jailer, configured (IRONCLAW_FC_JAILER, as `--jailer PATH`
 * sets it), through vm.h in the real jail: the jail starts the jailer as
 * root (everything else as for any VMM: namespaces, root, cgroups, seccomp),
 * and the jailer starts Firecracker in its chroot inside the VM directory.
 * The jailer is a stand-in written for this test (peers/fc_jailer_peer.c:
 * the documented options only, chroot, pivot_root, mknod, privilege drop,
 * exec of the exec file, with real system calls under our seccomp policy),
 * and the "Firecracker" it execs is the API stand-in (peers/fc_api_peer.c),
 * copied under a name with "firecracker" in it as the real jailer requires.
 *
 *   - the jailer's argv has its documented options with our VM's id, uid,
 *     gid and chroot base, nothing else (--daemonize and --no-seccomp never),
 *     and Firecracker's after `--`: --api-sock inside the chroot and
 *     --seccomp-filter with a user filter;
 *   - the filter is in the chroot when Firecracker starts, the kernel and
 *     initramfs when it is configured, and the VM becomes ready (hello over
 *     vsock in the chroot);
 *   - destroying it removes the VM directory, and with it the chroot; no
 *     process is left. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"
#include "jail/jail.h"
#include "lib/harness.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

#define FC_NAME "firecracker-standin"

static char tmp[64];

struct jt {
	uv_loop_t loop;
	int ready, failed, destroyed;
	struct err e;
	char argv_text[4096], console[8192];
	char dir[128];
};

static void jt_read(struct jt *t, struct vm *vm)
{
	char p[512];
	char *s = NULL;
	size_t n = 0;
	snprintf(p, sizeof(p), "/run/ironclaw/%s/jailer-argv", vm_id(vm));
	if (io_read_file(p, sizeof(t->argv_text) - 1, &s, &n) == 0)
		snprintf(t->argv_text, sizeof(t->argv_text), "%s", s);
	free(s);
	s = NULL;
	snprintf(p, sizeof(p), "/run/ironclaw/%s/" FC_NAME "/%s/root/run/vm/console.log", vm_id(vm), vm_id(vm));
	if (io_read_file(p, sizeof(t->console) - 1, &s, &n) == 0)
		snprintf(t->console, sizeof(t->console), "%s", s);
	free(s);
}

static void jt_ready(struct vm *vm, void *ctx)
{
	struct jt *t = ctx;
	t->ready = 1;
	jt_read(t, vm);
	vm_destroy(vm);
}

static void jt_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct jt *t = ctx;
	t->failed = 1;
	t->e = *e;
	jt_read(t, vm);
	vm_destroy(vm);
}

static void jt_destroyed(struct vm *vm, void *ctx)
{
	(void)vm;
	((struct jt *)ctx)->destroyed = 1;
}

/* One argv line after `after` (the value of an option), or NULL. */
static const char *arg_after(const char *text, const char *opt, char *out, size_t n)
{
	char want[64];
	snprintf(want, sizeof(want), "\n%s\n", opt);
	const char *at = strstr(text, want);
	if (!at)
		return NULL;
	at += strlen(want);
	snprintf(out, n, "%.*s", (int)strcspn(at, "\n"), at);
	return out;
}

static void jailer_run(int net);

Test(fc_jailer, the_jailer_gets_its_documented_options_and_firecracker_runs_in_its_chroot, .timeout = 180)
{
	jailer_run(0);
}

/* With --net: the jailer joins the VM's netns by path (bound into our jail)
 * and makes the chroot's /dev/net/tun; Firecracker attaches to the owned tap. */
Test(fc_jailer, with_a_nic_it_joins_the_vms_netns_and_firecracker_attaches_its_tap, .timeout = 180)
{
	cr_assert_eq(geteuid(), 0, "the network tests need root (CI runs them as root)");
	jailer_run(1);
}

static void jailer_run(int net)
{
	const char *bin = harness_ironclaw();
	char peers[4096], cmd[8400], fc[200], filter[200], jailer[4200];
	snprintf(peers, sizeof(peers), "%.*s/tests/integration/peers", (int)(strrchr(bin, '/') - bin), bin);
	snprintf(jailer, sizeof(jailer), "%s/fc_jailer_peer", peers);
	cr_assert_eq(access(jailer, X_OK), 0, "%s missing (make integration-tests builds it)", jailer);
	snprintf(tmp, sizeof(tmp), "/tmp/ic-fcjail-XXXXXX");
	cr_assert(mkdtemp(tmp));
	chmod(tmp, 0755);
	/* The real jailer wants "firecracker" in the exec file's name. */
	snprintf(fc, sizeof(fc), "%s/" FC_NAME, tmp);
	snprintf(cmd, sizeof(cmd), "cp %s/fc_api_peer %s", peers, fc);
	cr_assert_eq(system(cmd), 0);
	snprintf(filter, sizeof(filter), "%s/filter.bpf", tmp);
	FILE *f = fopen(filter, "w");
	cr_assert(f);
	fputs("a compiled filter stands here\n", f);
	fclose(f);
	chmod(filter, 0644);
	setenv("IRONCLAW_FIRECRACKER", fc, 1);
	setenv("IRONCLAW_FC_JAILER", jailer, 1);
	setenv("IRONCLAW_FC_SECCOMP_FILTER", filter, 1);
	vmrun_use_checkout_image();

	struct jt t;
	memset(&t, 0, sizeof(t));
	uv_loop_init(&t.loop);
	struct vm_options o = { .backend = &vm_backend_firecracker, .boot_timeout_ms = 60000, .net = net };
	static const struct vm_events ev = { .ready = jt_ready, .failed = jt_failed, .destroyed = jt_destroyed };
	struct vm *vm;
	struct err e = { 0 };
	cr_assert_eq(vm_create(&t.loop, &o, &ev, &t, &vm, &e), 0, "%s", e.msg);
	char id[64];
	snprintf(id, sizeof(id), "%s", vm_id(vm));
	snprintf(t.dir, sizeof(t.dir), "/run/ironclaw/%s", id);
	while (!t.destroyed && uv_run(&t.loop, UV_RUN_ONCE))
		;
	uv_run(&t.loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&t.loop), 0, "a handle was left open");
	unsetenv("IRONCLAW_FC_JAILER");
	unsetenv("IRONCLAW_FC_SECCOMP_FILTER");
	unsetenv("IRONCLAW_FIRECRACKER");

	cr_expect(t.ready, "not ready through the jailer: %s\nargv:\n%s\nlog:\n%s", t.e.msg, t.argv_text, t.console);
	/* The argv, against the jailer's documented options. */
	struct jail_names names;
	cr_assert_eq(jail_names_make(id, &names, &e), 0, "%s", e.msg);
	char v[256], want[32];
	struct stat st0;
	cr_expect_str_eq(arg_after(t.argv_text, "--id", v, sizeof(v)) ? v : "", id);
	cr_expect_str_eq(arg_after(t.argv_text, "--exec-file", v, sizeof(v)) ? v : "", fc);
	snprintf(want, sizeof(want), "%u", (unsigned)names.uid);
	cr_expect_str_eq(arg_after(t.argv_text, "--uid", v, sizeof(v)) ? v : "", want, "the VM's own uid");
	snprintf(want, sizeof(want), "%u", (unsigned)names.gid);
	cr_expect_str_eq(arg_after(t.argv_text, "--gid", v, sizeof(v)) ? v : "", want);
	cr_expect_str_eq(arg_after(t.argv_text, "--chroot-base-dir", v, sizeof(v)) ? v : "", "/dev/fc-jailer");
	cr_expect(arg_after(t.argv_text, "--cgroup-version", v, sizeof(v)) && (!strcmp(v, "1") || !strcmp(v, "2")));
	cr_expect(arg_after(t.argv_text, "--parent-cgroup", v, sizeof(v)));
	cr_expect_str_eq(arg_after(t.argv_text, "--api-sock", v, sizeof(v)) ? v : "", "/run/vm/fc.sock");
	cr_expect_str_eq(arg_after(t.argv_text, "--seccomp-filter", v, sizeof(v)) ? v : "", "/vm/seccomp.bpf");
	cr_expect_null(strstr(t.argv_text, "--no-seccomp"), "%s", t.argv_text);
	cr_expect_null(strstr(t.argv_text, "--daemonize"), "%s", t.argv_text);
	if (net) {
		cr_expect_str_eq(arg_after(t.argv_text, "--netns", v, sizeof(v)) ? v : "", names.netns_path);
		cr_expect(strstr(t.console, "tap attach tap0: ok"), "%s", t.console);
		cr_expect(strstr(t.console, "tap create tap1: Operation not permitted"), "%s", t.console);
		cr_expect_neq(lstat(names.netns_path, &st0), 0, "the netns was left behind");
	} else {
		cr_expect_null(strstr(t.argv_text, "\n--netns\n"), "%s", t.argv_text);
	}
	const char *dd = strstr(t.argv_text, "\n--\n"), *as = strstr(t.argv_text, "\n--api-sock\n");
	cr_expect(dd && as && dd < as, "Firecracker's options come after --:\n%s", t.argv_text);
	/* Inside the chroot. */
	cr_expect(strstr(t.console, "fc-peer: seccomp-filter readable"), "%s", t.console);
	cr_expect(strstr(t.console, "fc-peer: kernel readable"), "%s", t.console);
	/* Cleanup: the chroot was in the VM directory. */
	struct stat st;
	cr_expect_neq(lstat(t.dir, &st), 0, "the VM directory (and the chroot in it) was left behind");
	pid_t left[4];
	cr_expect_eq(harness_find_processes(FC_NAME, getpid(), left, 4), 0, "Firecracker outlived its VM");
	cr_expect_eq(harness_find_processes("fc_jailer_peer", getpid(), left, 4), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	cr_expect_eq(system(cmd), 0);
}
