/* The Firecracker backend's ops (vm_backend_firecracker) driven directly, as
 * vm.c drives them, with no process behind them: an API peer on the VM
 * directory's fc.sock (tests/unit/fc_peer.h) and a hybrid-vsock peer on
 * v.sock that answers OK. Covers what the jailed test cannot reach without a
 * guest: connect to the end (configuration, then the vsock fd), pause,
 * resume, snapshot save as vm.h's (paused, created inside the VM directory,
 * moved to the caller's new directory, left paused),
 * stop (Ctrl-Alt-Del), a refused pause, the restore path (snapshot load
 * before any other configuration, readiness by ping; also as vm.c does it for
 * vm_options.restore_from: taken from the plan's spec, acknowledged after
 * connect), a QEMU state refused, and release leaving no handle. */
#include <criterion/criterion.h>
#include <sys/prctl.h>
#include <uv.h>

#include "core/io.h"
#include "unit/fc_peer.h"
#include "vm/backend.h"

static pid_t vsock_peer(const char *dir)
{
	char path[108];
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(ls, 4), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int c = accept(ls, NULL, NULL);
		char ch;
		while (read(c, &ch, 1) == 1 && ch != '\n')
			;
		if (write(c, "OK 1073741824\n", 14) != 14)
			_exit(1);
		while (read(c, &ch, 1) > 0)
			;
		_exit(0);
	}
	close(ls);
	return pid;
}

struct ot {
	uv_loop_t loop;
	char dir[64];
	struct vm_backend_vm bv;
	struct fc_peer api;
	pid_t vpeer;
	int connected, fd;
	struct err e;
	int ops, op_failed;
	struct err op_e;
	int restored;
};

static void on_connected(void *ctx, int fd, const struct err *e)
{
	struct ot *t = ctx;
	t->connected++;
	t->fd = fd;
	if (e)
		t->e = *e;
}

static void on_op(void *ctx, const struct err *e)
{
	struct ot *t = ctx;
	t->ops++;
	if (e) {
		t->op_failed++;
		t->op_e = *e;
	}
}

static void on_restored(void *ctx, const struct err *e)
{
	struct ot *t = ctx;
	t->restored = e ? -1 : 1;
}

static void run_until(struct ot *t, const int *v, int want)
{
	for (int i = 0; i < 100000 && *v < want; i++)
		uv_run(&t->loop, UV_RUN_ONCE);
	cr_assert_geq(*v, want);
}

static const struct vm_backend_ops *fc = &vm_backend_firecracker;

static void ot_start(struct ot *t, const struct fc_peer_step *script)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/ic-fcops-XXXXXX");
	cr_assert(mkdtemp(t->dir));
	uv_loop_init(&t->loop);
	fc_peer_start_at(&t->api, t->dir, "fc.sock", script);
	t->vpeer = vsock_peer(t->dir);
	t->bv = (struct vm_backend_vm){ .loop = &t->loop, .id = "vm-ops", .dir = t->dir,
					.state = calloc(1, fc->state_size) };
}

static void ot_connect(struct ot *t)
{
	struct err e = { 0 };
	/* vm.c always plans before it connects: the plan fixes vCPUs and memory. */
	struct vm_launch_plan *plan = calloc(1, sizeof(*plan));
	struct vm_backend_spec spec = { .id = "vm-ops", .dir = t->dir, .kernel = "/k", .initrd = "/i", .cpus = 1,
					.memory_mib = 128, .accel = VM_ACCEL_KVM, .tap_fd = -1 };
	setenv("IRONCLAW_FIRECRACKER", "/bin/true", 1);
	cr_assert_eq(fc->plan(&t->bv, &spec, plan, &e), 0, "%s", e.msg);
	unsetenv("IRONCLAW_FIRECRACKER");
	free(plan);
	cr_assert_eq(fc->connect(&t->bv, 5000, on_connected, t, &e), 0, "%s", e.msg);
	run_until(t, &t->connected, 1);
	cr_assert_geq(t->fd, 0, "%s", t->e.msg);
}

static char *ot_stop(struct ot *t)
{
	fc->release(&t->bv);
	if (t->fd >= 0)
		close(t->fd);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&t->loop), 0, "release left a handle open");
	free(t->bv.state);
	char *log = fc_peer_log(&t->api);
	fc_peer_stop(&t->api);
	kill(t->vpeer, SIGKILL);
	waitpid(t->vpeer, NULL, 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	cr_assert_eq(system(cmd), 0);
	return log;
}

Test(fc_ops, connect_then_pause_resume_snapshot_and_stop)
{
	struct ot t;
	ot_start(&t, NULL);
	ot_connect(&t);
	cr_expect_eq(fc->readiness(&t.bv), VM_READY_ON_HELLO);
	char p[128];
	snprintf(p, sizeof(p), "%s/console.log", t.dir);
	cr_expect_eq(access(p, F_OK), 0, "the log file Firecracker's logger needs exists");
	cr_assert_eq(fc->pause(&t.bv, on_op, &t), 0);
	cr_expect_eq(fc->resume(&t.bv, on_op, &t), -EBUSY, "one API call at a time");
	run_until(&t, &t.ops, 1);
	cr_assert_eq(fc->resume(&t.bv, on_op, &t), 0);
	run_until(&t, &t.ops, 2);
	char out[160];
	/* On another filesystem than the VM directory (tmpfs): the move is a copy. */
	snprintf(out, sizeof(out), "/dev/shm/ic-fcops-saved-%d", (int)getpid());
	cr_expect_eq(fc->snapshot_save(&t.bv, "relative", on_op, &t), -EINVAL);
	snprintf(p, sizeof(p), "%s/../x", t.dir);
	cr_expect_eq(fc->snapshot_save(&t.bv, p, on_op, &t), -EINVAL);
	cr_expect_eq(fc->snapshot_save(&t.bv, t.dir, on_op, &t), -EEXIST, "a new directory only");
	cr_assert_eq(fc->snapshot_save(&t.bv, out, on_op, &t), 0);
	run_until(&t, &t.ops, 3);
	cr_expect_eq(t.op_failed, 0, "%s", t.op_e.msg);
	/* What Firecracker wrote in the VM directory is now at the caller's path. */
	char f[200];
	snprintf(f, sizeof(f), "%s/vmstate", out);
	char *vs = NULL, *mem = NULL;
	size_t n = 0;
	cr_expect_eq(io_read_file(f, 4096, &vs, &n), 0, "%s", f);
	snprintf(f, sizeof(f), "%s/mem", out);
	cr_expect_eq(io_read_file(f, 4096, &mem, &n), 0, "%s", f);
	cr_expect(vs && !strcmp(vs, "vmstate of the peer\n"));
	cr_expect(mem && !strcmp(mem, "mem of the peer\n"));
	free(vs);
	free(mem);
	struct stat sb;
	cr_expect_eq(stat(out, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0755, "ours, readable by a restoring VMM's uid");
	cr_expect_eq(sb.st_uid, getuid());
	snprintf(f, sizeof(f), "%s/snapshot-save", t.dir);
	cr_expect_neq(access(f, F_OK), 0, "nothing left in the VM directory");
	cr_expect_eq(fc->snapshot_load(&t.bv, "/tmp", on_op, &t), -EALREADY, "a load replaces the boot");
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", out);
	cr_assert_eq(system(cmd), 0);
	fc->stop(&t.bv);
	/* stop has no answer but Firecracker's exit; the loop runs dry once its
	 * request is done (nothing else of ours is active). */
	uv_run(&t.loop, UV_RUN_DEFAULT);
	char *log = ot_stop(&t);
	const char *order[] = { "PUT /actions {\"action_type\":\"InstanceStart\"}", "PATCH /vm {\"state\":\"Paused\"}",
				"PATCH /vm {\"state\":\"Resumed\"}", "PATCH /vm {\"state\":\"Paused\"}",
				"PUT /snapshot/create {\"snapshot_type\":\"Full\",\"snapshot_path\":\"/run/vm/snapshot-save/vmstate\","
				"\"mem_file_path\":\"/run/vm/snapshot-save/mem\"}",
				"PUT /actions {\"action_type\":\"SendCtrlAltDel\"}" };
	const char *at = log;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *q = strstr(at, order[i]);
		cr_expect(q, "%s missing or out of order in:\n%s", order[i], log);
		at = q ? q + 1 : at;
	}
	const char *created = strstr(log, "PUT /snapshot/create");
	cr_expect(created && !strstr(created, "Resumed"), "the guest stays paused after a save:\n%s", log);
	free(log);
}

Test(fc_ops, a_refused_pause_reports_the_fault)
{
	static const struct fc_peer_step script[] = { { 7, PEER_FAULT, "The requested operation is not supported" },
						      { -1, 0, NULL } };
	struct ot t;
	ot_start(&t, script);
	ot_connect(&t);
	cr_assert_eq(fc->pause(&t.bv, on_op, &t), 0);
	run_until(&t, &t.ops, 1);
	cr_expect_eq(t.op_failed, 1);
	cr_expect(strstr(t.op_e.msg, "Firecracker refused PATCH /vm (HTTP 400): The requested operation is not supported"),
		  "%s", t.op_e.msg);
	free(ot_stop(&t));
}

Test(fc_ops, a_restore_loads_the_snapshot_before_anything_else_and_waits_for_ping)
{
	struct ot t;
	ot_start(&t, NULL);
	cr_assert_eq(fc->snapshot_load(&t.bv, "relative", on_restored, &t), -EINVAL);
	char snap[128], f[160];
	snprintf(snap, sizeof(snap), "%s/t1", t.dir);
	cr_assert_eq(mkdir(snap, 0700), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(f, sizeof(f), "%s/%s", snap, i ? "mem" : "vmstate");
		FILE *q = fopen(f, "w");
		fputs("x", q);
		fclose(q);
	}
	cr_assert_eq(fc->snapshot_load(&t.bv, snap, on_restored, &t), 0);
	struct vm_launch_plan *plan = calloc(1, sizeof(*plan));
	struct vm_backend_spec spec = { .id = "vm-ops", .dir = t.dir, .kernel = "/k", .initrd = "/i", .cpus = 1,
					.memory_mib = 128, .accel = VM_ACCEL_KVM, .tap_fd = -1 };
	setenv("IRONCLAW_FIRECRACKER", "/bin/true", 1);
	struct err e = { 0 };
	cr_assert_eq(fc->plan(&t.bv, &spec, plan, &e), 0, "%s", e.msg);
	int bound = 0;
	for (size_t i = 0; i < plan->n_binds; i++)
		bound |= !strcmp(plan->binds[i].jail_path, "/vm/snapshot") && !plan->binds[i].writable;
	cr_expect(bound, "the snapshot directory is bound read-only");
	free(plan);
	unsetenv("IRONCLAW_FIRECRACKER");
	ot_connect(&t);
	cr_expect_eq(t.restored, 1);
	cr_expect_eq(fc->readiness(&t.bv), VM_READY_ON_PING, "no hello comes from a restored guest");
	char *log = ot_stop(&t);
	cr_expect_eq(strncmp(log, "PUT /logger ", 12), 0, "%s", log);
	const char *load = strstr(log, "\nPUT /snapshot/load ");
	cr_assert(load, "%s", log);
	cr_expect(strstr(load, "\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"/vm/snapshot/mem\"}"), "%s", log);
	cr_expect_null(strstr(log, "machine-config"), "nothing but logger and metrics before a load:\n%s", log);
	cr_expect_null(strstr(log, "InstanceStart"), "%s", log);
	free(log);
}

/* vm_options.restore_from as vm.c passes it: in the plan's spec (bound
 * read-only, loaded during connect), then snapshot_load after connect, which
 * only acknowledges. A QEMU template's state (one file) is refused by plan. */
Test(fc_ops, a_restore_from_the_spec_is_bound_loaded_and_acknowledged_after_connect)
{
	struct ot t;
	ot_start(&t, NULL);
	char snap[128], f[160];
	snprintf(snap, sizeof(snap), "%s/tpl", t.dir);
	cr_assert_eq(mkdir(snap, 0700), 0);
	struct vm_launch_plan *plan = calloc(1, sizeof(*plan));
	struct vm_backend_spec spec = { .id = "vm-ops", .dir = t.dir, .kernel = "/k", .initrd = "/i", .cpus = 1,
					.memory_mib = 128, .accel = VM_ACCEL_KVM, .tap_fd = -1, .restore = 1,
					.restore_from = snap };
	setenv("IRONCLAW_FIRECRACKER", "/bin/true", 1);
	struct err e = { 0 };
	cr_expect_eq(fc->plan(&t.bv, &spec, plan, &e), -ENOENT, "no vmstate yet");
	cr_expect(strstr(e.msg, "has no vmstate file"), "%s", e.msg);
	memset(t.bv.state, 0, fc->state_size);
	/* A QEMU template's state is one file. */
	snprintf(f, sizeof(f), "%s/state", t.dir);
	FILE *q = fopen(f, "w");
	fputs("QEVM", q);
	fclose(q);
	spec.restore_from = f;
	err_clear(&e);
	cr_expect_eq(fc->plan(&t.bv, &spec, plan, &e), -EINVAL);
	cr_expect(strstr(e.msg, "is not a Firecracker snapshot"), "%s", e.msg);
	memset(t.bv.state, 0, fc->state_size);
	spec.restore_from = snap;
	for (int i = 0; i < 2; i++) {
		snprintf(f, sizeof(f), "%s/%s", snap, i ? "mem" : "vmstate");
		q = fopen(f, "w");
		fputs("x", q);
		fclose(q);
	}
	err_clear(&e);
	cr_assert_eq(fc->plan(&t.bv, &spec, plan, &e), 0, "%s", e.msg);
	int bound = 0;
	for (size_t i = 0; i < plan->n_binds; i++)
		bound |= !strcmp(plan->binds[i].jail_path, "/vm/snapshot") && !strcmp(plan->binds[i].host_path, snap) &&
			 !plan->binds[i].writable;
	cr_expect(bound, "the snapshot directory is bound read-only");
	cr_expect_geq(plan->fsize_max_bytes, 128ull << 20, "a mem file as large as guest RAM may be written");
	free(plan);
	cr_assert_eq(fc->connect(&t.bv, 5000, on_connected, &t, &e), 0, "%s", e.msg);
	unsetenv("IRONCLAW_FIRECRACKER");
	run_until(&t, &t.connected, 1);
	cr_assert_geq(t.fd, 0, "%s", t.e.msg);
	cr_expect_eq(fc->readiness(&t.bv), VM_READY_ON_PING);
	cr_expect_eq(fc->snapshot_load(&t.bv, "/elsewhere", on_restored, &t), -EALREADY);
	cr_assert_eq(fc->snapshot_load(&t.bv, snap, on_restored, &t), 0);
	cr_expect_eq(t.restored, 1, "acknowledged: the load already happened");
	char *log = ot_stop(&t);
	cr_expect_eq(strncmp(log, "PUT /logger ", 12), 0, "%s", log);
	const char *load = strstr(log, "\nPUT /snapshot/load ");
	cr_assert(load, "%s", log);
	cr_expect(strstr(load, "\"resume_vm\":true"), "%s", log);
	cr_expect_null(strstr(log, "machine-config"), "nothing but logger and metrics before a load:\n%s", log);
	free(log);
}
