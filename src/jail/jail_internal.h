/* Internal interfaces between the jail's files (not for other subsystems).
 *
 * Names: every kernel object of a VM (netns, host veth, nft table and chains,
 * cgroup) is named from the VM id only, by a fixed prefix plus a 64-bit FNV-1a
 * hash, so the names fit the kernel's limits (IFNAMSIZ 16 for links) whatever
 * the id length, and gc can find them again from the id alone. A collision
 * between two live VMs is detected (the kernel object or the address slot
 * already exists) and the second VM fails to start; it never shares. */
#ifndef IRONCLAW_JAIL_INTERNAL_H
#define IRONCLAW_JAIL_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "jail/jail.h"

#define JAIL_STATE_DIR JAIL_RUN_DIR "/.state"
#define JAIL_STAGE_DIR JAIL_RUN_DIR "/.root"
#define JAIL_CGROUP_ROOT "/sys/fs/cgroup"
#define JAIL_CGROUP_NAME "ironclaw"
#define JAIL_UID_BASE 1500000000u   /* + 16 bits of the id hash: never a real user */

struct jail_names {
	char netns[32];     /* "ic-<16 hex>", also /run/netns/<netns> */
	char veth_host[16]; /* "icv<12 hex>": 15 chars, the IFNAMSIZ limit */
	char table[32];     /* "ironclaw_<16 hex>" (nft, family inet) */
	char chain_fwd[32]; /* "fwd_<16 hex>" */
	char chain_in[32];  /* "in_<16 hex>" */
	char chain_out[32]; /* "out_<16 hex>" */
	char chain_nat[32]; /* "nat_<16 hex>" */
	uint32_t slot;      /* address slot (see jail_net_plan) */
};

/* Inside the VM's netns the interface names are fixed: there is nothing else there. */
#define JAIL_NS_VETH "up0"
#define JAIL_NS_TAP "tap0"

uint64_t jail_hash_id(const char *vm_id);
void jail_names_for(const char *vm_id, struct jail_names *n);

/* ---- cgroups (cgroup.c) ---- */
struct jail_cgroup_limits {
	uint64_t memory_max;
	unsigned cpu_percent;
	unsigned pids_max;
};
/* Creates the VM's cgroup(s) with limits; on v1 one per controller. */
int jail_cgroup_create(const char *vm_id, const struct jail_cgroup_limits *l, struct err *e);
int jail_cgroup_attach(const char *vm_id, pid_t pid, struct err *e);
/* Removes them (ENOENT is success). */
int jail_cgroup_remove(const char *vm_id, struct err *e);
/* 1 when any cgroup dir of the VM exists. */
int jail_cgroup_exists(const char *vm_id);
/* Path of a controller file for tests and inspection ("pids", "pids.max"). */
int jail_cgroup_file(const char *vm_id, const char *controller, const char *file, char *out, size_t len);

/* ---- network (net.c, nft.c) ---- */
/* Builds the netns, veth, tap and the verified nft table. Returns the tap fd
 * (owned by the caller) in *tap_fd. On failure everything made is removed. */
int jail_net_create(const char *vm_id, const struct jail_net_allow *allow, size_t n_allow,
		    int *tap_fd, struct err *e);
/* Removes netns + veth (+ the table with the netns). Idempotent. */
int jail_net_remove(const char *vm_id, struct err *e);
/* Runs fn(arg) on a thread that has joined the VM's netns; returns fn's result. */
int jail_net_in_ns(const char *vm_id, int (*fn)(void *arg), void *arg, struct err *e);
/* Installs and verifies the table in the current thread's netns. */
int jail_nft_apply(const char *vm_id, const struct jail_net_allow *allow, size_t n_allow, struct err *e);
/* Reads back the live ruleset of the current netns and checks hooks and policies. */
int jail_nft_verify(const char *vm_id, struct err *e);
/* Test hook: an extra rule text appended to the forward chain (NULL = none). The
 * tests use it to make the transaction fail and check that no VM starts. */
void jail_nft_test_inject(const char *rule_text);

/* Creates JAIL_RUN_DIR, JAIL_STATE_DIR and JAIL_STAGE_DIR (root-owned). */
int jail_prepare_base(struct err *e);

/* Tears down everything named after vm_id (net when with_net, slot, cgroups,
 * directory, state record). Used by destroy, failed spawns and gc (spawn.c). */
int jail_cleanup_id(const char *vm_id, int with_net, struct err *e);

/* ---- helpers (util.c) ---- */
/* Runs argv (argv[0] an absolute path) with an empty environment, captures up to
 * out_len-1 bytes of stdout+stderr, returns the exit code or a negative errno. */
int jail_run(char *const argv[], char *out, size_t out_len);
/* Absolute path of the `ip` tool, or NULL. */
const char *jail_ip_path(void);
/* Start time of pid (field 22 of /proc/<pid>/stat), 0 when gone. */
unsigned long long jail_proc_start(pid_t pid);

/* ---- state records (state.c): JAIL_STATE_DIR/<id> = "owner start vmm start" ---- */
int jail_state_write(const char *vm_id, pid_t vmm, struct err *e);
int jail_state_remove(const char *vm_id);
/* 1 when the owner or the VMM recorded for vm_id still runs. */
int jail_state_alive(const char *vm_id);
/* Address slot claim files (JAIL_STATE_DIR/slot-<n>), O_EXCL. */
int jail_slot_claim(const char *vm_id, uint32_t slot, struct err *e);
void jail_slot_release(const char *vm_id, uint32_t slot);

#endif
