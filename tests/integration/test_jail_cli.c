/* The jail's CLI, driven as a user would: `ironclaw inspect seccomp` prints
 * the policy and a count equal to the one measured from libseccomp's table,
 * `ironclaw audit` shows logged violations with the ring's cap and drop count,
 * `ironclaw gc` runs and reports. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "vm/vm.h"
#include "lib/harness.h"

static void run(char *const *args, struct run_result *r)
{
	char *argv[16] = { (char *)harness_ironclaw() };
	int n = 1;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(harness_run(argv, NULL, 0, 30000, r), 0);
}

Test(jail_cli, inspect_seccomp_prints_policy_and_measured_count)
{
	struct run_result r;
	run((char *[]){ "inspect", "seccomp", NULL }, &r);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	struct jail_seccomp_count c;
	cr_assert_eq(vm_seccomp_count(vm_seccomp_policy(0), &c, NULL), 0);
	char want[64];
	snprintf(want, sizeof(want), "allowed %u of %u x86_64 syscalls", c.allowed, c.arch_total);
	cr_expect(strstr(r.out, want), "no '%s' in:\n%s", want, r.out);
	cr_expect(strstr(r.out, "default action: kill the process"), "%s", r.out);
	cr_expect(strstr(r.out, "\nsocket ") && strstr(r.out, "arg0 == AF_UNIX"), "socket rule missing");
	cr_expect_null(strstr(r.out, "KVM_RUN"), "the TCG policy lists KVM ioctls");
	harness_result_free(&r);
	run((char *[]){ "inspect", "seccomp", "--kvm", NULL }, &r);
	cr_expect(strstr(r.out, "KVM_RUN"), "the KVM policy lacks KVM_RUN");
	harness_result_free(&r);
	run((char *[]){ "inspect", "bogus", NULL }, &r);
	cr_expect_eq(r.exit_code, 2);
	cr_expect(strstr(r.err, "hint"), "%s", r.err);
	harness_result_free(&r);
}

Test(jail_cli, audit_shows_logged_violations_bounded)
{
	char dir[] = "/tmp/ironclaw-auditcli-XXXXXX";
	cr_assert(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	for (int i = 0; i < AUDIT_RING_MAX + 5; i++) {
		struct audit_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.time = 1700000000 + i;
		snprintf(ev.kind, sizeof(ev.kind), "seccomp");
		snprintf(ev.vm_id, sizeof(ev.vm_id), "vm-%d", i);
		ev.pid = 4242;
		ev.syscall = 165;
		snprintf(ev.syscall_name, sizeof(ev.syscall_name), "mount");
		cr_assert_eq(audit_log_append(path, &ev, NULL), 0);
	}
	struct run_result r;
	run((char *[]){ "audit", "--log", path, NULL }, &r);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "vm=vm-5 pid=4242 syscall=mount (165)"), "%s", r.out);
	cr_expect_null(strstr(r.out, "vm=vm-4 "), "the oldest should be dropped");
	char want[64];
	snprintf(want, sizeof(want), "%d events shown, 5 older dropped", AUDIT_RING_MAX);
	cr_expect(strstr(r.out, want), "%s", r.out + (r.out_len > 200 ? r.out_len - 200 : 0));
	harness_result_free(&r);
	run((char *[]){ "audit", "--log", path, "--json", NULL }, &r);
	cr_expect(strstr(r.out, "\"syscall_name\":\"mount\""), "%s", r.out);
	harness_result_free(&r);
	run((char *[]){ "audit", "--log", "relative", NULL }, &r);
	cr_expect_eq(r.exit_code, 2);
	harness_result_free(&r);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

Test(jail_cli, gc_runs_and_reports)
{
	struct run_result r;
	run((char *[]){ "gc", NULL }, &r);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "cleaned up "), "%s", r.out);
	harness_result_free(&r);
	run((char *[]){ "gc", "extra", NULL }, &r);
	cr_expect_eq(r.exit_code, 2);
	harness_result_free(&r);
}
