/* The jailed child's inputs (prepared by the parent) and its error report.
 * The child is a raw clone() of a possibly multi-threaded process: it may
 * only make system calls (no malloc, no stdio, no glibc function that takes
 * a lock or talks to other threads, such as the set*id wrappers). */
#ifndef IRONCLAW_JAIL_CHILD_H
#define IRONCLAW_JAIL_CHILD_H

#include <sys/types.h>

#include "jail/jail.h"
#include "jail/rootfs.h"
#include "jail/seccomp.h"

enum jail_child_step {
	JC_STEP_SYNC, JC_STEP_PDEATHSIG, JC_STEP_SETNS, JC_STEP_MOUNT_PRIVATE, JC_STEP_MOUNT_TMPFS,
	JC_STEP_MKPATH, JC_STEP_KVM_NODE, JC_STEP_BIND, JC_STEP_REMOUNT_RO, JC_STEP_PIVOT, JC_STEP_UMOUNT_OLD,
	JC_STEP_HOSTNAME, JC_STEP_RLIMIT, JC_STEP_FDS, JC_STEP_SETGROUPS, JC_STEP_SETGID,
	JC_STEP_SETUID, JC_STEP_NNP, JC_STEP_SECCOMP, JC_STEP_EXEC, JC_STEP_SETSID,
};

/* What the child writes to the error pipe before exiting 127. */
struct jail_child_err {
	int step;    /* enum jail_child_step */
	int err;     /* errno */
	int index;   /* mount index or fd index, -1 if none */
};

struct jail_child {
	char *const *argv;                   /* borrowed */
	const struct rootfs_plan *plan;      /* borrowed */
	const struct secpol_program *prog;   /* borrowed */
	int fds[3 + 1 + JAIL_PASS_FDS_MAX];  /* in target order: 0,1,2,(tap),pass... */
	int n_fds;
	int netns_fd;                        /* -1: keep the new empty netns from clone */
	/* Paths computed by the parent: the child never formats a string. */
	char stage[ROOTFS_PATH_MAX];         /* the staging mount point of the root */
	char kvm_dev[ROOTFS_PATH_MAX + 8];   /* <stage>/dev */
	char kvm_node[ROOTFS_PATH_MAX + 16]; /* <stage>/dev/kvm */
	char tun_dir[ROOTFS_PATH_MAX + 16];  /* <stage>/dev/net */
	char tun_node[ROOTFS_PATH_MAX + 16]; /* <stage>/dev/net/tun */
	int sync_fd, err_fd;
	uid_t uid;
	gid_t gid;
	int keep_root;                       /* jail_config.vmm_drops_privileges */
	unsigned long nofile, fsize;
};

/* Never returns. */
void jail_child_run(struct jail_child *c) __attribute__((noreturn));
const char *jail_child_step_name(int step);

#endif
