/* Internal interfaces between the jail's files (not for other subsystems).
 *
 * Everything here takes the VM's struct jail_names (jail.h), computed once by
 * jail_names_make: no file turns an id back into names or validates it again.
 * Two live VMs whose hashes clash on a kernel object name are detected (the
 * object already exists) and the second fails to start; it never shares. An
 * address slot clash is not a failure: the next free slot is taken. */
#ifndef IRONCLAW_JAIL_INTERNAL_H
#define IRONCLAW_JAIL_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "jail/jail.h"

/* Defaults of the paths below (tests may move the run dir). */
#define JAIL_STATE_DIR JAIL_RUN_DIR "/.state"
#define JAIL_STAGE_DIR JAIL_RUN_DIR "/.root"
#define JAIL_CGROUP_ROOT "/sys/fs/cgroup"
#define JAIL_CGROUP_NAME "ironclaw"
#define JAIL_NETNS_DIR "/run/netns"
#define JAIL_UID_BASE 1500000000u   /* + 16 bits of the id hash: never a real user */
/* 2^19 slots of 8 addresses fill 100.64.0.0/10 (shared address space, RFC
 * 6598: unlikely to clash with the host's own networks). */
#define JAIL_SLOTS (1u << 19)
/* A reserve probes at most this many slots past the preferred one: bounded
 * work, and far more than live VMs on one host. */
#define JAIL_SLOT_PROBES 4096u

/* Inside the VM's netns the interface names are fixed: there is nothing else there. */
#define JAIL_NS_VETH "up0"
#define JAIL_NS_TAP JAIL_TAP_NAME

/* The run dir, state dir and staging dir in effect (see jail_test_set_run_dir). */
const char *jail_run_dir(void);
const char *jail_state_dir(void);
const char *jail_stage_dir(void);

int jail_validate_id(const char *vm_id, struct err *e);
uint64_t jail_hash_id(const char *vm_id);
/* Addresses of a slot: .0/30 host veth (.1) <-> netns veth (.2); .4/30 tap (.5,
 * the guest's gateway) <-> guest (.6). */
void jail_slot_addr(uint32_t slot, struct jail_net_addr *out);

/* ---- cgroups (cgroup.c) ---- */
struct jail_cgroup_limits {
	uint64_t memory_max;
	unsigned cpu_percent;
	unsigned pids_max;
};
/* Creates the VM's cgroup(s) with limits; on v1 one per controller. */
int jail_cgroup_create(const char *cgroup, const struct jail_cgroup_limits *l, struct err *e);
int jail_cgroup_attach(const char *cgroup, pid_t pid, struct err *e);
/* Removes them (ENOENT is success). */
int jail_cgroup_remove(const char *cgroup, struct err *e);
/* 1 when any cgroup dir of the VM exists. */
int jail_cgroup_exists(const char *cgroup);
/* Path of a controller file for tests and inspection ("pids", "pids.max"). */
int jail_cgroup_file(const char *cgroup, const char *controller, const char *file, char *out, size_t len);

/* ---- netlink (nl.c): rtnetlink requests over libmnl, each acked ---- */
struct jail_nl;
/* Opens a NETLINK_ROUTE socket in the calling thread's netns. */
int jail_nl_open(struct jail_nl **out, struct err *e);
void jail_nl_close(struct jail_nl *nl);
/* ifindex of name, or a negative errno (-ENODEV when absent). */
int jail_nl_link_index(struct jail_nl *nl, const char *name);
int jail_nl_link_up(struct jail_nl *nl, int ifindex, struct err *e);
/* A veth pair: `name` here, `peer` in the netns of peer_ns_fd. */
int jail_nl_veth_add(struct jail_nl *nl, const char *name, const char *peer, int peer_ns_fd, struct err *e);
/* Deletes link `name`; absent is success. */
int jail_nl_link_del(struct jail_nl *nl, const char *name, struct err *e);
int jail_nl_addr_add(struct jail_nl *nl, int ifindex, uint32_t ip, unsigned prefix, struct err *e);
int jail_nl_route_default(struct jail_nl *nl, uint32_t gw, struct err *e);

/* ---- network (net.c, nft.c) ---- */
/* Who a persistent tap belongs to (jail_config.tap_by_name). */
struct jail_tap_owner {
	uid_t uid;
	gid_t gid;
};
/* Builds the netns, veth, tap and the verified nft table for the slot in
 * names (claimed by jail_net_reserve). owner NULL: the tap lives as long as
 * an fd to it, returned (owned by the caller) in *tap_fd. owner set: the tap
 * is persistent and owned by owner (TUNSETOWNER, TUNSETGROUP, TUNSETPERSIST),
 * our fd is closed and *tap_fd is -1. On failure everything made is removed. */
int jail_net_create(const struct jail_names *n, const struct jail_net_allow *allow, size_t n_allow,
		    const struct jail_tap_owner *owner, int *tap_fd, struct err *e);
/* Removes veth + netns (+ the table with the netns). Idempotent. */
int jail_net_remove(const struct jail_names *n, struct err *e);
/* Removes a named netns of ours: unmount (MNT_DETACH) and unlink. */
int jail_netns_delete(const char *netns, struct err *e);
/* Runs fn(arg) on a thread that has joined the VM's netns; returns fn's result. */
int jail_net_in_ns(const struct jail_names *n, int (*fn)(void *arg), void *arg, struct err *e);
/* Installs and verifies the table in the current thread's netns. */
int jail_nft_apply(const struct jail_names *n, const struct jail_net_allow *allow, size_t n_allow, struct err *e);
/* Reads back the live ruleset of the current netns and checks hooks and policies. */
int jail_nft_verify(const struct jail_names *n, struct err *e);
/* Test hook: an extra rule text appended to the forward chain (NULL = none). The
 * tests use it to make the transaction fail and check that no VM starts. */
void jail_nft_test_inject(const char *rule_text);

/* Creates the run dir, state dir and stage dir (root-owned). */
int jail_prepare_base(struct err *e);

/* Tears down everything named in n (net when with_net, slot, cgroups,
 * directory, state record). Used by destroy, failed spawns and gc (spawn.c). */
int jail_cleanup(const struct jail_names *n, int with_net, struct err *e);

/* ---- helpers (util.c) ---- */
/* Runs argv (argv[0] an absolute path) with an empty environment, captures up to
 * out_len-1 bytes of stdout+stderr, returns the exit code or a negative errno.
 * Only for the once-per-binary loader query (rootfs.c). */
int jail_run(char *const argv[], char *out, size_t out_len);
/* Start time of pid (field 22 of /proc/<pid>/stat), 0 when gone. */
unsigned long long jail_proc_start(pid_t pid);

/* ---- state records (state.c): <state dir>/<id> = "owner start vmm start" ---- */
int jail_state_write(const char *vm_id, pid_t vmm, struct err *e);
int jail_state_remove(const char *vm_id);
/* 1 when the owner or the VMM recorded for vm_id still runs. */
int jail_state_alive(const char *vm_id);
/* The VMM pid recorded for vm_id while it runs, else 0. */
pid_t jail_state_vmm(const char *vm_id);
/* Address slot claim files (<state dir>/slot-<n> holding the id), O_EXCL.
 * 0 when claimed (or already ours), -EADDRINUSE when another VM holds it. */
int jail_slot_claim(const char *vm_id, uint32_t slot, struct err *e);
/* Removes the claim when it is vm_id's. */
void jail_slot_release(const char *vm_id, uint32_t slot);
/* Removes every claim whose VM is gone (gc); returns how many. */
int jail_slot_gc(void);

#endif
