/* Firecracker's process-wide seccomp policy: one table, one reason per
 * syscall, handed to the jail like QEMU's (the jail has no idea which VMM it
 * runs). It lives here, beside its backend, as QEMU's does.
 *
 * How the set was found: every syscall of Firecracker's own per-thread
 * filters (resources/seccomp/x86_64-unknown-linux-musl.json in its source, the
 * copy in shared/reference/firecracker-seccomp-x86_64.json: its vmm, api and
 * vcpu threads), because this filter must never refuse what those allow;
 * plus what Firecracker does on its main thread before it installs them
 * (process start-up of a static musl binary, opening /dev/kvm, building the
 * VM, creating its API socket and threads, installing the filters), marked
 * "start-up". tests/unit/test_fc_seccomp.c checks the first part against the
 * reference file. The start-up part is from Firecracker's source, not from a
 * trace: no Firecracker runs on the machines this was written on, and the
 * real-binary test (tests/integration/test_fc_real.c) is where it is proven.
 *
 * What stays out kills the process: fork, vfork, execveat, clone with any
 * flags but a thread's, ptrace, process_vm_*, any socket family but AF_UNIX,
 * ioctls outside KVM's and the tty/tun group. execve itself is allowed only
 * because the jail's own execve of Firecracker runs under this filter (it is
 * loaded last); the jail's root holds nothing else to exec, and no_new_privs
 * is set. */
#include "vm/fc_seccomp.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define ALLOW(n, why) { n, JAIL_SECCOMP_ALLOW, 0, 0, 0, NULL, why }
#define ARG_EQ(n, idx, val, why) { n, JAIL_SECCOMP_ALLOW_ARG_EQ, idx, ~0ull, (uint64_t)(val), #val, why }
#define ARG_MASKED(n, idx, mask, val, why) { n, JAIL_SECCOMP_ALLOW_ARG_EQ, idx, mask, (uint64_t)(val), #val, why }
#define DENY(n, err, why) { n, JAIL_SECCOMP_ERRNO, 0, 0, err, #err, why }

/* pthread_create's clone() flags: glibc's, and musl's (Firecracker's release
 * builds are static musl), which adds CLONE_DETACHED. */
#define FC_THREAD_FLAGS_GLIBC (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | \
			       CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)
#define FC_THREAD_FLAGS_MUSL (FC_THREAD_FLAGS_GLIBC | CLONE_DETACHED)
/* An ioctl request's type byte (bits 8..15): KVMIO is 0xAE; 'T' (0x54) holds
 * both the tty requests (TCGETS, TIOCGWINSZ, FIONBIO) and the tun ones. */
#define FC_IOCTL_TYPE_MASK 0xff00ull

static const struct jail_seccomp_rule fc_rules[] = {
	/* --- start-up of a static binary (before Firecracker's filters) ---- */
	ALLOW("execve", "the jail's own execve of Firecracker runs under this filter; nothing else in the jail to exec, no_new_privs set"),
	ALLOW("arch_prctl", "start-up: musl sets the TLS base (ARCH_SET_FS)"),
	ALLOW("set_tid_address", "start-up: musl and every new thread"),
	ALLOW("poll", "start-up: Rust's runtime checks that fds 0-2 are open"),
	ALLOW("sigaltstack", "Rust's stack-overflow guard on every thread; in the reference vmm, api and vcpu filters"),
	ALLOW("rt_sigaction", "Firecracker's signal handlers (start-up) and SIGABRT; reference filters check arg 0 per thread"),
	ALLOW("rt_sigprocmask", "in the reference filters (all threads)"),
	ALLOW("rt_sigreturn", "returning from a signal handler (vCPU kicks); reference vmm and vcpu filters"),
	ALLOW("restart_syscall", "the kernel restarts an interrupted call; reference filters"),
	ARG_EQ("prctl", 0, PR_SET_NO_NEW_PRIVS, "start-up: Firecracker sets no_new_privs before installing its filters (already set by the jail)"),
	ARG_EQ("prctl", 0, PR_SET_NAME, "start-up: Rust names the fc_api and fc_vcpu threads"),
	ALLOW("seccomp", "start-up: Firecracker installs its per-thread filters (they can only restrict further)"),
	ALLOW("getrandom", "reference vmm and api filters (hash seeds)"),
	ALLOW("gettid", "reference filters (all threads)"),
	ALLOW("getpid", "start-up: the logger and the instance id"),
	ALLOW("sched_getaffinity", "start-up: Rust's available_parallelism"),
	ALLOW("uname", "start-up: Firecracker checks the host kernel version"),
	ALLOW("prlimit64", "start-up: Firecracker raises RLIMIT_NOFILE within the jail's hard limit"),
	ALLOW("exit", "a thread ends; reference filters"),
	ALLOW("exit_group", "the process ends; reference filters"),

	/* --- threads ------------------------------------------------------- */
	DENY("clone3", ENOSYS, "glibc builds try clone3 first; its flags are in memory a filter cannot read, so ENOSYS makes glibc fall back to clone(), checked below"),
	ARG_EQ("clone", 0, FC_THREAD_FLAGS_MUSL, "start-up: the fc_api and fc_vcpu threads (musl's pthread flags): no fork, no namespaces"),
	ARG_EQ("clone", 0, FC_THREAD_FLAGS_GLIBC, "the same for a glibc build of Firecracker"),
	ALLOW("futex", "locks between the vmm, api and vcpu threads; reference filters check the op per thread"),
	ALLOW("set_robust_list", "start-up of a glibc build (per thread)"),
	ALLOW("rseq", "start-up of a glibc build (per thread)"),
	ALLOW("sched_yield", "reference filters (all threads)"),
	ALLOW("tkill", "vCPU kicks (SIGRTMIN + offset) and abort; reference vmm, api, vcpu filters"),
	ALLOW("tgkill", "abort() in a glibc build raises on itself"),

	/* --- memory ---------------------------------------------------------- */
	ALLOW("brk", "the heap; reference filters"),
	ALLOW("mmap", "guest memory, snapshot files, the heap; reference filters forbid PROT_EXEC per thread"),
	ALLOW("munmap", "reference filters"),
	ALLOW("mprotect", "start-up (stack guards, RELRO) and the reference vmm filter (never PROT_EXEC)"),
	ALLOW("mremap", "reference filters (Vec growth)"),
	ALLOW("madvise", "reference filters (MADV_DONTNEED: balloon, snapshot restore)"),
	ALLOW("memfd_create", "reference vmm filter: guest memory as a sealed memfd"),
	ALLOW("mincore", "reference vmm filter: which pages a snapshot must write"),
	ALLOW("msync", "reference vmm filter: flushing the snapshot memory file"),

	/* --- files (only what the jail's root holds) ------------------------ */
	ALLOW("open", "reference filters: musl opens with open(2) (/dev/kvm, /dev/net/tun, kernel, initrd, log, snapshot files)"),
	ALLOW("openat", "start-up and a glibc build open with openat"),
	ALLOW("read", "reference filters"),
	ALLOW("write", "reference filters"),
	ALLOW("readv", "reference vmm filter: the tap's receive path"),
	ALLOW("writev", "reference vmm filter: the tap's send path"),
	ALLOW("pread64", "start-up: reading the kernel's ELF headers"),
	ALLOW("pwrite64", "snapshot files are written at offsets"),
	ALLOW("lseek", "reference vmm filter (kernel, initrd, block devices)"),
	ALLOW("close", "reference filters"),
	ALLOW("stat", "reference vmm filter: snapshot file metadata"),
	ALLOW("fstat", "reference filters"),
	ALLOW("newfstatat", "a glibc build stats with newfstatat"),
	ALLOW("statx", "Rust's std::fs::metadata on newer builds"),
	ALLOW("fcntl", "reference filters (F_SETFD, F_ADD_SEALS)"),
	ALLOW("ftruncate", "reference vmm filter: sizing the guest memory and snapshot memory files"),
	ALLOW("fsync", "reference vmm filter: block device flushes"),
	ALLOW("unlink", "start-up: removing a stale API or vsock socket before bind (only the jail's own /run/vm is writable)"),
	ALLOW("unlinkat", "the same through the *at form"),
	ALLOW("readlink", "start-up: Rust's std::env::current_exe (fails without /proc: harmless)"),
	ALLOW("getcwd", "start-up: path handling in the argument parser"),

	/* --- waiting -------------------------------------------------------- */
	ALLOW("epoll_create1", "start-up: the vmm and api event managers"),
	ALLOW("epoll_ctl", "reference filters"),
	ALLOW("epoll_pwait", "reference vmm and api filters (the event loops)"),
	ALLOW("epoll_wait", "older musl implements epoll_pwait callers with it"),
	ALLOW("eventfd2", "reference vmm and vcpu filters (device notifications, irqfds)"),
	ALLOW("timerfd_create", "reference vmm filter (balloon statistics, rate limiters)"),
	ALLOW("timerfd_settime", "reference vmm and vcpu filters"),
	ALLOW("clock_gettime", "reference filters (vDSO fallback)"),
	ALLOW("clock_nanosleep", "thread::sleep on start-up paths"),
	ALLOW("nanosleep", "the same on older musl"),
	ALLOW("io_uring_setup", "reference vmm filter: the Async block engine (only when a drive asks for it)"),
	ALLOW("io_uring_enter", "reference vmm and vcpu filters"),
	ALLOW("io_uring_register", "reference vmm filter"),

	/* --- sockets: AF_UNIX only (the API socket, vsock's Unix sockets) -- */
	ARG_EQ("socket", 0, AF_UNIX, "reference vmm and api filters: AF_UNIX stream sockets only; any other family kills"),
	ALLOW("bind", "start-up: the API socket; the vsock device binds uds_path"),
	ALLOW("listen", "start-up: the API socket and uds_path"),
	ALLOW("accept4", "reference vmm and api filters: the host connects to the API and to uds_path"),
	ALLOW("connect", "reference vmm filter: guest-initiated vsock connections to <uds_path>_<port>"),
	ALLOW("recvfrom", "reference vmm and api filters"),
	ALLOW("recvmsg", "reference vmm and api filters"),
	ALLOW("sendto", "reference vmm and api filters"),
	ALLOW("sendmsg", "reference vmm and vcpu filters"),
	ALLOW("shutdown", "closing a vsock connection"),
	ALLOW("getsockopt", "SO_ERROR after a non-blocking connect"),
	ALLOW("setsockopt", "socket buffer sizes on vsock connections"),

	/* --- ioctl: KVM, and the tty/tun group ------------------------------ */
	ARG_MASKED("ioctl", 1, FC_IOCTL_TYPE_MASK, KVMIO << 8, "every KVM ioctl (type 0xAE): start-up builds the VM and vCPUs; the reference filters then allow exact requests per thread"),
	ARG_MASKED("ioctl", 1, FC_IOCTL_TYPE_MASK, 0x54 << 8, "type 'T': tun (TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ) and tty (TCGETS, TCSETS, TIOCGWINSZ, FIONBIO) in the reference vmm and api filters"),
};

static const struct jail_seccomp_policy fc_policy = {
	"Firecracker", fc_rules, sizeof(fc_rules) / sizeof(fc_rules[0]),
};

const struct jail_seccomp_policy *fc_seccomp_policy(void)
{
	return &fc_policy;
}

/* Under Firecracker's jailer the filter is loaded before the jail execs the
 * jailer, as root, and stays in force when the jailer execs Firecracker: it
 * must also allow the jailer's documented setup (docs/jailer.md in
 * Firecracker's source: validate paths, close inherited fds, create and
 * populate the chroot, copy the exec file, mknod /dev/kvm and /dev/net/tun,
 * chown, a new mount namespace, pivot_root, chroot, join the netns, drop to
 * --uid/--gid, exec). By the time Firecracker runs it has no capability left
 * to use any of these (the jailer's setresuid to a non-zero uid cleared
 * them), and Firecracker's own per-thread filters refuse them too. */
static const struct jail_seccomp_rule fc_jailer_extra[] = {
	ALLOW("mount", "jailer: MS_PRIVATE|MS_REC on /, the chroot bound onto itself"),
	ALLOW("umount2", "jailer: detaching the old root after pivot_root"),
	ALLOW("pivot_root", "jailer: into the chroot"),
	ALLOW("chroot", "jailer: chroot(\".\") after pivot_root"),
	ALLOW("chdir", "jailer: into the chroot"),
	ALLOW("mkdir", "jailer: the chroot, /dev, /dev/net, /run inside it"),
	ALLOW("mkdirat", "jailer: as mkdir (Rust's create_dir_all)"),
	ALLOW("rmdir", "jailer: removing old_root"),
	ALLOW("mknod", "jailer: /dev/kvm and /dev/net/tun in the chroot"),
	ALLOW("mknodat", "jailer: as mknod"),
	ALLOW("chown", "jailer: the chroot, its /dev nodes and folders to --uid/--gid"),
	ALLOW("fchownat", "jailer: as chown"),
	ALLOW("chmod", "jailer: folder permissions (0700)"),
	ALLOW("fchmod", "jailer: the copied exec file's mode"),
	ALLOW("fchmodat", "jailer: as chmod"),
	ALLOW("copy_file_range", "jailer: copying the exec file into the chroot"),
	ALLOW("sendfile", "jailer: the copy's fallback"),
	ALLOW("getdents64", "jailer: closing inherited fds listed in /proc/self/fd"),
	ALLOW("close_range", "jailer: closing inherited fds"),
	ALLOW("readlinkat", "jailer: canonicalizing --exec-file and --chroot-base-dir"),
	ALLOW("faccessat2", "jailer: path checks"),
	ALLOW("setrlimit", "jailer: its --resource-limit defaults (no-file)"),
	ARG_EQ("unshare", 0, CLONE_NEWNS, "jailer: a mount namespace of its own for the chroot (nothing else)"),
	ARG_EQ("setns", 1, CLONE_NEWNET, "jailer: --netns, the VM's network namespace (already ours: a no-op)"),
	ALLOW("setsid", "jailer: --daemonize (not passed; harmless)"),
	ALLOW("dup2", "jailer: --daemonize's redirections (not passed; harmless)"),
	ALLOW("dup3", "jailer: as dup2"),
	ALLOW("setgroups", "jailer: dropping supplementary groups"),
	ALLOW("setresgid", "jailer: dropping to --gid"),
	ALLOW("setresuid", "jailer: dropping to --uid"),
	ALLOW("setgid", "jailer: dropping to --gid"),
	ALLOW("setuid", "jailer: dropping to --uid"),
	ALLOW("getuid", "jailer"),
	ALLOW("geteuid", "jailer"),
	ALLOW("getgid", "jailer"),
	ALLOW("getegid", "jailer"),
	ALLOW("getppid", "jailer"),
};

#define FC_N_RULES (sizeof(fc_rules) / sizeof(fc_rules[0]))
#define FC_N_EXTRA (sizeof(fc_jailer_extra) / sizeof(fc_jailer_extra[0]))
static struct jail_seccomp_rule fc_jailer_rules[FC_N_RULES + FC_N_EXTRA];
static struct jail_seccomp_policy fc_jailer_pol = {
	"Firecracker under its jailer", fc_jailer_rules, FC_N_RULES + FC_N_EXTRA,
};
static pthread_once_t fc_jailer_once = PTHREAD_ONCE_INIT;

static void fc_jailer_init(void)
{
	memcpy(fc_jailer_rules, fc_rules, sizeof(fc_rules));
	memcpy(fc_jailer_rules + FC_N_RULES, fc_jailer_extra, sizeof(fc_jailer_extra));
}

const struct jail_seccomp_policy *fc_seccomp_jailer_policy(void)
{
	pthread_once(&fc_jailer_once, fc_jailer_init);
	return &fc_jailer_pol;
}
