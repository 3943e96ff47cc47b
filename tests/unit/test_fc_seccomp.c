/* Firecracker's process-wide seccomp policy (vm/fc_seccomp.c) and launch plan
 * (vm/fc_backend.c).
 *
 * The policy must allow everything Firecracker's own per-thread filters allow
 * (its filters stack on ours, so anything we refuse kills Firecracker even
 * where it is within its own rules): checked against the reference copy of
 * those filters, $IRONCLAW_ROOT/../shared/reference/firecracker-seccomp-x86_64.json,
 * syscall by syscall and, where Firecracker checks an argument, value by value.
 * Fork- and exec-class syscalls must kill: checked by loading the compiled
 * policy in a child process and making each call. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/seccomp.h"
#include "vm/fc_backend.h"
#include "vm/fc_jailer.h"
#include "vm/fc_seccomp.h"

static json_t *reference(void)
{
	const char *root = getenv("IRONCLAW_ROOT") ? getenv("IRONCLAW_ROOT") : ".";
	char path[4096];
	snprintf(path, sizeof(path), "%s/../shared/reference/firecracker-seccomp-x86_64.json", root);
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	cr_assert(j, "cannot read %s: %s (CI puts shared/ beside the clone; set IRONCLAW_ROOT)", path, je.text);
	return j;
}

/* Does some rule of ours let syscall `name` run with arg[idx] == val? (idx < 0:
 * with some arguments at all.) */
static int policy_accepts(const char *name, int idx, uint64_t val)
{
	const struct jail_seccomp_policy *p = fc_seccomp_policy();
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct jail_seccomp_rule *r = &p->rules[i];
		if (strcmp(r->name, name))
			continue;
		if (r->action == JAIL_SECCOMP_ALLOW)
			return 1;
		if (r->action == JAIL_SECCOMP_ALLOW_ARG_EQ &&
		    (idx < 0 || ((int)r->arg == idx && (val & r->mask) == r->value)))
			return 1;
	}
	return 0;
}

Test(fc_seccomp, allows_every_syscall_and_argument_firecrackers_own_filters_allow)
{
	json_t *ref = reference();
	const char *thread;
	json_t *t;
	int checked = 0, args = 0;
	json_object_foreach(ref, thread, t) {
		size_t i;
		json_t *f;
		json_array_foreach(json_object_get(t, "filter"), i, f) {
			const char *name = json_string_value(json_object_get(f, "syscall"));
			json_t *a = json_object_get(f, "args");
			checked++;
			if (!a) {
				cr_expect(policy_accepts(name, -1, 0), "%s (thread %s) is refused", name, thread);
				continue;
			}
			/* Firecracker allows the call when all its conditions hold; ours must
			 * let at least that call through on each argument we check. */
			size_t k;
			json_t *c;
			json_array_foreach(a, k, c) {
				int idx = (int)json_integer_value(json_object_get(c, "index"));
				json_t *op = json_object_get(c, "op");
				if (!json_is_string(op) || strcmp(json_string_value(op), "eq"))
					continue;
				uint64_t val = (uint64_t)json_integer_value(json_object_get(c, "val"));
				if (!strcmp(name, "ioctl") || !strcmp(name, "socket") || !strcmp(name, "clone") ||
				    !strcmp(name, "prctl")) {
					args++;
					cr_expect(policy_accepts(name, idx, val) || (idx != 1 && !strcmp(name, "ioctl")) ||
						  (idx != 0 && !strcmp(name, "socket")),
						  "%s with arg %d = %llu (%s, thread %s) is refused", name, idx,
						  (unsigned long long)val,
						  json_string_value(json_object_get(c, "comment")), thread);
				} else {
					cr_expect(policy_accepts(name, idx, val), "%s arg %d = %llu refused", name, idx,
						  (unsigned long long)val);
				}
			}
		}
	}
	cr_expect_gt(checked, 100, "only %d reference entries", checked);
	cr_expect_gt(args, 20, "only %d argument checks", args);
	json_decref(ref);
}

Test(fc_seccomp, every_rule_has_a_reason)
{
	const struct jail_seccomp_policy *p = fc_seccomp_policy();
	cr_assert_gt(p->n_rules, 50);
	for (size_t i = 0; i < p->n_rules; i++)
		cr_expect(p->rules[i].why && strlen(p->rules[i].why) > 10, "%s has no reason", p->rules[i].name);
	struct jail_seccomp_count c;
	cr_assert_eq(jail_seccomp_count(p, &c, NULL), 0);
	cr_expect_lt(c.allowed, c.arch_total / 3, "%u of %u allowed", c.allowed, c.arch_total);
}

enum probe { P_CONTROL, P_FORK, P_VFORK, P_CLONE_FORK, P_CLONE_NEWNS, P_EXECVEAT, P_PTRACE, P_INET, P_MOUNT,
	     P_NOT_KVM_IOCTL };

/* Runs one call in a child under the compiled policy; returns its wait status. */
static int run_under_policy(enum probe what)
{
	struct secpol_program prog;
	struct err e = { 0 };
	cr_assert_eq(secpol_compile(fc_seccomp_policy(), &prog, &e), 0, "%s", e.msg);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sock_fprog fp = { .len = prog.len, .filter = prog.filter };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp))
			_exit(99);
		long rc = 0;
		switch (what) {
		case P_CONTROL: rc = syscall(SYS_getpid) > 0 ? 0 : -1; break;
		case P_FORK: rc = syscall(SYS_fork); break;
		case P_VFORK: rc = syscall(SYS_vfork); break;
		case P_CLONE_FORK: rc = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); break;
		case P_CLONE_NEWNS: rc = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0); break;
		case P_EXECVEAT: rc = syscall(SYS_execveat, -1, "/bin/true", NULL, NULL, 0); break;
		case P_PTRACE: rc = syscall(SYS_ptrace, 0, 0, 0, 0); break;
		case P_INET: rc = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0); break;
		case P_MOUNT: rc = syscall(SYS_mount, "none", "/", "tmpfs", 0, 0); break;
		case P_NOT_KVM_IOCTL: rc = syscall(SYS_ioctl, 0, 0x8901 /* SIOCSPGRP */, 0); break;
		}
		/* A fork that was let through: both sides leave quietly with 42. */
		syscall(SYS_exit_group, rc == 0 && what != P_CONTROL ? 42 : (what == P_CONTROL ? 0 : 43));
	}
	secpol_program_free(&prog);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

Test(fc_seccomp, fork_exec_and_escape_class_syscalls_kill)
{
	int st = run_under_policy(P_CONTROL);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the control (getpid, exit_group) did not pass: %#x", st);
	static const struct { enum probe p; const char *name; } kills[] = {
		{ P_FORK, "fork" }, { P_VFORK, "vfork" }, { P_CLONE_FORK, "clone(SIGCHLD)" },
		{ P_CLONE_NEWNS, "clone(CLONE_NEWNS)" }, { P_EXECVEAT, "execveat" }, { P_PTRACE, "ptrace" },
		{ P_INET, "socket(AF_INET)" }, { P_MOUNT, "mount" }, { P_NOT_KVM_IOCTL, "ioctl(SIOCSPGRP)" },
	};
	for (size_t i = 0; i < sizeof(kills) / sizeof(kills[0]); i++) {
		st = run_under_policy(kills[i].p);
		cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "%s was not killed by seccomp (status %#x)",
			  kills[i].name, st);
	}
}

static struct vm_backend_spec plan_spec(int tap_fd)
{
	return (struct vm_backend_spec){ .id = "vm-test", .dir = "/run/ironclaw/vm-test", .kernel = "/k",
					 .initrd = "/i", .cpus = 2, .memory_mib = 256, .accel = VM_ACCEL_KVM,
					 .tap_fd = tap_fd };
}

static int argv_has(const struct vm_launch_plan *p, const char *word)
{
	for (size_t i = 0; p->argv[i]; i++)
		if (!strcmp(p->argv[i], word))
			return (int)i;
	return -1;
}

Test(fc_plan, never_no_seccomp_and_a_user_filter_goes_with_seccomp_filter)
{
	setenv("IRONCLAW_FIRECRACKER", "/bin/true", 1);
	struct vm_launch_plan *p = calloc(1, sizeof(*p));
	struct err e = { 0 };
	struct vm_backend_spec s = plan_spec(-1);
	cr_assert_eq(fc_plan_launch(&s, NULL, p, &e), 0, "%s", e.msg);
	cr_expect_str_eq(p->argv[0], "/bin/true");
	cr_expect_lt(argv_has(p, "--no-seccomp"), 0);
	cr_expect_lt(argv_has(p, "--seccomp-filter"), 0, "no filter given: Firecracker's built-in ones");
	cr_expect_eq(p->seccomp, fc_seccomp_policy(), "our process-wide policy is always applied");
	cr_expect(p->kvm_node);
	cr_expect_geq(argv_has(p, "--api-sock"), 0);

	cr_assert_eq(fc_plan_launch(&s, "/tmp/my.bpf", p, &e), 0, "%s", e.msg);
	int at = argv_has(p, "--seccomp-filter");
	cr_assert_geq(at, 0);
	cr_expect_str_eq(p->argv[at + 1], "/vm/seccomp.bpf");
	cr_expect_lt(argv_has(p, "--no-seccomp"), 0);
	int bound = 0;
	for (size_t i = 0; i < p->n_binds; i++)
		if (!strcmp(p->binds[i].host_path, "/tmp/my.bpf") && !strcmp(p->binds[i].jail_path, "/vm/seccomp.bpf"))
			bound = !p->binds[i].writable;
	cr_expect(bound, "the filter is bound read-only where argv names it");
	cr_expect_eq(p->seccomp, fc_seccomp_policy());

	cr_expect_not(p->tap_by_name, "no NIC, no tap");
	s = plan_spec(3);
	cr_assert_eq(fc_plan_launch(&s, NULL, p, &e), 0, "%s", e.msg);
	cr_expect(p->tap_by_name, "--net: Firecracker opens the jail's owned tap by name");
	cr_expect_eq(p->seccomp, fc_seccomp_policy(), "and the same policy applies with a NIC");
	setenv("IRONCLAW_FIRECRACKER", "/nonexistent/firecracker", 1);
	s = plan_spec(-1);
	cr_expect_lt(fc_plan_launch(&s, NULL, p, &e), 0);
	cr_expect(strstr(e.msg, "IRONCLAW_FIRECRACKER"), "the error says how to fix it: %s", e.msg);
	free(p);
	unsetenv("IRONCLAW_FIRECRACKER");
}

Test(fc_plan, the_jailer_gets_its_documented_options_never_no_seccomp_and_a_superset_policy)
{
	setenv("IRONCLAW_FIRECRACKER", "/bin/true", 1);
	struct vm_launch_plan *p = calloc(1, sizeof(*p));
	struct err e = { 0 };
	struct vm_backend_spec s = plan_spec(-1);
	cr_assert_eq(fc_jailer_plan(&s, "/usr/bin/jailer", "/usr/bin/firecracker", NULL, p, &e), 0, "%s", e.msg);
	static const char *const documented[] = { "--id", "--exec-file", "--uid", "--gid", "--chroot-base-dir",
						  "--netns", "--cgroup-version", "--parent-cgroup", NULL };
	int i = 1, seen_dd = 0;
	for (; p->argv[i] && strcmp(p->argv[i], "--"); i += 2) {
		int ok = 0;
		for (int k = 0; documented[k]; k++)
			ok |= !strcmp(p->argv[i], documented[k]);
		cr_expect(ok && p->argv[i + 1], "%s is not one of the jailer's documented options", p->argv[i]);
	}
	seen_dd = p->argv[i] != NULL;
	cr_expect(seen_dd, "Firecracker's options follow --");
	cr_expect_lt(argv_has(p, "--no-seccomp"), 0);
	cr_expect_lt(argv_has(p, "--daemonize"), 0, "the launcher watches the jailer's pid and keeps its stderr");
	cr_expect_lt(argv_has(p, "--netns"), 0, "no NIC, no netns");
	cr_expect_lt(argv_has(p, "--seccomp-filter"), 0);
	cr_expect(p->vmm_drops_privileges, "the jailer drops to --uid/--gid itself");
	cr_expect_not(p->kvm_node, "the jailer makes its own /dev/kvm in its chroot");
	cr_expect_eq(p->seccomp, fc_seccomp_jailer_policy(), "our filter is loaded before the jailer and stays");
	/* Every rule of Firecracker's policy is in the jailer's. */
	const struct jail_seccomp_policy *fp = fc_seccomp_policy(), *jp = fc_seccomp_jailer_policy();
	for (size_t r = 0; r < fp->n_rules; r++) {
		int found = 0;
		for (size_t q = 0; q < jp->n_rules && !found; q++)
			found = !memcmp(&fp->rules[r], &jp->rules[q], sizeof(fp->rules[r]));
		cr_expect(found, "%s is missing under the jailer", fp->rules[r].name);
	}
	s = plan_spec(3);
	cr_assert_eq(fc_jailer_plan(&s, "/usr/bin/jailer", "/usr/bin/firecracker", NULL, p, &e), 0, "%s", e.msg);
	int at = argv_has(p, "--netns");
	cr_assert_geq(at, 0);
	cr_expect(!strncmp(p->argv[at + 1], "/run/netns/ic-", 14), "%s", p->argv[at + 1]);
	cr_expect(p->tap_by_name);
	free(p);
	unsetenv("IRONCLAW_FIRECRACKER");
}
