/* A real Firecracker, where one can run: boot, exec, pause/resume, snapshot
 * and restore, and its seccomp filters in force (`Seccomp: 2` on every
 * thread in /proc/<pid>/task/<tid>/status); `--net` (the guest's eth0 has
 * the MAC we gave, and a TCP connection to an allowed host port arrives);
 * a Firecracker template built, then restored into a VM that runs a command;
 * a command through Firecracker's jailer when IRONCLAW_FC_JAILER names one. Needs a `firecracker` binary
 * (IRONCLAW_FIRECRACKER or PATH) and a KVM that really runs guests (the same
 * probe boot the QEMU backend uses); otherwise each test prints why it
 * skipped. The guest image is the default one (its vmlinux is an ELF with a
 * PVH note, which Firecracker boots; its initramfs carries the vsock
 * modules). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "vm/exec.h"
#include "vm/template.h"
#include "vm/fc_backend.h"
#include "vm/qemu.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

static int fc_can_run(char *why, size_t n)
{
	char bin[PATH_MAX];
	if (fc_binary_find(bin, sizeof(bin)) < 0) {
		snprintf(why, n, "no firecracker binary (set IRONCLAW_FIRECRACKER or put it on PATH)");
		return 0;
	}
	vmrun_use_checkout_image();
	struct vm_image img;
	struct err e = { 0 };
	if (vm_image_find(&img, &e) < 0) {
		snprintf(why, n, "no guest image: %.400s", e.msg);
		return 0;
	}
	struct vm_accel_verdict v;
	vm_accel_detect(QEMU_BINARY, img.kernel, img.initrd, &v);
	if (v.accel != VM_ACCEL_KVM) {
		snprintf(why, n, "KVM does not run guests here: %.256s", v.reason);
		return 0;
	}
	return 1;
}

struct rt {
	uv_loop_t loop;
	struct vm *vm;
	int ready, failed, destroyed, exit_code, paused, resumed;
	int seccomp_threads, threads;
	char out[64];
	size_t out_len;
	struct err e;
};

static void rt_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct rt *t = ctx;
	(void)x;
	if (stream == 1 && t->out_len + n < sizeof(t->out)) {
		memcpy(t->out + t->out_len, d, n);
		t->out_len += n;
	}
}

static void rt_exec_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct rt *t = ctx;
	(void)x;
	t->exit_code = r->err.code ? -1 : r->code;
	vm_destroy(t->vm);
}

static void rt_count_seccomp(struct rt *t)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", vm_vmm_pid(t->vm));
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[400], line[128];
		snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
		FILE *f = fopen(path, "r");
		t->threads++;
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "Seccomp:", 8) && strtol(line + 8, NULL, 10) == 2)
				t->seccomp_threads++;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

static void rt_resumed(void *ctx, const struct err *e)
{
	struct rt *t = ctx;
	t->resumed = !e;
	static char *argv[] = { "echo", "fc-ok", NULL };
	static const struct vm_exec_handlers h = { .output = rt_output, .done = rt_exec_done };
	struct vm_exec_spec spec = { .argv = argv };
	struct vm_exec *x;
	struct err xe = { 0 };
	if (vm_exec_start(t->vm, &spec, &h, t, &x, &xe) < 0)
		vm_destroy(t->vm);
}

static void rt_paused(void *ctx, const struct err *e)
{
	struct rt *t = ctx;
	t->paused = !e;
	if (vm_resume(t->vm, rt_resumed, t) < 0)
		vm_destroy(t->vm);
}

static void rt_ready(struct vm *vm, void *ctx)
{
	struct rt *t = ctx;
	t->ready = 1;
	rt_count_seccomp(t);
	if (vm_pause(vm, rt_paused, t) < 0)
		vm_destroy(vm);
}

static void rt_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct rt *t = ctx;
	t->failed = 1;
	t->e = *e;
	vm_destroy(vm);
}

static void rt_destroyed(struct vm *vm, void *ctx)
{
	struct rt *t = ctx;
	(void)vm;
	t->destroyed = 1;
}

Test(fc_real, boot_exec_pause_resume_with_seccomp_on_every_thread, .timeout = 180)
{
	char why[512];
	if (!fc_can_run(why, sizeof(why))) {
		printf("fc_real: skipped: %s\n", why);
		cr_skip_test("%s", why);
	}
	struct rt t = { .exit_code = -2 };
	uv_loop_init(&t.loop);
	struct vm_options o = { .backend = &vm_backend_firecracker };
	static const struct vm_events ev = { .ready = rt_ready, .failed = rt_failed, .destroyed = rt_destroyed };
	struct err e = { 0 };
	cr_assert_eq(vm_create(&t.loop, &o, &ev, &t, &t.vm, &e), 0, "%s", e.msg);
	while (!t.destroyed && uv_run(&t.loop, UV_RUN_ONCE))
		;
	uv_run(&t.loop, UV_RUN_DEFAULT);
	uv_loop_close(&t.loop);
	cr_assert_not(t.failed, "%s", t.e.msg);
	cr_expect(t.ready && t.paused && t.resumed);
	cr_expect_eq(t.exit_code, 0);
	cr_expect_eq(strncmp(t.out, "fc-ok\n", 6), 0, "%.*s", (int)t.out_len, t.out);
	cr_expect_gt(t.threads, 1);
	cr_expect_eq(t.seccomp_threads, t.threads, "Seccomp: 2 on %d of %d threads", t.seccomp_threads, t.threads);
}

/* ---- one command in a VM, then destroy ---- */

struct one {
	uv_loop_t loop;
	struct vm *vm;
	char *const *argv;
	int ready, failed, destroyed, exit_code;
	char out[256];
	size_t out_len;
	struct err e;
};

static void one_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct one *t = ctx;
	(void)x;
	if (stream == 1 && t->out_len + n < sizeof(t->out)) {
		memcpy(t->out + t->out_len, d, n);
		t->out_len += n;
	}
}

static void one_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct one *t = ctx;
	(void)x;
	t->exit_code = r->err.code ? -1 : r->code;
	vm_destroy(t->vm);
}

static void one_ready(struct vm *vm, void *ctx)
{
	struct one *t = ctx;
	t->ready = 1;
	static const struct vm_exec_handlers h = { .output = one_output, .done = one_done };
	struct vm_exec_spec spec = { .argv = t->argv };
	struct vm_exec *x;
	struct err xe = { 0 };
	if (vm_exec_start(vm, &spec, &h, t, &x, &xe) < 0)
		vm_destroy(vm);
}

static void one_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct one *t = ctx;
	t->failed = 1;
	t->e = *e;
	vm_destroy(vm);
}

static void one_destroyed(struct vm *vm, void *ctx)
{
	(void)vm;
	((struct one *)ctx)->destroyed = 1;
}

static void one_run(struct one *t, struct vm_options *o, char *const *argv)
{
	memset(t, 0, sizeof(*t));
	t->exit_code = -2;
	t->argv = argv;
	uv_loop_init(&t->loop);
	static const struct vm_events ev = { .ready = one_ready, .failed = one_failed, .destroyed = one_destroyed };
	struct err e = { 0 };
	cr_assert_eq(vm_create(&t->loop, o, &ev, t, &t->vm, &e), 0, "%s", e.msg);
	while (!t->destroyed && uv_run(&t->loop, UV_RUN_ONCE))
		;
	uv_run(&t->loop, UV_RUN_DEFAULT);
	uv_loop_close(&t->loop);
}

#define REAL_PORT 18097

Test(fc_real, net_the_guest_nic_has_our_mac_and_reaches_an_allowed_port, .timeout = 180)
{
	char why[512];
	if (!fc_can_run(why, sizeof(why))) {
		printf("fc_real: skipped: %s\n", why);
		cr_skip_test("%s", why);
	}
	/* The host end of every VM's veth is in 100.64.0.0/10 (jail/net.c). */
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(REAL_PORT) };
	cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(l, 4), 0);
	const struct jail_net_allow allow[] = { { 0x64400000u, 10, REAL_PORT } };
	struct vm_options o = { .backend = &vm_backend_firecracker, .net = 1, .allow = allow, .n_allow = 1 };
	/* The gateway is the tap's address; the host end is 4 below it. */
	static char script[] = "cat /sys/class/net/eth0/address; gw=$(ip route | awk '/default/ {print $3}'); "
			       "h=${gw%.*}.$(( ${gw##*.} - 4 )); wget -q -T 3 -O /dev/null http://$h:18097/ ; true";
	static char *argv[] = { "sh", "-c", script, NULL };
	struct one t;
	one_run(&t, &o, argv);
	cr_assert_not(t.failed, "%s", t.e.msg);
	cr_expect_eq(strncmp(t.out, "06:fc:", 6), 0, "eth0 has the guest_mac we sent: %.*s", (int)t.out_len, t.out);
	struct pollfd pf = { .fd = l, .events = POLLIN };
	cr_expect_eq(poll(&pf, 1, 0), 1, "no connection arrived on the allowed port");
	close(l);
}

struct tb {
	int done;
	struct vm_template t;
	struct err e;
};

static void tb_built(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct tb *b = ctx;
	b->done = 1;
	if (t)
		b->t = *t;
	else
		b->e = *e;
}

Test(fc_real, a_template_is_built_and_a_restored_vm_runs_a_command, .timeout = 300)
{
	char why[512];
	if (!fc_can_run(why, sizeof(why))) {
		printf("fc_real: skipped: %s\n", why);
		cr_skip_test("%s", why);
	}
	char cache[] = "/tmp/ic-fcreal-XXXXXX";
	cr_assert(mkdtemp(cache));
	setenv("XDG_CACHE_HOME", cache, 1);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vm_template_shape s = { .backend = "firecracker" };
	struct tb b = { 0 };
	struct err e = { 0 };
	cr_assert_eq(vm_template_build(&loop, &s, tb_built, &b, &e), 0, "%s", e.msg);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	cr_assert(b.done && !b.e.code, "%s", b.e.msg);
	static char *argv[] = { "echo", "restored-ok", NULL };
	struct vm_options o = { .backend = &vm_backend_firecracker, .restore_from = b.t.state };
	struct one t;
	one_run(&t, &o, argv);
	cr_expect_not(t.failed, "%s", t.e.msg);
	cr_expect_eq(t.exit_code, 0);
	cr_expect_eq(strncmp(t.out, "restored-ok\n", 12), 0, "%.*s", (int)t.out_len, t.out);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	cr_expect_eq(system(cmd), 0);
	unsetenv("XDG_CACHE_HOME");
}

Test(fc_real, through_its_jailer_when_one_is_configured, .timeout = 180)
{
	char why[512];
	if (!fc_can_run(why, sizeof(why))) {
		printf("fc_real: skipped: %s\n", why);
		cr_skip_test("%s", why);
	}
	const char *jailer = getenv("IRONCLAW_FC_JAILER");
	if (!jailer || !jailer[0]) {
		printf("fc_real: skipped: no jailer configured (set IRONCLAW_FC_JAILER to Firecracker's jailer)\n");
		cr_skip_test("no jailer configured");
	}
	static char *argv[] = { "echo", "jailed-ok", NULL };
	struct vm_options o = { .backend = &vm_backend_firecracker };
	struct one t;
	one_run(&t, &o, argv);
	cr_expect_not(t.failed, "%s", t.e.msg);
	cr_expect_eq(strncmp(t.out, "jailed-ok\n", 10), 0, "%.*s", (int)t.out_len, t.out);
}
