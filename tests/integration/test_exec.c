/* End to end: the real `ironclaw exec` boots a real micro-VM (QEMU, the default
 * image) for each test and runs a command in it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

Test(exec, nothing_left_behind)
{
	int before = harness_count_vm_dirs();
	struct run_result r;
	exec_vm(&r, NULL, (char *[]){ "--", "true", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_eq(harness_count_vm_dirs(), before, "a VM directory was left in /run/ironclaw");
	pid_t pids[4];
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", getpid(), pids, 4), 0);
	harness_result_free(&r);
}

Test(exec, missing_command_is_a_clear_error)
{
	struct run_result r;
	exec_vm(&r, NULL, (char *[]){ "--", "/no/such/program", NULL });
	cr_assert_eq(r.exit_code, 125, "exit %d; stderr: %s", r.exit_code, r.err);
	cr_assert(strstr(r.err, "/no/such/program"), "stderr: %s", r.err);
	harness_result_free(&r);
}

Test(cli, help_and_bad_options)
{
	struct run_result r;
	char *help[] = { (char *)harness_ironclaw(), "exec", "--help", NULL };
	cr_assert_eq(harness_run(help, NULL, 0, 5000, &r), 0);
	cr_assert_eq(r.exit_code, 0);
	cr_assert(strstr(r.out, "usage: ironclaw exec"));
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
