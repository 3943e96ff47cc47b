/* The API process's own seccomp filter (priv.h), loaded last in priv_drop.
 *
 * The API process is already an unprivileged uid with no capabilities; this
 * filter takes away what such a process still has and never needs, and what
 * would let a compromised one reach new kernel surface or leave its place:
 * user namespaces (unshare, clone with CLONE_NEW*: they hand out capabilities
 * again, inside), mounting, ptrace and other processes' memory, new programs
 * (execve), new processes (fork; clone only for threads), BPF, perf, keyrings,
 * userfaultfd, modules. It is a denylist, not the VMM's allowlist: the API
 * process runs libmicrohttpd, libuv, jansson, OpenSSL and libarchive, whose
 * syscalls change with their versions, and a missing allow would take the
 * daemon down; every rule here is a syscall none of them makes. A denied call
 * kills the process (the parent then destroys every VM and exits: fail closed). */
#include "serve/priv.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>

/* Each with why the API process never makes it. */
static const struct {
	const char *name;
	const char *why;
} priv_deny[] = {
	{ "execve", "never runs another program" },
	{ "execveat", "never runs another program" },
	{ "fork", "never makes a process (VMMs are the parent's)" },
	{ "vfork", "never makes a process" },
	{ "unshare", "no namespaces: a user namespace hands out capabilities" },
	{ "setns", "no namespaces" },
	{ "mount", "no mounts" },
	{ "umount2", "no mounts" },
	{ "pivot_root", "no mounts" },
	{ "chroot", "no mounts" },
	{ "open_tree", "no mounts" },
	{ "move_mount", "no mounts" },
	{ "fsopen", "no mounts" },
	{ "fsconfig", "no mounts" },
	{ "fsmount", "no mounts" },
	{ "fspick", "no mounts" },
	{ "mount_setattr", "no mounts" },
	{ "ptrace", "no other process's state" },
	{ "process_vm_readv", "no other process's memory" },
	{ "process_vm_writev", "no other process's memory" },
	{ "pidfd_getfd", "no other process's descriptors" },
	{ "kcmp", "no other process's state" },
	{ "bpf", "no BPF programs" },
	{ "perf_event_open", "no perf events" },
	{ "userfaultfd", "a classic kernel exploit helper, never needed" },
	{ "keyctl", "no keyrings" },
	{ "add_key", "no keyrings" },
	{ "request_key", "no keyrings" },
	{ "init_module", "no modules" },
	{ "finit_module", "no modules" },
	{ "delete_module", "no modules" },
	{ "kexec_load", "no kexec" },
	{ "kexec_file_load", "no kexec" },
	{ "reboot", "no reboot" },
	{ "swapon", "no swap" },
	{ "swapoff", "no swap" },
	{ "acct", "no accounting" },
	{ "iopl", "no I/O ports" },
	{ "ioperm", "no I/O ports" },
	{ "open_by_handle_at", "no file handles (they bypass paths)" },
	{ "quotactl", "no quotas" },
};

int priv_seccomp_load(struct err *e)
{
	int rc;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return err_set(e, -ENOMEM, "seccomp_init failed");
	for (size_t i = 0; i < sizeof(priv_deny) / sizeof(priv_deny[0]); i++) {
		int nr = seccomp_syscall_resolve_name(priv_deny[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue;   /* not on this architecture */
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, nr, 0)) < 0) {
			err_set(e, rc, "seccomp rule for %s: %s", priv_deny[i].name, strerror(-rc));
			goto out;
		}
	}
	/* clone only for threads (libuv's pool): without CLONE_THREAD it is a new
	 * process, and with any CLONE_NEW* flag a new namespace. */
	static const uint64_t ns[] = { CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
				       CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET };
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
				   SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))) < 0) {
		err_set(e, rc, "seccomp rule for clone: %s", strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
					   SCMP_A0(SCMP_CMP_MASKED_EQ, ns[i], ns[i]))) < 0) {
			err_set(e, rc, "seccomp rule for clone: %s", strerror(-rc));
			goto out;
		}
	/* clone3 passes its flags in memory a filter cannot read: ENOSYS makes
	 * glibc fall back to clone, which the rules above see. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0) {
		err_set(e, rc, "seccomp rule for clone3: %s", strerror(-rc));
		goto out;
	}
	if ((rc = seccomp_load(ctx)) < 0)
		err_set(e, rc, "loading the API process's seccomp filter: %s", strerror(-rc));
out:
	seccomp_release(ctx);
	return rc < 0 ? rc : 0;
}
