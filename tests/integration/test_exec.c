/* End to end: the real `ironclaw exec` boots a real micro-VM (QEMU, the default
 * image) for each test and runs a command in it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/harness.h"

#define BOOT_BUDGET_MS 120000

static void exec_vm(struct run_result *r, const char *stdin_data, char *const *args)
{
	char *argv[32];
	size_t n = 0;
	argv[n++] = (char *)harness_ironclaw();
	argv[n++] = "exec";
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(harness_run(argv, stdin_data, stdin_data ? strlen(stdin_data) : 0,
				 BOOT_BUDGET_MS, r), 0);
	cr_assert_not(r->timed_out, "ironclaw exec hung; stderr: %s", r->err);
}

Test(exec, echo_round_trip)
{
	struct run_result r;
	exec_vm(&r, NULL, (char *[]){ "--", "echo", "hello from the guest", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "hello from the guest\n");
	harness_result_free(&r);
}

Test(exec, stdout_and_stderr_kept_apart_with_exit_code)
{
	struct run_result r;
	exec_vm(&r, NULL, (char *[]){ "--", "sh", "-c", "echo hi; echo err >&2; exit 3", NULL });
	cr_assert_eq(r.exit_code, 3, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "hi\n");
	cr_assert_str_eq(r.err, "err\n");
	harness_result_free(&r);
}

Test(exec, exit_codes_0_1_and_137)
{
	struct { const char *script; int code; } cases[] = {
		{ "exit 0", 0 },
		{ "exit 1", 1 },
		{ "kill -9 $$", 137 },
	};
	for (size_t i = 0; i < 3; i++) {
		struct run_result r;
		exec_vm(&r, NULL, (char *[]){ "--", "sh", "-c", (char *)cases[i].script, NULL });
		cr_assert_eq(r.exit_code, cases[i].code, "'%s' gave %d; stderr: %s", cases[i].script,
			     r.exit_code, r.err);
		harness_result_free(&r);
	}
}

Test(exec, eight_mib_of_output_arrive_byte_exact)
{
	struct run_result r;
	/* The guest hashes the exact bytes it sends; we hash what arrived. */
	exec_vm(&r, NULL, (char *[]){ "--memory", "256", "--", "sh", "-c",
		"head -c 8388608 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_eq(r.out_len, 8388608u, "got %zu bytes", r.out_len);
	char hex[65];
	cr_assert_eq(harness_sha256(r.out, r.out_len, hex), 0);
	cr_assert_eq(strncmp(r.err, hex, 64), 0, "guest hash %.64s, host hash %s", r.err, hex);
	harness_result_free(&r);
}

Test(exec, timeout_kills_the_command)
{
	struct run_result r;
	exec_vm(&r, NULL, (char *[]){ "--timeout", "2", "--", "sleep", "60", NULL });
	cr_assert_eq(r.exit_code, 124, "exit %d; stderr: %s", r.exit_code, r.err);
	cr_assert(strstr(r.err, "--timeout"), "stderr: %s", r.err);
	/* Far less than the 60 s sleep: boot plus the 2 s timeout plus teardown. */
	cr_assert_lt(r.elapsed_ms, 40000, "took %.0f ms", r.elapsed_ms);
	harness_result_free(&r);
}

Test(exec, env_workdir_and_stdin)
{
	struct run_result r;
	exec_vm(&r, "line one\nline two\n", (char *[]){ "-i", "--env", "GREETING=bonjour",
		"--workdir", "/tmp", "--", "sh", "-c", "echo $GREETING; pwd; cat", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "bonjour\n/tmp\nline one\nline two\n");
	harness_result_free(&r);
}

/* One line on stderr that names the command; the exit code as a shell's. */
Test(exec, not_found_is_127_and_not_executable_is_126)
{
	struct { const char *cmd; int code; const char *why; } cases[] = {
		{ "/no/such/program", 127, "No such file" },
		{ "no-such-command", 127, "not found in PATH" },
		{ "/etc/passwd", 126, "Permission denied" },
		{ "/", 126, "Is a directory" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run_result r;
		exec_vm(&r, NULL, (char *[]){ "--", (char *)cases[i].cmd, NULL });
		cr_assert_eq(r.exit_code, cases[i].code, "'%s' gave %d; stderr: %s", cases[i].cmd,
			     r.exit_code, r.err);
		char quoted[128];
		snprintf(quoted, sizeof(quoted), "\"%s\"", cases[i].cmd);
		cr_assert(strstr(r.err, quoted), "stderr does not name %s: %s", quoted, r.err);
		cr_assert(strstr(r.err, cases[i].why), "stderr lacks '%s': %s", cases[i].why, r.err);
		cr_assert_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "not one line: %s", r.err);
		harness_result_free(&r);
	}
	/* A bad --workdir is not the command's fault: it stays ironclaw's 125. */
	struct run_result r;
	exec_vm(&r, NULL, (char *[]){ "--workdir", "/no/such/dir", "--", "true", NULL });
	cr_assert_eq(r.exit_code, 125, "exit %d; stderr: %s", r.exit_code, r.err);
	cr_assert(strstr(r.err, "working directory"), "stderr: %s", r.err);
	harness_result_free(&r);
}

/* Starts ironclaw exec with stdout into a pipe (returned in *rd), stderr into
 * err_path, stdin from a pipe whose write end goes to *wr (or /dev/null if wr is
 * NULL). With own_group, in its own process group, as a shell's foreground job
 * is, so a terminal's Ctrl-C can be sent to the group. */
static pid_t spawn_piped(char *const *args, int own_group, int *rd, int *wr, const char *err_path)
{
	char *argv[32];
	size_t n = 0;
	int p[2], in[2] = { -1, -1 };
	argv[n++] = (char *)harness_ironclaw();
	argv[n++] = "exec";
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	if (wr)
		cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int z = wr ? in[0] : open("/dev/null", O_RDONLY);
		if (own_group)
			setpgid(0, 0);
		dup2(z, 0);
		dup2(p[1], 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(99);
	}
	close(p[1]);
	*rd = p[0];
	if (wr) {
		close(in[0]);
		*wr = in[1];
	}
	return pid;
}

static void read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
}

/* Waits for pid within a generous bound (a loaded 2-core host boots slowly,
 * but a hang is minutes); kills it if it hangs, so nothing outlives the test. */
static int wait_bounded(pid_t pid, const char *what, const char *err_path)
{
	int status = harness_wait(pid, 60000, NULL);
	if (status < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		char err[2048];
		read_file(err_path, err, sizeof(err));
		cr_assert_fail("ironclaw did not end after %s; stderr: %s", what, err);
	}
	return status;
}

/* Other engineers' VMs come and go on this machine: look at this run's own VM
 * only. Its VMM (the one QEMU under ironclaw) names the VM in its cgroup path. */
struct own_vm {
	pid_t vmm;
	char id[64];
};

static void own_vm_find(pid_t ironclaw, struct own_vm *v)
{
	pid_t vmm[4];
	int n = harness_find_processes("qemu-system-x86_64", ironclaw, vmm, 4);
	cr_assert_eq(n, 1, "%d VMMs under ironclaw", n);
	v->vmm = vmm[0];
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)v->vmm);
	read_file(path, buf, sizeof(buf));
	const char *at = strstr(buf, "/ironclaw/vm-");
	cr_assert_not_null(at, "no VM cgroup in %s: %s", path, buf);
	at += strlen("/ironclaw/");
	size_t len = strcspn(at, "/\n");
	cr_assert_lt(len, sizeof(v->id));
	memcpy(v->id, at, len);
	v->id[len] = '\0';
}

static void assert_quiet_and_clean(const char *err_path, const struct own_vm *v)
{
	char err[2048], dir[128];
	read_file(err_path, err, sizeof(err));
	cr_assert_str_empty(err, "stderr should be empty: %s", err);
	snprintf(dir, sizeof(dir), "/run/ironclaw/%s", v->id);
	cr_assert(access(dir, F_OK) < 0 && errno == ENOENT, "%s was left behind", dir);
	cr_assert(kill(v->vmm, 0) < 0 && errno == ESRCH, "the VMM %d is still running", (int)v->vmm);
}

/* Reads the child's stdout until the command says "ready": an event, not a
 * sleep, that the command runs. */
static void await_ready(pid_t pid, int rd)
{
	char buf[16];
	size_t got = 0;
	while (got < 6) {
		ssize_t n = read(rd, buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (strcmp(buf, "ready\n")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		cr_assert_fail("the command never said it runs: '%s'", buf);
	}
}

Test(exec, nothing_left_behind)
{
	char err_path[] = "/tmp/ironclaw-test-exec-XXXXXX";
	int fd = mkstemp(err_path);
	cr_assert_geq(fd, 0);
	close(fd);
	struct own_vm v;
	int rd, wr;
	/* The command holds the VM up until we close its stdin. */
	pid_t pid = spawn_piped((char *[]){ "-i", "--", "sh", "-c", "echo ready; read x; exit 0", NULL }, 0,
				&rd, &wr, err_path);
	await_ready(pid, rd);
	own_vm_find(pid, &v);
	close(wr);
	int status = wait_bounded(pid, "its command ended", err_path);
	close(rd);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	assert_quiet_and_clean(err_path, &v);
	unlink(err_path);
}

Test(exec, reader_that_goes_away_ends_the_run_quietly_with_141)
{
	char err_path[] = "/tmp/ironclaw-test-exec-XXXXXX";
	int fd = mkstemp(err_path);
	cr_assert_geq(fd, 0);
	close(fd);
	struct own_vm v;
	int rd;
	/* `ironclaw exec -- cat /dev/zero | head -c 1` */
	pid_t pid = spawn_piped((char *[]){ "--", "cat", "/dev/zero", NULL }, 0, &rd, NULL,
				err_path);
	char byte;
	ssize_t n;
	do
		n = read(rd, &byte, 1);
	while (n < 0 && errno == EINTR);
	cr_assert_eq(n, 1, "no output came");
	/* ironclaw is blocked writing into the full pipe: its VM is still up. */
	own_vm_find(pid, &v);
	close(rd);
	int status = wait_bounded(pid, "its reader went away", err_path);
	/* Documented choice: exit(141), as a shell reports a SIGPIPE'd tool. */
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 141, "status %#x", status);
	assert_quiet_and_clean(err_path, &v);
	unlink(err_path);
}

/* Signals ironclaw once its command runs; the VM must be destroyed and the
 * code be 128+N. */
static void signal_during_exec(int sig, int to_group, int expect)
{
	char err_path[] = "/tmp/ironclaw-test-exec-XXXXXX";
	int fd = mkstemp(err_path);
	cr_assert_geq(fd, 0);
	close(fd);
	struct own_vm v;
	int rd;
	pid_t pid = spawn_piped((char *[]){ "--", "sh", "-c", "echo ready; exec sleep 600", NULL },
				to_group, &rd, NULL, err_path);
	await_ready(pid, rd);
	own_vm_find(pid, &v);
	/* The VMM must not be in the group a terminal signals: its own
	 * "terminating on signal 2" would race ironclaw's orderly stop. */
	if (to_group)
		cr_assert_neq(getpgid(v.vmm), pid, "the VMM is in ironclaw's process group");
	cr_assert_eq(to_group ? kill(-pid, sig) : kill(pid, sig), 0);
	int status = wait_bounded(pid, "the signal", err_path);
	close(rd);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == expect, "status %#x, wanted exit %d",
		  status, expect);
	assert_quiet_and_clean(err_path, &v);
	unlink(err_path);
}

Test(exec, sigterm_destroys_the_vm_and_exits_143)
{
	signal_during_exec(SIGTERM, 0, 143);
}

/* A terminal sends Ctrl-C to the whole foreground process group, the VMM
 * included: its death is then the user's stop, not a VM failure to report. */
Test(exec, ctrl_c_to_the_process_group_exits_130_quietly)
{
	signal_during_exec(SIGINT, 1, 130);
}

/* Options before and after the command word; the first non-option word starts
 * the guest command, whose own options stay its own. */
Test(cli, options_in_any_order_around_exec)
{
	struct run_result r;
	char *argv[] = { (char *)harness_ironclaw(), "-i", "--env", "A=one", "exec", "--workdir",
			 "/tmp", "sh", "-c", "echo $A; pwd; cat", NULL };
	cr_assert_eq(harness_run(argv, "in\n", 3, BOOT_BUDGET_MS, &r), 0);
	cr_assert_not(r.timed_out, "stderr: %s", r.err);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "one\n/tmp\nin\n");
	harness_result_free(&r);
}

Test(cli, global_options_and_help_anywhere)
{
	struct { char *args[6]; int code; const char *out, *err; } cases[] = {
		{ { "--help", NULL }, 0, "usage: ironclaw", "" },
		{ { "-v", NULL }, 0, "ironclaw ", "" },
		{ { "--version", "exec", NULL }, 0, "ironclaw ", "" },
		{ { "--help", "exec", NULL }, 0, "usage: ironclaw exec", "" },
		{ { "help", "exec", NULL }, 0, "usage: ironclaw exec", "" },
		{ { "exec", "--timeout", "5", "--help", NULL }, 0, "usage: ironclaw exec", "" },
		/* A value that spells a command is still a value; an option
		 * before the command word that lacks its value is an error there. */
		{ { "--kernel", "exec", "exec", "--help", NULL }, 0, "usage: ironclaw exec", "" },
		{ { "--bogus", "exec", "--", "true", NULL }, 2, "", "ironclaw exec --help" },
		{ { "--timeout", "exec", NULL }, 2, "", "not all options" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[8] = { (char *)harness_ironclaw() };
		for (size_t k = 0; cases[i].args[k]; k++)
			argv[k + 1] = cases[i].args[k];
		struct run_result r;
		cr_assert_eq(harness_run(argv, NULL, 0, 5000, &r), 0);
		cr_assert_eq(r.exit_code, cases[i].code, "case %zu: exit %d; stderr: %s", i,
			     r.exit_code, r.err);
		cr_assert(strstr(r.out, cases[i].out), "case %zu: stdout: %s", i, r.out);
		cr_assert(strstr(r.err, cases[i].err), "case %zu: stderr: %s", i, r.err);
		harness_result_free(&r);
	}
}

Test(cli, help_and_bad_options)
{
	struct run_result r;
	char *help[] = { (char *)harness_ironclaw(), "exec", "--help", NULL };
	cr_assert_eq(harness_run(help, NULL, 0, 5000, &r), 0);
	cr_assert_eq(r.exit_code, 0);
	cr_assert(strstr(r.out, "usage: ironclaw exec"));
	/* Every exit code is documented. */
	static const char *const codes[] = { "124", "125", "126", "127", "128+N", "130", "141", "143" };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		cr_assert(strstr(r.out, codes[i]), "--help does not explain exit %s", codes[i]);
	harness_result_free(&r);

	char *bad[] = { (char *)harness_ironclaw(), "exec", "--cpus", "lots", "--", "true", NULL };
	cr_assert_eq(harness_run(bad, NULL, 0, 5000, &r), 0);
	cr_assert_eq(r.exit_code, 125);
	cr_assert(strstr(r.err, "--cpus needs a whole number"), "stderr: %s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + r.err_len - 1, "error is not one line: %s", r.err);
	harness_result_free(&r);

	char *none[] = { (char *)harness_ironclaw(), "exec", NULL };
	cr_assert_eq(harness_run(none, NULL, 0, 5000, &r), 0);
	cr_assert_eq(r.exit_code, 125);
	cr_assert(strstr(r.err, "hint"), "stderr: %s", r.err);
	harness_result_free(&r);

	char *top[] = { (char *)harness_ironclaw(), "frobnicate", NULL };
	cr_assert_eq(harness_run(top, NULL, 0, 5000, &r), 0);
	cr_assert_eq(r.exit_code, 2);
	cr_assert(strstr(r.err, "unknown command"), "stderr: %s", r.err);
	harness_result_free(&r);
}
