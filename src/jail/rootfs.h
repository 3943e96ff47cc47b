/* The plan of a jail's root filesystem (see rootfs.c): a fixed-size list of
 * bind mounts computed in the parent, applied by the child without allocating. */
#ifndef IRONCLAW_JAIL_ROOTFS_H
#define IRONCLAW_JAIL_ROOTFS_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"
#include "jail/jail.h"

#define ROOTFS_MAX_MOUNTS 128
#define ROOTFS_PATH_MAX 256

struct rootfs_mount {
	char src[ROOTFS_PATH_MAX];  /* host path */
	char dst[ROOTFS_PATH_MAX];  /* path inside the jail */
	int is_dir;
	int writable;
};

struct rootfs_plan {
	struct rootfs_mount m[ROOTFS_MAX_MOUNTS];
	size_t n;
	/* With kvm_node the child makes its own /dev/kvm node, owned by the VMM's uid:
	 * a bind of the host's node would keep its root-only (or kvm-group)
	 * permissions, which the dropped uid cannot open. */
	int kvm;
	dev_t kvm_rdev;
	/* Likewise a /dev/net/tun node for a VMM that opens its tap by name
	 * (jail_config.tap_by_name; set by jail_spawn). */
	int tun;
	dev_t tun_rdev;
};

/* Test hook: how many loader queries (forks) this process made. */
unsigned rootfs_test_queries(void);

int rootfs_plan_build(struct rootfs_plan *p, const char *vmm, const struct jail_bind *binds, size_t n_binds,
		      int kvm_node, struct err *e);

#endif
