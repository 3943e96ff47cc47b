/* The jail and the seccomp filter, enforced: a stand-in process
 * (tests/data/jail/standin.c, built static here) is started through
 * jail_spawn exactly as the VMM is, and the tests watch the kernel react:
 * forbidden syscalls die of SIGSYS and land in the audit ring and log, the
 * process runs with Seccomp: 2 / a non-root uid / its own namespaces / only
 * the bound files / cgroup limits that hold, and any failed step means
 * nothing ran and nothing is left. Needs root (CI runs as root). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <grp.h>

#include "audit/audit.h"
#include "core/io.h"
#include "jail/jail.h"
#include "jail/jail_internal.h"
#include "lib/harness.h"
#include "vm/qemu_seccomp.h"
#include "vm/vm.h"

static char standin[256];
static char audit_path[256];

static void setup(void)
{
	cr_assert_eq(geteuid(), 0, "the jail tests need root (CI runs them as root)");
	static char dir[64];
	if (standin[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/ironclaw-jailtest-XXXXXX");
	cr_assert(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(standin, sizeof(standin), "%s/standin", dir);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", dir);
	setenv("IRONCLAW_AUDIT_LOG", audit_path, 1);
	char src[512];
	snprintf(src, sizeof(src), "%s/tests/data/jail/standin.c", harness_root());
	char *argv[] = { "/usr/bin/cc", "-static", "-pthread", "-O1", "-o", standin, src, NULL };
	struct run_result r;
	cr_assert_eq(harness_run(argv, NULL, 0, 60000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "building the stand-in failed: %s", r.err);
	harness_result_free(&r);
}

static void teardown(void)
{
	/* Each test runs in its own worker process, with its own build dir. */
	if (!standin[0])
		return;
	unlink(standin);
	unlink(audit_path);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s", standin);
	*strrchr(dir, '/') = 0;
	rmdir(dir);
}

TestSuite(jail, .init = setup, .fini = teardown);

struct standin_run {
	int status;
	char out[8192];
	char err[ERR_MSG_MAX];
	int spawn_rc;
	pid_t pid;
	struct jail_exit x;
};

static struct jail_names names_of(const char *id)
{
	struct jail_names n;
	struct err e = { 0 };
	cr_assert_eq(jail_names_make(id, &n, &e), 0, "%s", e.msg);
	return n;
}

/* Runs the stand-in jailed with `mode` args; cfg tweaks via the callback. The
 * exit is recorded the way vm/ does it (vm_audit_vmm_exit). */
static void run_jailed(const char *id, char *const *args, void (*tweak)(struct jail_config *), struct standin_run *r)
{
	static struct jail_names names;
	names = names_of(id);
	char *argv[16] = { standin };
	int n = 1;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	struct jail_config c = { .names = &names, .argv = argv, .seccomp = qemu_seccomp_policy(0),
				 .stdin_fd = -1, .stdout_fd = p[1], .stderr_fd = p[1],
				 .pids_max = 64, .memory_max_bytes = 128ull << 20, .cpu_percent = 50 };
	if (tweak)
		tweak(&c);
	struct err e = { 0 };
	struct jail *j = NULL;
	memset(r, 0, sizeof(*r));
	r->spawn_rc = jail_spawn(&c, &r->pid, &j, &e);
	close(p[1]);
	snprintf(r->err, sizeof(r->err), "%s", e.msg);
	size_t used = 0;
	ssize_t k;
	while (r->spawn_rc == 0 && used + 1 < sizeof(r->out) && (k = io_read(p[0], r->out + used, sizeof(r->out) - 1 - used)) > 0)
		used += (size_t)k;
	r->out[used] = 0;
	close(p[0]);
	if (r->spawn_rc)
		return;
	double t0 = harness_now_ms();
	int rc;
	struct jail_exit x;
	while ((rc = jail_poll(j, &x)) == 0 && harness_now_ms() - t0 < 20000)
		usleep(5000);
	cr_assert_eq(rc, 1, "the stand-in did not exit");
	r->status = x.status;
	r->x = x;
	vm_audit_vmm_exit(id, r->pid, &x);
	struct jail_exit again;
	cr_assert_eq(jail_destroy(j, &again, &e), 0, "destroy: %s", e.msg);
	cr_expect_lt(again.status, 0, "destroy reported an exit jail_poll had already reported");
}

static int ring_has(const char *vm_id, pid_t pid, const char *name)
{
	struct audit_ring *r = audit_ring_global();
	for (size_t i = 0; i < r->count; i++) {
		const struct audit_event *ev = audit_ring_get(r, i);
		if (!strcmp(ev->vm_id, vm_id) && ev->pid == pid && !strcmp(ev->syscall_name, name))
			return 1;
	}
	return 0;
}

Test(jail, forbidden_syscalls_die_of_sigsys_and_are_audited)
{
	struct { const char *mode, *name; } cases[] = {
		{ "mount", "mount" }, { "ptrace", "ptrace" }, { "kexec_load", "kexec_load" },
		{ "socket_inet", "socket" }, { "fork", "fork" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct standin_run r;
		run_jailed("t-sigsys", (char *[]){ (char *)cases[i].mode, NULL }, NULL, &r);
		cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
		cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSYS, "%s: status 0x%x, output %s",
			  cases[i].mode, r.status, r.out);
		cr_expect_null(strstr(r.out, "survived"), "%s ran: %s", cases[i].mode, r.out);
		cr_expect(r.x.seccomp_kill, "%s: the jail did not report a seccomp kill", cases[i].mode);
		cr_expect(ring_has("t-sigsys", r.pid, cases[i].name), "%s not in the audit ring", cases[i].name);
		/* The kernel rate-limits its audit printk (10 per 5 s burst). */
		usleep(600000);
	}
	/* The log has them too, for a later `ironclaw audit`. */
	struct audit_ring *ring = malloc(sizeof(*ring));
	audit_ring_init(ring, AUDIT_RING_MAX);
	cr_assert_eq(audit_log_load(audit_path, ring, NULL), 0);
	int kexec = 0;
	for (size_t i = 0; i < ring->count; i++)
		kexec += !strcmp(audit_ring_get(ring, i)->syscall_name, "kexec_load");
	cr_expect_geq(kexec, 1, "kexec_load missing from %s", audit_path);
	free(ring);
}

Test(jail, foreign_arch_and_x32_are_killed)
{
	const char *modes[] = { "x32", "i386" };
	for (size_t i = 0; i < 2; i++) {
		struct standin_run r;
		run_jailed("t-abi", (char *[]){ (char *)modes[i], NULL }, NULL, &r);
		cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
		cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSYS, "%s: status 0x%x", modes[i], r.status);
		cr_expect(ring_has("t-abi", r.pid, "getpid"), "%s getpid not audited", modes[i]);
		usleep(600000);
	}
}

Test(jail, allowed_unix_socket_works_under_the_filter)
{
	struct standin_run r;
	run_jailed("t-unix", (char *[]){ "socket_unix", NULL }, NULL, &r);
	cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
	cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status 0x%x", r.status);
	cr_expect(strstr(r.out, "unix socket:ok"), "%s", r.out);
}

static int read_proc_field(pid_t pid, const char *file, const char *key, char *out, size_t len)
{
	char path[64], *buf = NULL;
	size_t n;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if (io_read_file(path, 1 << 16, &buf, &n))
		return -1;
	char *p = strstr(buf, key);
	int rc = -1;
	if (p) {
		p += strlen(key);
		while (*p == ' ' || *p == '\t')
			p++;
		size_t l = strcspn(p, "\n");
		snprintf(out, len, "%.*s", (int)l, p);
		rc = 0;
	}
	free(buf);
	return rc;
}

static void ns_differs(pid_t pid, const char *ns)
{
	char a[64], b[64], pa[64], pb[64];
	snprintf(pa, sizeof(pa), "/proc/%d/ns/%s", (int)pid, ns);
	snprintf(pb, sizeof(pb), "/proc/self/ns/%s", ns);
	ssize_t la = readlink(pa, a, sizeof(a) - 1), lb = readlink(pb, b, sizeof(b) - 1);
	cr_assert(la > 0 && lb > 0, "reading %s", pa);
	a[la] = b[lb] = 0;
	cr_expect_str_neq(a, b, "%s namespace shared with the host", ns);
}

static void read_cg(const char *id, const char *ctrl, const char *file, char *out, size_t len)
{
	char path[320], *buf = NULL;
	size_t n;
	cr_assert_eq(jail_cgroup_file(id, ctrl, file, path, sizeof(path)), 0);
	cr_assert_eq(io_read_file(path, 4096, &buf, &n), 0, "reading %s", path);
	snprintf(out, len, "%.*s", (int)strcspn(buf, "\n"), buf);
	free(buf);
}

Test(jail, running_process_is_filtered_unprivileged_namespaced_and_limited)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char *argv[] = { standin, "sleep", "20", NULL };
	struct jail_names names = names_of("t-inspect");
	struct jail_config c = { .names = &names, .argv = argv, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				 .stdout_fd = p[1], .stderr_fd = -1, .pids_max = 32, .memory_max_bytes = 96ull << 20,
				 .cpu_percent = 25 };
	struct err e = { 0 };
	struct jail *j;
	pid_t pid;
	/* The parent holds supplementary groups and fds without CLOEXEC: none
	 * of them may reach the VMM. (The test runner has no groups and few
	 * fds, so without this the checks below could not fail.) */
	gid_t groups[] = { 4, 24, 100 };
	cr_assert_eq(setgroups(3, groups), 0, "setgroups: %s", strerror(errno));
	int leak[3];
	for (int i = 0; i < 3; i++)
		cr_assert_geq(leak[i] = open("/dev/null", O_RDONLY), 0);
	int leak_high = dup2(leak[0], 700);
	cr_assert_eq(leak_high, 700);
	cr_assert_eq(jail_spawn(&c, &pid, &j, &e), 0, "%s", e.msg);
	close(p[1]);
	char ready[16] = { 0 };
	cr_assert_gt(io_read(p[0], ready, sizeof(ready) - 1), 0);
	char v[256];
	cr_assert_eq(read_proc_field(pid, "status", "Seccomp:", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "2", "Seccomp mode %s", v);
	cr_assert_eq(read_proc_field(pid, "status", "Uid:", v, sizeof(v)), 0);
	cr_expect_neq(strtoul(v, NULL, 10), 0ul, "uid %s", v);
	char want[64];
	unsigned u = (unsigned)names.uid;
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", u, u, u, u);
	cr_expect_str_eq(v, want, "real, effective, saved and fs uid all dropped");
	cr_assert_eq(read_proc_field(pid, "status", "Gid:", v, sizeof(v)), 0);
	cr_expect_neq(strtoul(v, NULL, 10), 0ul);
	cr_assert_eq(read_proc_field(pid, "status", "NoNewPrivs:", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "1");
	cr_assert_eq(read_proc_field(pid, "status", "CapEff:", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "0000000000000000");
	cr_assert_eq(read_proc_field(pid, "status", "CapPrm:", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "0000000000000000");
	cr_assert_eq(read_proc_field(pid, "status", "Groups:", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "", "supplementary groups reached the VMM: %s", v);
	/* Only 0, 1, 2 are open in the VMM (the stand-in is static: no loader fds). */
	char fddir[64];
	snprintf(fddir, sizeof(fddir), "/proc/%d/fd", (int)pid);
	DIR *fdd = opendir(fddir);
	cr_assert(fdd, "opening %s", fddir);
	struct dirent *fde;
	char extra[256] = "";
	int nfd = 0;
	while ((fde = readdir(fdd))) {
		if (fde->d_name[0] == '.')
			continue;
		int fd = atoi(fde->d_name);
		if (fd > 2)
			snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), " %d", fd);
		nfd++;
	}
	closedir(fdd);
	cr_expect_eq(nfd, 3, "fds open in the VMM besides 0-2:%s", extra);
	for (int i = 0; i < 3; i++)
		close(leak[i]);
	close(leak_high);
	const char *nss[] = { "mnt", "pid", "net", "ipc", "uts" };
	for (size_t i = 0; i < 5; i++)
		ns_differs(pid, nss[i]);
	cr_assert_eq(read_proc_field(pid, "limits", "Max core file size", v, sizeof(v)), 0);
	cr_expect_eq(strncmp(v, "0 ", 2), 0, "core %s", v);
	cr_assert_eq(read_proc_field(pid, "limits", "Max open files", v, sizeof(v)), 0);
	cr_expect_eq(strncmp(v, "1024 ", 5), 0, "nofile %s", v);
	cr_assert_eq(read_proc_field(pid, "limits", "Max file size", v, sizeof(v)), 0);
	cr_expect_eq(strncmp(v, "268435456 ", 10), 0, "fsize %s", v);
	/* Empty environment: /proc/<pid>/environ is empty. */
	char path[64], *env = NULL;
	size_t envlen = 99;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	cr_assert_eq(io_read_file(path, 4096, &env, &envlen), 0);
	cr_expect_eq(envlen, 0, "environment not empty");
	free(env);
	/* The cgroup limits are set and the process is in the group. */
	read_cg("t-inspect", "pids", "pids.max", v, sizeof(v));
	cr_expect_str_eq(v, "32");
	char procs[32];
	read_cg("t-inspect", "pids", "cgroup.procs", procs, sizeof(procs));
	cr_expect_eq(atoi(procs), pid);
	read_cg("t-inspect", "memory", access("/sys/fs/cgroup/cgroup.controllers", F_OK) ? "memory.limit_in_bytes" : "memory.max", v, sizeof(v));
	cr_expect_str_eq(v, "100663296");
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK)) {
		read_cg("t-inspect", "cpu", "cpu.cfs_quota_us", v, sizeof(v));
		cr_expect_str_eq(v, "25000");
	} else {
		read_cg("t-inspect", "cpu", "cpu.max", v, sizeof(v));
		cr_expect_str_eq(v, "25000 100000");
	}
	struct jail_exit x;
	cr_expect_eq(jail_destroy(j, &x, &e), 0, "%s", e.msg);
	cr_expect(WIFSIGNALED(x.status) && WTERMSIG(x.status) == SIGKILL, "destroy reports its own kill: 0x%x", x.status);
	cr_expect_not(x.seccomp_kill);
	close(p[0]);
	cr_expect_neq(kill(pid, 0), 0, "the VMM outlived destroy");
	cr_expect_not(jail_cgroup_exists("t-inspect"), "cgroup left after destroy");
	cr_expect_neq(access(JAIL_RUN_DIR "/t-inspect", F_OK), 0, "VM dir left after destroy");
	cr_expect_neq(access(JAIL_STATE_DIR "/t-inspect", F_OK), 0, "state left after destroy");
}

static char rwdir[128];
static void bind_rw(struct jail_config *c)
{
	static struct jail_bind b[1];
	b[0] = (struct jail_bind){ rwdir, "/run/vm", 1 };
	c->binds = b;
	c->n_binds = 1;
}

static void prepare_rw(const char *id)
{
	struct jail_names n = names_of(id);
	struct err e = { 0 };
	cr_assert_eq(jail_prepare_dir(&n, &e), 0, "%s", e.msg);
	snprintf(rwdir, sizeof(rwdir), "%s", n.dir);
}

Test(jail, only_bound_files_are_visible_and_the_root_is_read_only)
{
	prepare_rw("t-root");
	struct standin_run r;
	run_jailed("t-root", (char *[]){ "ls", "/", "/dev", "/etc", "/proc", "/run/vm", "/sys", "/root", NULL }, bind_rw, &r);
	cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
	cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status 0x%x: %s", r.status, r.out);
	/* The root holds the stand-in's own directory, /dev and /run only. */
	char *line, *save = NULL, copy[8192];
	snprintf(copy, sizeof(copy), "%s", r.out);
	int top = 0;
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "//", 2)) {
			top++;
			cr_expect(!strcmp(line, "//dev") || !strcmp(line, "//tmp") || !strcmp(line, "//run"),
				  "unexpected top-level entry %s", line + 1);
		}
	}
	cr_expect_eq(top, 3, "root listing:\n%s", r.out);
	cr_expect(strstr(r.out, "/dev/null\n") && strstr(r.out, "/dev/urandom\n"), "%s", r.out);
	cr_expect_null(strstr(r.out, "/dev/kvm"), "/dev/kvm without use_kvm");
	cr_expect_null(strstr(r.out, "/dev/sda"));
	cr_expect(strstr(r.out, "/etc: No such file or directory"), "old root visible: %s", r.out);
	cr_expect(strstr(r.out, "/proc: No such file or directory"), "%s", r.out);
	cr_expect(strstr(r.out, "/sys: No such file or directory"), "%s", r.out);
	cr_expect(strstr(r.out, "/root: No such file or directory"), "%s", r.out);
	cr_expect(strstr(r.out, "env:empty"), "%s", r.out);
	cr_expect(strstr(r.out, "fd3:closed"), "an fd leaked into the jail: %s", r.out);

	prepare_rw("t-root");
	run_jailed("t-root", (char *[]){ "write", "/newfile", NULL }, bind_rw, &r);
	cr_expect(strstr(r.out, "Read-only file system"), "root writable: %s", r.out);
	prepare_rw("t-root");
	run_jailed("t-root", (char *[]){ "write", standin, NULL }, bind_rw, &r);
	cr_expect(strstr(r.out, "Read-only file system") || strstr(r.out, "Permission denied"), "binary writable: %s", r.out);
	prepare_rw("t-root");
	run_jailed("t-root", (char *[]){ "write", "/run/vm/sock", NULL }, bind_rw, &r);
	cr_expect(strstr(r.out, "written"), "the writable VM dir is not writable: %s", r.out);
}

static int passed_fd = -1;
static void pass_one(struct jail_config *c)
{
	c->pass_fds = &passed_fd;
	c->n_pass_fds = 1;
}

Test(jail, passed_fds_arrive_in_order)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	passed_fd = p[1];
	struct standin_run r;
	run_jailed("t-fds", (char *[]){ "ls", NULL }, pass_one, &r);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
	cr_expect(strstr(r.out, "fd3:open"), "%s", r.out);
}

static void few_pids(struct jail_config *c)
{
	c->pids_max = 16;
}

Test(jail, pids_max_holds_against_a_thread_bomb)
{
	struct standin_run r;
	run_jailed("t-pids", (char *[]){ "threads", NULL }, few_pids, &r);
	cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
	const char *t = strstr(r.out, "threads:");
	cr_assert(t, "status 0x%x output '%s'", r.status, r.out);
	int n = atoi(t + 8);
	cr_expect(n >= 1 && n < 16, "%d threads with pids.max 16", n);
}

static void missing_bind(struct jail_config *c)
{
	static struct jail_bind b[] = { { "/nonexistent/ironclaw-kernel", "/vm/vmlinuz", 0 } };
	c->binds = b;
	c->n_binds = 1;
}

static void traversal_bind(struct jail_config *c)
{
	static struct jail_bind b[] = { { "/etc/hostname", "/run/../../etc/x", 0 } };
	c->binds = b;
	c->n_binds = 1;
}

static void nothing_left(const char *id)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", JAIL_RUN_DIR, id);
	cr_expect_neq(access(p, F_OK), 0, "%s left behind", p);
	snprintf(p, sizeof(p), "%s/%s", JAIL_STATE_DIR, id);
	cr_expect_neq(access(p, F_OK), 0, "%s left behind", p);
	cr_expect_not(jail_cgroup_exists(id), "cgroup of %s left behind", id);
}

Test(jail, a_failed_step_means_nothing_runs_and_nothing_is_left)
{
	struct standin_run r;
	run_jailed("t-fail", (char *[]){ "sleep", "5", NULL }, missing_bind, &r);
	cr_expect_eq(r.spawn_rc, -ENOENT);
	cr_expect(strstr(r.err, "/nonexistent/ironclaw-kernel"), "%s", r.err);
	cr_expect_eq(r.pid, 0);
	nothing_left("t-fail");
	run_jailed("t-fail", (char *[]){ "sleep", "5", NULL }, traversal_bind, &r);
	cr_expect_eq(r.spawn_rc, -EINVAL);
	cr_expect(strstr(r.err, ".."), "%s", r.err);
	nothing_left("t-fail");
	/* A VMM path that does not exist. */
	char *argv[] = { "/nonexistent/qemu", NULL };
	struct jail_names names = names_of("t-fail");
	struct jail_config c = { .names = &names, .argv = argv, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				 .stdout_fd = -1, .stderr_fd = -1 };
	struct err e = { 0 };
	struct jail *j = NULL;
	pid_t pid = 0;
	cr_expect_lt(jail_spawn(&c, &pid, &j, &e), 0);
	cr_expect(strstr(e.msg, "/nonexistent/qemu"), "%s", e.msg);
	cr_expect_null(j);
	nothing_left("t-fail");
}

Test(jail, vmm_dies_with_ironclaw_even_on_sigkill_and_gc_cleans_up)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t owner = fork();
	cr_assert_geq(owner, 0);
	if (owner == 0) {
		close(p[0]);
		char *argv[] = { standin, "sleep", "60", NULL };
		struct jail_names names = names_of("t-orphan");
		struct jail_config c = { .names = &names, .argv = argv, .seccomp = qemu_seccomp_policy(0),
					 .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
		struct err e = { 0 };
		struct jail *j;
		pid_t pid = -1;
		if (jail_spawn(&c, &pid, &j, &e))
			pid = -1;
		if (write(p[1], &pid, sizeof(pid)) != sizeof(pid))
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	pid_t vmm = -1;
	cr_assert_eq(read(p[0], &vmm, sizeof(vmm)), (ssize_t)sizeof(vmm));
	close(p[0]);
	cr_assert_gt(vmm, 0, "spawn in the owner failed");
	cr_assert_eq(kill(vmm, 0), 0);
	kill(owner, SIGKILL);
	waitpid(owner, NULL, 0);
	double t0 = harness_now_ms();
	while (jail_proc_start(vmm) && harness_now_ms() - t0 < 5000)
		usleep(10000);
	cr_expect_eq(jail_proc_start(vmm), 0ull, "the VMM outlived its killed owner");
	cr_expect(access(JAIL_STATE_DIR "/t-orphan", F_OK) == 0, "the record gc needs is there");
	struct err e = { 0 };
	cr_expect_geq(jail_gc(&e), 1, "%s", e.msg);
	nothing_left("t-orphan");
}

static void with_kvm(struct jail_config *c)
{
	c->kvm_node = 1;
}

Test(jail, dev_kvm_is_made_only_with_kvm_node)
{
	struct standin_run r;
	run_jailed("t-kvm", (char *[]){ "ls", "/dev", NULL }, with_kvm, &r);
	if (access("/dev/kvm", F_OK) == 0) {
		cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
		cr_expect(strstr(r.out, "/dev/kvm\n"), "use_kvm without /dev/kvm in the jail: %s", r.out);
		/* The unprivileged VMM uid must be able to open it: the host's node is
		 * root-only, so a plain bind would fail here. */
		run_jailed("t-kvm", (char *[]){ "open", "/dev/kvm", NULL }, with_kvm, &r);
		cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
		cr_expect(strstr(r.out, "opened\n"), "the jailed uid cannot open /dev/kvm: %s", r.out);
	} else {
		cr_expect_neq(r.spawn_rc, 0, "use_kvm on a host without /dev/kvm started anyway");
		cr_expect(strstr(r.err, "/dev/kvm"), "%s", r.err);
		nothing_left("t-kvm");
	}
	run_jailed("t-kvm", (char *[]){ "ls", "/dev", NULL }, NULL, &r);
	cr_assert_eq(r.spawn_rc, 0, "%s", r.err);
	cr_expect_null(strstr(r.out, "/dev/kvm"), "/dev/kvm bound without use_kvm: %s", r.out);
}

static int ino_of(const char *path, ino_t *ino, dev_t *dev)
{
	struct stat st;
	if (stat(path, &st))
		return -1;
	*ino = st.st_ino;
	*dev = st.st_dev;
	return 0;
}

Test(jail, with_net_the_vmm_is_in_the_vms_netns_and_nothing_is_left)
{
	struct jail_names names = names_of("t-netns");
	struct jail_net_addr addr;
	struct err e = { 0 };
	cr_assert_eq(jail_prepare_dir(&names, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_net_reserve(&names, &addr, &e), 0, "%s", e.msg);
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char *argv[] = { standin, "sleep", "20", NULL };
	struct jail_config c = { .names = &names, .argv = argv, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				 .stdout_fd = p[1], .stderr_fd = -1, .net = 1 };
	struct jail *j = NULL;
	pid_t pid;
	cr_assert_eq(jail_spawn(&c, &pid, &j, &e), 0, "%s", e.msg);
	close(p[1]);
	char ready[16] = { 0 };
	cr_assert_gt(io_read(p[0], ready, sizeof(ready) - 1), 0);
	char vmm_ns[64];
	snprintf(vmm_ns, sizeof(vmm_ns), "/proc/%d/ns/net", (int)pid);
	ino_t vi, ni, hi;
	dev_t vd, nd, hd;
	cr_assert_eq(ino_of(vmm_ns, &vi, &vd), 0);
	cr_assert_eq(ino_of(names.netns_path, &ni, &nd), 0, "%s missing while the VM runs", names.netns_path);
	cr_assert_eq(ino_of("/proc/self/ns/net", &hi, &hd), 0);
	cr_expect(vi == ni && vd == nd, "the VMM is not in the VM's netns %s", names.netns);
	cr_expect(vi != hi, "the VMM is in the host's netns");
	char sys[64];
	snprintf(sys, sizeof(sys), "/sys/class/net/%s", names.veth_host);
	cr_expect_eq(access(sys, F_OK), 0, "host veth %s missing while the VM runs", names.veth_host);
	char slot[160];
	snprintf(slot, sizeof(slot), "%s/slot-%u", JAIL_STATE_DIR, names.slot);
	cr_expect_eq(access(slot, F_OK), 0, "slot claim missing while the VM runs");
	cr_expect_eq(jail_destroy(j, NULL, &e), 0, "%s", e.msg);
	close(p[0]);
	cr_expect_neq(access(names.netns_path, F_OK), 0, "netns left after destroy");
	cr_expect_neq(access(sys, F_OK), 0, "host veth left after destroy");
	cr_expect_neq(access(slot, F_OK), 0, "slot claim left after destroy");
	nothing_left("t-netns");
}
