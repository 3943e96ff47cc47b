/* QEMU's seccomp policy: one table, one reason per syscall, handed to the jail
 * as a struct jail_seccomp_policy (the jail has no idea which VMM it runs).
 *
 * How the set was found: the real boot (QEMU 7.2 microvm, TCG, the command line
 * of src/vm, virtio-serial channel and QMP in use, a tap NIC moving packets,
 * the guest powering off) was run under `strace -f -qq -e trace=all`, and every
 * syscall seen is below with why QEMU makes it. A few more are here because a
 * code path that the trace run did not hit needs them (thread fallback, signal
 * return, timers), each marked as such. Anything else kills the process
 * (SCMP_ACT_KILL_PROCESS), and so does a foreign architecture or the x32 ABI.
 *
 * Argument checks where the argument is a plain value: socket() only for
 * AF_UNIX (the VMM's sockets are QMP and the channel; it has no business with
 * the network, its NIC is a tap fd it was given), clone() only with the exact
 * flags of a new pthread (no fork, no namespaces), ioctl() only with the
 * request numbers listed, prctl() only with the options listed. */
#include "vm/qemu_seccomp.h"

#include <errno.h>
#include <pthread.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

/* Which QEMU variant an entry serves. */
#define SECPOL_TCG 0x1u   /* QEMU with TCG (this machine kind) */
#define SECPOL_KVM 0x2u   /* QEMU with KVM */
#define SECPOL_ALL (SECPOL_TCG | SECPOL_KVM)

struct qemu_secpol_entry {
	unsigned variants;
	struct jail_seccomp_rule rule;
};

#define ALLOW(n, v, why) { v, { n, JAIL_SECCOMP_ALLOW, 0, 0, 0, NULL, why } }
#define ARG_EQ(n, v, idx, val, why) { v, { n, JAIL_SECCOMP_ALLOW_ARG_EQ, idx, ~0ull, (uint64_t)(val), #val, why } }
#define IOCTL(req, v, why) { v, { "ioctl", JAIL_SECCOMP_ALLOW_ARG_EQ, 1, 0xffffffffull, (uint64_t)(req), #req, why } }
#define DENY(n, v, err, why) { v, { n, JAIL_SECCOMP_ERRNO, 0, 0, err, #err, why } }

/* The flags glibc's pthread_create passes to clone() (clone3 is refused below,
 * so glibc falls back to clone, whose flags a filter can see). */
#define SECPOL_THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | \
			     CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

static const struct qemu_secpol_entry secpol_entries[] = {
	/* --- starting the process ------------------------------------------ */
	ALLOW("execve", SECPOL_ALL, "the jail's own execve of the VMM runs under the filter (it is loaded last); the root holds nothing else to exec and no_new_privs is set"),
	ALLOW("arch_prctl", SECPOL_ALL, "glibc start-up sets the TLS base (ARCH_SET_FS)"),
	ALLOW("set_tid_address", SECPOL_ALL, "glibc start-up, thread exit notification"),
	ALLOW("set_robust_list", SECPOL_ALL, "glibc start-up and every new thread (robust futexes)"),
	ALLOW("rseq", SECPOL_ALL, "glibc 2.35+ registers restartable sequences per thread"),
	ALLOW("prlimit64", SECPOL_ALL, "glibc and QEMU read RLIMIT_STACK / RLIMIT_NOFILE (raising past the jail's hard limit fails in the kernel)"),
	ALLOW("getrandom", SECPOL_ALL, "glibc malloc/stack-protector seeding and QEMU's guest RNG seeding"),
	ALLOW("uname", SECPOL_ALL, "not in the trace; glibc and GLib query the kernel version on some paths"),
	ALLOW("sysinfo", SECPOL_ALL, "QEMU sizes defaults from total RAM (seen twice at start-up)"),
	ALLOW("sched_getaffinity", SECPOL_ALL, "GLib counts usable CPUs for its thread pool"),
	ALLOW("getpid", SECPOL_ALL, "not in the trace; QEMU and GLib use it for messages and pid files"),
	ALLOW("gettid", SECPOL_ALL, "QEMU's thread naming and tracing"),
	ALLOW("getuid", SECPOL_ALL, "not in the trace; GLib reads the uid when looking up the user's dirs"),
	ALLOW("geteuid", SECPOL_ALL, "not in the trace; as getuid"),
	ALLOW("getgid", SECPOL_ALL, "not in the trace; as getuid"),
	ALLOW("getegid", SECPOL_ALL, "not in the trace; as getuid"),
	ARG_EQ("prctl", SECPOL_ALL, 0, PR_SET_TIMERSLACK, "QEMU sets a 1 ns timer slack for precise timers"),
	ARG_EQ("prctl", SECPOL_ALL, 0, PR_MCE_KILL, "QEMU asks for early machine-check kills"),
	ARG_EQ("prctl", SECPOL_ALL, 0, PR_SET_NAME, "not in the trace; QEMU names its threads with -name debug-threads=on"),
	ALLOW("seccomp", SECPOL_ALL, "QEMU probes seccomp support at start-up (SECCOMP_SET_MODE_FILTER with a NULL program); any filter it adds can only restrict further"),

	/* --- memory ---------------------------------------------------------- */
	ALLOW("brk", SECPOL_ALL, "malloc's heap"),
	ALLOW("mmap", SECPOL_ALL, "guest RAM, the TCG code buffer, shared libraries, malloc arenas"),
	ALLOW("munmap", SECPOL_ALL, "freeing the above"),
	ALLOW("mprotect", SECPOL_ALL, "the TCG JIT flips its code buffer between writable and executable (1200+ calls per boot); the loader sets RELRO"),
	ALLOW("mremap", SECPOL_ALL, "not in the trace; glibc realloc of large blocks"),
	ALLOW("madvise", SECPOL_ALL, "QEMU marks guest RAM (MADV_DONTDUMP, MADV_HUGEPAGE) and malloc trims"),
	ALLOW("memfd_create", SECPOL_ALL, "QEMU probes memfd (with and without hugetlb) for guest RAM backends"),
	ALLOW("set_mempolicy", SECPOL_ALL, "glibc/QEMU NUMA probes at start-up; only affects the caller's own pages"),
	ALLOW("get_mempolicy", SECPOL_ALL, "as set_mempolicy"),
	ALLOW("mbind", SECPOL_ALL, "not in the trace; QEMU memory backends with host-nodes"),
	ALLOW("membarrier", SECPOL_ALL, "not in the trace; QEMU's RCU uses membarrier when available"),

	/* --- threads and signals ------------------------------------------ */
	DENY("clone3", SECPOL_ALL, ENOSYS, "its flags live in memory a filter cannot read; ENOSYS makes glibc fall back to clone(), checked below"),
	ARG_EQ("clone", SECPOL_ALL, 0, SECPOL_THREAD_FLAGS, "new threads only (vCPU, I/O, RCU, worker threads): exactly pthread's flags, so no fork and no new namespaces"),
	ALLOW("futex", SECPOL_ALL, "every lock and condition variable between QEMU's threads"),
	ALLOW("exit", SECPOL_ALL, "a thread ends"),
	ALLOW("exit_group", SECPOL_ALL, "the process ends (guest poweroff, QMP quit)"),
	ALLOW("rt_sigaction", SECPOL_ALL, "QEMU installs its SIGBUS/SIGALRM/SIGIO/SIGTERM handlers"),
	ALLOW("rt_sigprocmask", SECPOL_ALL, "QEMU blocks signals in its threads and unblocks them in the main loop"),
	ALLOW("rt_sigreturn", SECPOL_ALL, "not in the trace (no signal arrived); needed to return from any handler"),
	ALLOW("sigaltstack", SECPOL_ALL, "not in the trace; coroutine and thread set-up in GLib/QEMU"),
	ALLOW("signalfd4", SECPOL_ALL, "QEMU receives SIGBUS/SIGALRM/SIGIO through a signalfd"),
	ALLOW("tgkill", SECPOL_ALL, "not in the trace; QEMU kicks a vCPU thread with a signal (KVM) and abort() raises on itself"),
	ALLOW("restart_syscall", SECPOL_ALL, "the kernel restarts an interrupted sleep after a signal"),
	ALLOW("sched_yield", SECPOL_ALL, "not in the trace; spinning locks in GLib and QEMU"),

	/* --- time and waiting ------------------------------------------------ */
	ALLOW("ppoll", SECPOL_ALL, "QEMU's main loop (2000 calls per boot)"),
	ALLOW("poll", SECPOL_ALL, "GLib's main context and QEMU's chardev code"),
	ALLOW("clock_nanosleep", SECPOL_ALL, "QEMU's timers and g_usleep"),
	ALLOW("nanosleep", SECPOL_ALL, "not in the trace; older sleep paths in GLib"),
	ALLOW("clock_gettime", SECPOL_ALL, "not in the trace (vDSO); the syscall fallback when the vDSO clock is unusable"),
	ALLOW("gettimeofday", SECPOL_ALL, "not in the trace (vDSO); fallback as clock_gettime"),
	ALLOW("eventfd2", SECPOL_ALL, "QEMU's event notifiers (main loop wake-ups, virtio ioeventfds)"),
	ALLOW("epoll_create1", SECPOL_ALL, "not in the trace; QEMU's aio switches to epoll when many fds are watched"),
	ALLOW("epoll_ctl", SECPOL_ALL, "as epoll_create1"),
	ALLOW("epoll_wait", SECPOL_ALL, "as epoll_create1"),
	ALLOW("epoll_pwait", SECPOL_ALL, "as epoll_create1"),
	DENY("io_uring_setup", SECPOL_ALL, ENOSYS, "QEMU probes io_uring three times; io_uring ops are not seen by seccomp, so refuse it and QEMU uses its poll loop"),

	/* --- files (only what the jail's root holds) ---------------------- */
	ALLOW("read", SECPOL_ALL, "the kernel/initramfs/firmware, eventfds, the tap fd, sockets"),
	ALLOW("write", SECPOL_ALL, "the serial log, eventfds, the tap fd, sockets"),
	ALLOW("readv", SECPOL_ALL, "not in the trace; tap receive path with vnet headers"),
	ALLOW("writev", SECPOL_ALL, "the tap send path and chardev writes (330 calls per boot)"),
	ALLOW("pread64", SECPOL_ALL, "the loader reads ELF headers; QEMU reads firmware"),
	ALLOW("pwrite64", SECPOL_ALL, "not in the trace; block backends write at offsets"),
	ALLOW("lseek", SECPOL_ALL, "QEMU sizes and rewinds the kernel/initramfs files"),
	ALLOW("openat", SECPOL_ALL, "libraries, firmware, kernel, initramfs, the serial log: only the files bound into the jail exist"),
	ALLOW("close", SECPOL_ALL, "every fd QEMU is done with (files, sockets, eventfds)"),
	ALLOW("newfstatat", SECPOL_ALL, "the loader and QEMU stat their files"),
	ALLOW("fstat", SECPOL_ALL, "not in the trace; older glibc paths for fstat"),
	ALLOW("statx", SECPOL_ALL, "not in the trace; GLib's file queries"),
	ALLOW("access", SECPOL_ALL, "QEMU checks firmware and module paths before opening them"),
	ALLOW("faccessat", SECPOL_ALL, "not in the trace; the same check through the *at form"),
	ALLOW("faccessat2", SECPOL_ALL, "not in the trace; glibc 2.33+ implements access() with it on some paths"),
	ALLOW("readlink", SECPOL_ALL, "QEMU resolves /proc/self/exe to find its data directory (fails in the jail: no /proc; it falls back to the built-in path)"),
	ALLOW("readlinkat", SECPOL_ALL, "not in the trace; the *at form of readlink"),
	ALLOW("getdents64", SECPOL_ALL, "QEMU lists its module directory and /sys paths (absent in the jail)"),
	ALLOW("statfs", SECPOL_ALL, "libselinux probes for selinuxfs at load time"),
	ALLOW("fstatfs", SECPOL_ALL, "not in the trace; QEMU checks the filesystem of memory backends"),
	ALLOW("fcntl", SECPOL_ALL, "O_NONBLOCK and FD_CLOEXEC on its fds"),
	ALLOW("dup", SECPOL_ALL, "not in the trace; chardev set-up duplicates fds"),
	ALLOW("dup3", SECPOL_ALL, "not in the trace; as dup"),
	ALLOW("pipe2", SECPOL_ALL, "not in the trace; GLib wake-up pipes when eventfd is unavailable"),
	ALLOW("unlink", SECPOL_ALL, "QEMU removes stale socket paths before bind (only in the jail's own /run/vm)"),
	ALLOW("fchdir", SECPOL_ALL, "QEMU's unix-socket code changes into the socket's directory to bind long paths"),
	ALLOW("getcwd", SECPOL_ALL, "not in the trace; path helpers in GLib"),
	ALLOW("ftruncate", SECPOL_ALL, "not in the trace; memfd-backed guest RAM is sized with it"),
	ALLOW("fdatasync", SECPOL_ALL, "not in the trace; block backends flush"),
	ALLOW("fsync", SECPOL_ALL, "not in the trace; as fdatasync"),
	ALLOW("umask", SECPOL_ALL, "not in the trace; GLib and QEMU set it before creating sockets"),
	/* --- block devices: an image disk (read-only) and a scratch disk ---- */
	ALLOW("preadv", SECPOL_ALL, "virtio-blk reads of an image or scratch disk (the raw file backend's aio=threads path)"),
	ALLOW("pwritev", SECPOL_ALL, "virtio-blk writes to the scratch disk (the image is opened O_RDONLY)"),
	ALLOW("fallocate", SECPOL_ALL, "discard=unmap on the scratch disk punches holes, so host disk use shrinks again"),

	/* --- sockets: only AF_UNIX (QMP, the guest channel) --------------- */
	ARG_EQ("socket", SECPOL_ALL, 0, AF_UNIX, "QMP and the channel are Unix sockets; any other family (AF_INET, AF_NETLINK, ...) kills"),
	ALLOW("bind", SECPOL_ALL, "binding the Unix sockets in /run/vm (socket() above is AF_UNIX only)"),
	ALLOW("listen", SECPOL_ALL, "server=on Unix sockets"),
	ALLOW("accept4", SECPOL_ALL, "the host connects to QMP and the channel"),
	ALLOW("accept", SECPOL_ALL, "not in the trace; older accept path"),
	ALLOW("connect", SECPOL_ALL, "not in the trace; client-mode chardevs (a Unix socket: socket() is AF_UNIX only)"),
	ALLOW("getsockname", SECPOL_ALL, "QEMU reads back the socket address after bind/accept"),
	ALLOW("getpeername", SECPOL_ALL, "QEMU logs the peer of an accepted connection"),
	ALLOW("recvmsg", SECPOL_ALL, "channel and QMP reads (with SCM_RIGHTS for QMP getfd)"),
	ALLOW("sendmsg", SECPOL_ALL, "channel and QMP writes"),
	ALLOW("recvfrom", SECPOL_ALL, "not in the trace; plain recv on the sockets"),
	ALLOW("sendto", SECPOL_ALL, "not in the trace; plain send on the sockets"),
	ALLOW("shutdown", SECPOL_ALL, "not in the trace; closing a chardev connection"),
	ALLOW("setsockopt", SECPOL_ALL, "not in the trace; QEMU sets SO_REUSEADDR/SO_SNDBUF on its sockets"),
	ALLOW("getsockopt", SECPOL_ALL, "not in the trace; QEMU reads SO_ERROR after a non-blocking connect"),

	/* --- ioctl: the tap fd it was given, a terminal, and KVM --------- */
	IOCTL(TUNGETIFF, SECPOL_ALL, "QEMU checks the tap fd it was given (-netdev tap,fd=3)"),
	IOCTL(TUNGETFEATURES, SECPOL_ALL, "QEMU probes the tap's features"),
	IOCTL(TUNSETOFFLOAD, SECPOL_ALL, "QEMU sets checksum/TSO offloads on the tap"),
	IOCTL(TUNSETVNETHDRSZ, SECPOL_ALL, "virtio-net header size on the tap"),
	IOCTL(TUNGETVNETHDRSZ, SECPOL_ALL, "virtio-net header size on the tap"),
	IOCTL(TUNSETSNDBUF, SECPOL_ALL, "QEMU sets the tap's send buffer"),
	IOCTL(TUNSETVNETLE, SECPOL_ALL, "not in the trace; virtio 1.0 little-endian headers on the tap"),
	IOCTL(TCGETS, SECPOL_ALL, "not in the trace; isatty() on stdio when a chardev is on stdio"),
	IOCTL(TCSETS, SECPOL_ALL, "not in the trace; raw mode on a stdio chardev"),
	IOCTL(TIOCGWINSZ, SECPOL_ALL, "not in the trace; terminal size for a stdio chardev"),
	IOCTL(FIONBIO, SECPOL_ALL, "not in the trace; non-blocking mode through ioctl"),
	IOCTL(FIOCLEX, SECPOL_ALL, "not in the trace; close-on-exec through ioctl"),
	IOCTL(KVM_GET_API_VERSION, SECPOL_KVM, "KVM start-up"),
	IOCTL(KVM_CREATE_VM, SECPOL_KVM, "KVM start-up"),
	IOCTL(KVM_CHECK_EXTENSION, SECPOL_KVM, "QEMU probes dozens of KVM capabilities"),
	IOCTL(KVM_GET_VCPU_MMAP_SIZE, SECPOL_KVM, "size of the vCPU's shared kvm_run page"),
	IOCTL(KVM_CREATE_VCPU, SECPOL_KVM, "one per vCPU"),
	IOCTL(KVM_GET_SUPPORTED_CPUID, SECPOL_KVM, "QEMU builds the guest CPUID"),
	IOCTL(KVM_SET_CPUID2, SECPOL_KVM, "QEMU sets the guest CPUID"),
	IOCTL(KVM_GET_MSR_INDEX_LIST, SECPOL_KVM, "QEMU lists the MSRs it must migrate"),
	IOCTL(KVM_GET_MSR_FEATURE_INDEX_LIST, SECPOL_KVM, "QEMU lists feature MSRs"),
	IOCTL(KVM_GET_MSRS, SECPOL_KVM, "vCPU state sync (MSRs)"),
	IOCTL(KVM_SET_MSRS, SECPOL_KVM, "vCPU state sync (MSRs)"),
	IOCTL(KVM_ENABLE_CAP, SECPOL_KVM, "QEMU enables capabilities on the VM and vCPUs"),
	IOCTL(KVM_GET_DEVICE_ATTR, SECPOL_KVM, "QEMU queries device attributes (TSC control)"),
	IOCTL(KVM_X86_GET_MCE_CAP_SUPPORTED, SECPOL_KVM, "machine-check set-up"),
	IOCTL(KVM_X86_SETUP_MCE, SECPOL_KVM, "machine-check set-up"),
	IOCTL(KVM_X86_SET_MSR_FILTER, SECPOL_KVM, "QEMU installs its MSR filter"),
	IOCTL(KVM_SET_USER_MEMORY_REGION, SECPOL_KVM, "maps guest RAM"),
	IOCTL(KVM_SET_TSS_ADDR, SECPOL_KVM, "x86 VM set-up"),
	IOCTL(KVM_SET_IDENTITY_MAP_ADDR, SECPOL_KVM, "x86 VM set-up"),
	IOCTL(KVM_SET_GSI_ROUTING, SECPOL_KVM, "interrupt routing for virtio-mmio"),
	IOCTL(KVM_GET_TSC_KHZ, SECPOL_KVM, "TSC frequency for the guest"),
	IOCTL(KVM_SET_TSC_KHZ, SECPOL_KVM, "not in the trace; TSC frequency when -cpu sets one"),
	IOCTL(KVM_IOEVENTFD, SECPOL_KVM, "virtio notifications as eventfds"),
	IOCTL(KVM_IRQFD, SECPOL_KVM, "not in the trace (this host's nested KVM stops first); virtio interrupts as eventfds"),
	IOCTL(KVM_CREATE_IRQCHIP, SECPOL_KVM, "not in the trace; the in-kernel irqchip"),
	IOCTL(KVM_CREATE_PIT2, SECPOL_KVM, "not in the trace; the in-kernel PIT"),
	IOCTL(KVM_IRQ_LINE_STATUS, SECPOL_KVM, "not in the trace; raising legacy interrupts"),
	IOCTL(KVM_SIGNAL_MSI, SECPOL_KVM, "not in the trace; MSI delivery"),
	IOCTL(KVM_RUN, SECPOL_KVM, "not in the trace (the nested KVM here fails before); the vCPU loop"),
	IOCTL(KVM_GET_REGS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_REGS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_SREGS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_SREGS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_FPU, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_FPU, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_LAPIC, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_LAPIC, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_XSAVE, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_XSAVE, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_XCRS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_XCRS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_VCPU_EVENTS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_VCPU_EVENTS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_DEBUGREGS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_DEBUGREGS, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_MP_STATE, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_SET_MP_STATE, SECPOL_KVM, "not in the trace; vCPU state sync"),
	IOCTL(KVM_GET_CLOCK, SECPOL_KVM, "not in the trace; kvmclock"),
	IOCTL(KVM_SET_CLOCK, SECPOL_KVM, "not in the trace; kvmclock"),
	IOCTL(KVM_KVMCLOCK_CTRL, SECPOL_KVM, "not in the trace; kvmclock on pause"),
	IOCTL(KVM_SET_SIGNAL_MASK, SECPOL_KVM, "not in the trace; vCPU thread signal mask during KVM_RUN"),
};

#define QEMU_SECPOL_N (sizeof(secpol_entries) / sizeof(secpol_entries[0]))

/* The two variants as flat tables, filtered once (first use, any thread). */
static struct jail_seccomp_rule qemu_rules[2][QEMU_SECPOL_N];
static struct jail_seccomp_policy qemu_policies[2] = {
	{ "QEMU (TCG)", qemu_rules[0], 0 },
	{ "QEMU (KVM)", qemu_rules[1], 0 },
};
static pthread_once_t qemu_secpol_once = PTHREAD_ONCE_INIT;

static void qemu_secpol_build(void)
{
	static const unsigned want[2] = { SECPOL_TCG, SECPOL_KVM };
	for (size_t v = 0; v < 2; v++)
		for (size_t i = 0; i < QEMU_SECPOL_N; i++)
			if (secpol_entries[i].variants & want[v])
				qemu_rules[v][qemu_policies[v].n_rules++] = secpol_entries[i].rule;
}

const struct jail_seccomp_policy *qemu_seccomp_policy(int kvm)
{
	pthread_once(&qemu_secpol_once, qemu_secpol_build);
	return &qemu_policies[kvm ? 1 : 0];
}
