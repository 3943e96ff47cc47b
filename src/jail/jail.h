/* The jail: the only way a VMM process is started.
 *
 * A VMM (QEMU, later Firecracker) is untrusted as soon as the guest runs, so it
 * is started inside new mount/PID/IPC/UTS/network namespaces, pivot_root'ed
 * into a tmpfs holding only what it needs (its binary and shared libraries, its
 * firmware, the kernel/initramfs, its socket directory, /dev/null, /dev/urandom
 * and /dev/kvm only with KVM), limited by cgroups and rlimits, stripped to an
 * unprivileged uid/gid with no_new_privs, every other fd closed, an empty
 * environment, and finally a seccomp allowlist (kill on violation) loaded just
 * before execve. Every step fails closed: when one fails the VMM is never
 * exec'ed and the caller gets a message saying which step failed and why.
 *
 * Policy stays with the caller: which syscalls the VMM may make (a table with a
 * reason per rule), what it may see (binds), whether it gets /dev/kvm. The jail
 * returns what happened to the VMM (struct jail_exit); recording it is the
 * caller's business.
 *
 * Network: by default the VMM sits in its own empty network namespace (no NIC
 * at all). With `net`, the jail creates a named netns holding a tap device (fd
 * handed to the VMM as fd 3) and one end of a veth pair whose other end is on
 * the host; a per-VM nftables table in that netns (policy drop, only the
 * allowlist plus established replies) sits on the forward and input hooks, and
 * it is read back and verified before the VMM starts. All of it is made over
 * netlink (libmnl) and libnftables: no per-VM fork or exec except the VMM. */
#ifndef IRONCLAW_JAIL_JAIL_H
#define IRONCLAW_JAIL_JAIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

/* VM ids: 1..JAIL_ID_MAX characters of [a-z0-9-], not starting with '-'. */
#define JAIL_ID_MAX 48
/* Root of the per-VM directories (jail_test_set_run_dir moves it for tests). */
#define JAIL_RUN_DIR "/run/ironclaw"
/* With net = 1 the tap fd is always this fd number in the VMM, and pass_fds
 * follow it (4, 5, ...); without net pass_fds start at this number. */
#define JAIL_TAP_FD 3
/* The tap's name inside the VM's netns (what a VMM that opens its tap by name,
 * Firecracker's host_dev_name, is given). */
#define JAIL_TAP_NAME "tap0"
/* Caps on the configuration (checked before anything is created). */
#define JAIL_BINDS_MAX 16
#define JAIL_PASS_FDS_MAX 8
#define JAIL_ALLOW_MAX 32
#define JAIL_ARGV_MAX 128

struct jail_bind {
	const char *host_path;  /* absolute, must exist (file or directory) */
	const char *jail_path;  /* absolute path inside the jail, no ".." */
	int writable;           /* 0: read-only bind (the default for everything) */
};

struct jail_net_allow {
	uint32_t addr;          /* IPv4, host byte order */
	uint8_t prefix;         /* 0..32 */
	uint16_t port;          /* 0 = any port; otherwise TCP and UDP to this port */
};

/* ---- names ----
 * Every name a VM has on this host, computed once from its id by
 * jail_names_make (the only place an id is validated) and passed down from
 * there. Kernel object names are a fixed prefix plus a 64-bit FNV-1a hash of
 * the id, so they fit the kernel's limits (IFNAMSIZ 16 for links) whatever the
 * id length, and gc finds them again from the id alone. */
struct jail_names {
	char id[JAIL_ID_MAX + 1];
	char dir[128];        /* <run dir>/<id>: the per-VM directory */
	char netns[32];       /* "ic-<16 hex>" */
	char netns_path[64];  /* "/run/netns/<netns>" */
	char veth_host[16];   /* "icv<12 hex>": 15 chars, the IFNAMSIZ limit */
	char table[32];       /* "ironclaw_<16 hex>" (nft, family inet) */
	char chain_fwd[32];   /* "fwd_<16 hex>" */
	char chain_in[32];    /* "in_<16 hex>" */
	char chain_out[32];   /* "out_<16 hex>" */
	char chain_nat[32];   /* "nat_<16 hex>" */
	char cgroup[JAIL_ID_MAX + 1];  /* leaf under <cgroup root>/ironclaw/ */
	uid_t uid;            /* the VMM's uid and gid: non-zero, unprivileged, per VM */
	gid_t gid;
	uint32_t slot;        /* address slot: the hash's until jail_net_reserve, then the claimed one */
	int slot_claimed;     /* set by jail_net_reserve */
};

/* Validates vm_id (1..JAIL_ID_MAX characters of [a-z0-9-], not starting with
 * '-'; so no '/', no '.') and fills every derived name. Returns 0 or -EINVAL
 * with a message naming the rule broken. */
int jail_names_make(const char *vm_id, struct jail_names *out, struct err *e);

/* ---- seccomp policy (defined by the caller: the VMM's backend) ---- */
enum jail_seccomp_action {
	JAIL_SECCOMP_ALLOW,         /* allowed, any arguments */
	JAIL_SECCOMP_ALLOW_ARG_EQ,  /* allowed only when (arg[arg] & mask) == value */
	JAIL_SECCOMP_ERRNO,         /* fails with errno `value`, never runs */
};

struct jail_seccomp_rule {
	const char *name;        /* libseccomp name */
	enum jail_seccomp_action action;
	unsigned arg;            /* argument index for JAIL_SECCOMP_ALLOW_ARG_EQ */
	uint64_t mask, value;    /* for ALLOW_ARG_EQ; value = errno for ERRNO */
	const char *value_name;  /* the constant, for printing */
	const char *why;         /* the reason, one per rule */
};

/* Anything not in rules kills the process, and so does a foreign architecture
 * or the x32 ABI. Borrowed by the jail for the duration of jail_spawn. */
struct jail_seccomp_policy {
	const char *name;        /* "QEMU (TCG)": for messages and `inspect` */
	const struct jail_seccomp_rule *rules;
	size_t n_rules;
};

struct jail_seccomp_count {
	unsigned allowed;      /* distinct syscalls allowed (with or without arg checks) */
	unsigned conditional;  /* of which allowed only with an argument check */
	unsigned errno_only;   /* distinct syscalls answered with an errno, never run */
	unsigned arch_total;   /* syscalls libseccomp knows for x86_64 */
};

/* Measures a policy against libseccomp's x86_64 table. */
int jail_seccomp_count(const struct jail_seccomp_policy *p, struct jail_seccomp_count *out, struct err *e);

/* ---- spawning ---- */
struct jail_config {
	const struct jail_names *names; /* from jail_names_make (and jail_net_reserve with net) */
	char *const *argv;              /* VMM argv; argv[0] is an absolute host path that
					 * is also bound at the same path in the jail, with the
					 * shared libraries the loader resolves for it */
	const struct jail_bind *binds;  /* everything else the VMM opens: kernel, initramfs,
					 * firmware dirs, the VM dir at /run/vm (writable) */
	size_t n_binds;
	const struct jail_seccomp_policy *seccomp;  /* required; loaded last, before execve */
	int kvm_node;                   /* make a /dev/kvm node owned by the VMM's uid */
	uint64_t memory_max_bytes;      /* 0 = no memory limit */
	unsigned cpu_percent;           /* of one CPU; 0 = no CPU limit */
	uint64_t fsize_max_bytes;       /* RLIMIT_FSIZE; 0 = the default (256 MiB, for the serial log) */
	unsigned pids_max;              /* 0 = default (JAIL_PIDS_DEFAULT) */
	int stdin_fd, stdout_fd, stderr_fd;  /* dup'ed onto 0,1,2; -1 = /dev/null */
	const int *pass_fds;            /* kept open in the VMM after the tap fd, in order */
	size_t n_pass_fds;
	const struct jail_net_allow *allow;  /* destinations the guest may reach (with net) */
	size_t n_allow;
	int net;                        /* 1: tap + veth + nft table; 0: no NIC at all */
	/* With net, for a VMM that opens its tap itself by name (Firecracker):
	 * no tap fd is passed (pass_fds start at JAIL_TAP_FD); the tap
	 * (JAIL_TAP_NAME) is persistent and owned by names->uid/gid, so the
	 * VMM, which has no capabilities, can attach to it and to nothing else;
	 * and the jail gets a /dev/net/tun node only that uid may open. The tap
	 * goes with the netns at cleanup. */
	int tap_by_name;
	/* The VMM is an exec'er that drops to names->uid/gid itself
	 * (Firecracker's jailer, given --uid/--gid): the jail does everything
	 * else (namespaces, root, cgroups, rlimits, no_new_privs, the seccomp
	 * policy, which must then also allow the exec'er's own setup) but
	 * execs it as root. */
	int vmm_drops_privileges;
};

#define JAIL_PIDS_DEFAULT 256

/* Addresses of one VM's network: the guest is guest_ip/prefix with gateway gw
 * (the tap's address in the VM's netns). Known before jail_spawn, so they can
 * go on the kernel command line. */
struct jail_net_addr {
	uint32_t guest_ip;      /* host byte order */
	uint32_t gw;
	uint8_t prefix;
	char guest_ip_str[16];  /* dotted quad, for "ironclaw.ip=%s/%u" */
	char gw_str[16];        /* for "ironclaw.gw=%s" */
	uint32_t host_ip;       /* the host end of the veth pair: a listener there is
				 * "on the host side" */
	char host_ip_str[16];
};

/* What happened to the VMM, for the caller to report (the jail records nothing
 * itself). */
struct jail_exit {
	int status;             /* as from waitpid */
	int seccomp_kill;       /* 1: killed by SIGSYS, i.e. by the filter */
	long syscall;           /* the syscall that did it, -1 when unknown */
	unsigned long arch;     /* its AUDIT_ARCH_* (0 when unknown) */
	char syscall_name[32];  /* "" when unknown */
	char abi[16];           /* "x86_64", "x32", "i386", "foreign"; "" when unknown */
};

struct jail;

/* Creates names->dir, 0700, owned by names->uid, after writing the state
 * record gc finds it by. Idempotent. */
int jail_prepare_dir(const struct jail_names *names, struct err *e);

/* Claims the first free address slot from names->slot on (a taken slot means
 * the next one; O_EXCL claim files, so concurrent claims never share), stores
 * it in names->slot and fills *out. Idempotent. Released by jail_destroy,
 * jail_discard and gc. */
int jail_net_reserve(struct jail_names *names, struct jail_net_addr *out, struct err *e);

/* Starts the VMM in a new jail (see the top of this file). On success *pid is the
 * host pid of the VMM and *out the jail handle (owned; free with jail_destroy). On
 * failure nothing is left behind (the directory and slot included) and nothing was
 * exec'ed.
 * Threads: safe to call from several threads at once (libuv pool threads): it
 * changes no process-wide state (cwd, umask, signal dispositions, environment),
 * joins namespaces only on short-lived threads of its own or in the child, and
 * the cloned child only makes system calls (no malloc, no locks).
 * The VMM's parent-death SIGKILL follows the creating *thread* (PR_SET_PDEATHSIG):
 * call it from a thread that lives as long as the VM: the main thread, or a
 * libuv pool thread (those live for the whole process). */
int jail_spawn(const struct jail_config *c, pid_t *pid, struct jail **out, struct err *e);

/* The VMM's host pid, or -1 once reaped. Borrows. */
pid_t jail_pid(const struct jail *j);

/* Reaps the VMM if it exited (non-blocking). Returns 1 and fills *x (may be
 * NULL) when it has exited, 0 while it runs, or a negative errno. Use this
 * instead of waitpid() on the pid, or a seccomp kill cannot be attributed. */
int jail_poll(struct jail *j, struct jail_exit *x);

/* Kills the VMM if it still runs (SIGKILL), reaps it, fills *x (may be NULL;
 * x->status is -1 when jail_poll had already reaped it, so an exit is reported
 * once), removes the cgroups, netns, veth, nft table, address slot and the
 * per-VM directory, and frees j. Blocks (waitpid, cgroup removal): call it off
 * the event loop. Safe with j == NULL. Returns 0 or the first error. */
int jail_destroy(struct jail *j, struct jail_exit *x, struct err *e);

/* For a VM whose jail_spawn never succeeded: removes what jail_prepare_dir and
 * jail_net_reserve made (directory, state record, slot). */
int jail_discard(const struct jail_names *names, struct err *e);

/* Removes the leftovers (cgroups, netns + veth + nft table, slots, directories)
 * of VMs whose VMM is gone. Returns the number of VMs cleaned or a negative errno. */
int jail_gc(struct err *e);

/* Parses the value of `--net`: "allow=CIDR[:PORT],CIDR[:PORT],..." (also
 * "none", meaning no NIC; an address without /N is a /32). Entries go to
 * out[0..max); *n gets the count. Returns 0 or -EINVAL with a one-line
 * message naming the bad entry. Takes a length, never trusts a terminator. */
int jail_net_parse_allow(const char *spec, size_t len, struct jail_net_allow *out, size_t max, size_t *n,
			 struct err *e);

/* ---- test hooks (call before any VM exists, from one thread) ---- */
/* Roots the per-VM directories, state records and staging dir elsewhere
 * (NULL = JAIL_RUN_DIR). */
void jail_test_set_run_dir(const char *dir);
/* Makes every id's preferred address slot `slot` (-1 = the hash's), so tests
 * can make two VMs clash. */
void jail_test_force_slot(long slot);

#endif
