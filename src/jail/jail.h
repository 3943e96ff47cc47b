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
 * Network: by default the VMM sits in its own empty network namespace (no NIC
 * at all). With `net`, the jail creates a named netns holding a tap device (fd
 * handed to the VMM as fd 3) and one end of a veth pair whose other end is on
 * the host; a per-VM nftables table in that netns (policy drop, only the
 * allowlist plus established replies) sits on the forward and input hooks, and
 * it is read back and verified before the VMM starts. */
#ifndef IRONCLAW_JAIL_JAIL_H
#define IRONCLAW_JAIL_JAIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

/* VM ids: 1..JAIL_ID_MAX characters of [a-z0-9-], not starting with '-'. */
#define JAIL_ID_MAX 48
/* Root of the per-VM directories. */
#define JAIL_RUN_DIR "/run/ironclaw"
/* With net = 1 the tap fd is always this fd number in the VMM, and pass_fds
 * follow it (4, 5, ...); without net pass_fds start at this number. */
#define JAIL_TAP_FD 3
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

struct jail_config {
	const char *vm_id;              /* validated by jail_validate_id() */
	char *const *argv;              /* VMM argv; argv[0] is an absolute host path that
					 * is also bound at the same path in the jail, with the
					 * shared libraries it needs (and for QEMU its firmware
					 * directories /usr/share/qemu, /usr/share/seabios) */
	const struct jail_bind *binds;  /* kernel, initramfs, the VM dir at /run/vm (writable) */
	size_t n_binds;
	int use_kvm;                    /* bind /dev/kvm and allow the KVM ioctls */
	uint64_t memory_max_bytes;      /* 0 = no memory limit */
	unsigned cpu_percent;           /* of one CPU; 0 = no CPU limit */
	unsigned pids_max;              /* 0 = default (JAIL_PIDS_DEFAULT) */
	int stdin_fd, stdout_fd, stderr_fd;  /* dup'ed onto 0,1,2; -1 = /dev/null */
	const int *pass_fds;            /* kept open in the VMM after the tap fd, in order */
	size_t n_pass_fds;
	const struct jail_net_allow *allow;  /* destinations the guest may reach (with net) */
	size_t n_allow;
	int net;                        /* 1: tap + veth + nft table; 0: no NIC at all */
};

#define JAIL_PIDS_DEFAULT 256

/* Addresses of one VM's network, derived from the VM id only (so they can be put
 * on the kernel command line before jail_spawn): the guest is guest_ip/prefix
 * with gateway gw (the tap's address in the VM's netns). */
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

struct jail;

/* Returns 0 or -EINVAL with a message naming the rule broken. */
int jail_validate_id(const char *vm_id, struct err *e);

/* Creates JAIL_RUN_DIR/<id>, 0700, owned by the jail uid of that id, and writes its
 * path to out_path. Idempotent. */
int jail_prepare_dir(const char *vm_id, char *out_path, size_t len, struct err *e);

/* Fills the addresses of vm_id's network (pure: no system change). */
int jail_net_plan(const char *vm_id, struct jail_net_addr *out, struct err *e);

/* Starts the VMM in a new jail (see the top of this file). On success *pid is the
 * host pid of the VMM and *out the jail handle (owned; free with jail_destroy). On
 * failure nothing is left behind and nothing was exec'ed.
 * Call it from a thread that lives as long as the VM (e.g. the main thread): the
 * kernel sends the VMM its parent-death SIGKILL when the creating *thread* exits. */
int jail_spawn(const struct jail_config *c, pid_t *pid, struct jail **out, struct err *e);

/* The VMM's host pid, or -1 once reaped. Borrows. */
pid_t jail_pid(const struct jail *j);

/* Reaps the VMM if it exited (non-blocking). Returns 1 and fills *status (as from
 * waitpid) when it has exited, 0 while it runs, or a negative errno. A SIGSYS
 * death is recorded in the audit ring/log here. Use this instead of waitpid()
 * on the pid, or the violation cannot be attributed. */
int jail_poll(struct jail *j, int *status);

/* Kills the VMM if it still runs (SIGKILL), reaps it, records a SIGSYS death in
 * the audit ring, removes the cgroups, netns, veth, nft table and the per-VM
 * directory, and frees j. Safe with j == NULL. Returns 0 or the first error. */
int jail_destroy(struct jail *j, struct err *e);

/* Removes the leftovers (cgroups, netns + veth + nft table, directories) of VMs
 * whose VMM is gone. Called at startup by `ironclaw exec` and by `ironclaw gc`.
 * Returns the number of VMs cleaned or a negative errno. */
int jail_gc(struct err *e);

/* Parses the value of `--net`: "allow=CIDR[:PORT],CIDR[:PORT],..." (also
 * "none", meaning no NIC; an address without /N is a /32). Entries go to
 * out[0..max); *n gets the count. Returns 0 or -EINVAL with a one-line
 * message naming the bad entry. Takes a length, never trusts a terminator. */
int jail_net_parse_allow(const char *spec, size_t len, struct jail_net_allow *out, size_t max, size_t *n,
			 struct err *e);

/* Uid/gid the VMM of vm_id runs as (non-zero, unprivileged, per VM). */
uid_t jail_uid_for(const char *vm_id);

#endif
