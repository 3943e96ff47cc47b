/* The jailed child between clone() and execve().
 *
 * Runs in new mount/PID/IPC/UTS (and network) namespaces, in a copy of a
 * possibly multi-threaded parent, so it only makes system calls: everything it
 * needs (mount list, paths, BPF program, fds) was prepared by the parent. Order:
 * die-with-parent, wait for the parent's go (cgroups attached), join the VM's
 * netns, build and pivot into the minimal root, hostname, rlimits, fds, drop
 * to the jail uid/gid, no_new_privs, seccomp last, execve. Any failure writes
 * {step, errno, index} to the error pipe and exits 127: the VMM never runs
 * half-jailed. */
#include "jail/child.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/jail_internal.h"

#define CHILD_HIGH_FD 900   /* staging area for the fd shuffle */

const char *jail_child_step_name(int step)
{
	static const char *const names[] = {
		[JC_STEP_SYNC] = "waiting for the parent",
		[JC_STEP_PDEATHSIG] = "setting the parent-death signal",
		[JC_STEP_SETNS] = "joining the VM's network namespace",
		[JC_STEP_MOUNT_PRIVATE] = "making mounts private",
		[JC_STEP_MOUNT_TMPFS] = "mounting the root tmpfs",
		[JC_STEP_MKPATH] = "creating a mount point in the jail root",
		[JC_STEP_KVM_NODE] = "creating the VMM's /dev/kvm (or /dev/net/tun) node",
		[JC_STEP_BIND] = "bind-mounting into the jail root",
		[JC_STEP_REMOUNT_RO] = "making a bind mount read-only",
		[JC_STEP_PIVOT] = "pivot_root into the jail root",
		[JC_STEP_UMOUNT_OLD] = "unmounting the old root",
		[JC_STEP_HOSTNAME] = "setting the hostname",
		[JC_STEP_RLIMIT] = "setting rlimits",
		[JC_STEP_FDS] = "arranging file descriptors",
		[JC_STEP_SETGROUPS] = "dropping supplementary groups",
		[JC_STEP_SETGID] = "dropping to the jail gid",
		[JC_STEP_SETUID] = "dropping to the jail uid",
		[JC_STEP_NNP] = "setting no_new_privs",
		[JC_STEP_SECCOMP] = "loading the seccomp filter",
		[JC_STEP_EXEC] = "executing the VMM",
		[JC_STEP_SETSID] = "starting a session of its own",
	};
	if (step < 0 || step >= (int)(sizeof(names) / sizeof(names[0])) || !names[step])
		return "unknown step";
	return names[step];
}

static __attribute__((noreturn)) void child_fail(const struct jail_child *c, int step, int index)
{
	struct jail_child_err ce = { .step = step, .err = errno, .index = index };
	ssize_t w = write(c->err_fd, &ce, sizeof(ce));
	(void)w;
	_exit(127);
}

/* mkdir -p of path (absolute, inside the staging root) into a fixed buffer;
 * the last component is a directory, or an empty file when !is_dir. */
static int child_mkpath(const char *root, const char *path, int is_dir)
{
	char buf[ROOTFS_PATH_MAX * 2];
	size_t rl = strlen(root), pl = strlen(path);
	if (rl + pl + 1 > sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, root, rl);
	memcpy(buf + rl, path, pl + 1);
	for (char *p = buf + rl + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (is_dir)
		return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
	int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
	if (fd < 0 && errno != EEXIST)
		return -1;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* /dev in the jail becomes a small tmpfs that allows device nodes (the root
 * tmpfs is nodev), holding a /dev/kvm (and, for a VMM that opens its tap by
 * name, a /dev/net/tun) of the host's device number that only the VMM's uid
 * may open. The /dev/null and /dev/urandom binds land beside them. */
static void child_make_kvm_node(const struct jail_child *c)
{
	if (mkdir(c->kvm_dev, 0755) && errno != EEXIST)
		child_fail(c, JC_STEP_KVM_NODE, -1);
	if (mount("ironclaw-dev", c->kvm_dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"))
		child_fail(c, JC_STEP_KVM_NODE, -1);
	if (c->plan->kvm && (mknod(c->kvm_node, S_IFCHR | 0600, c->plan->kvm_rdev) || chown(c->kvm_node, c->uid, c->gid)))
		child_fail(c, JC_STEP_KVM_NODE, -1);
	if (c->plan->tun && ((mkdir(c->tun_dir, 0755) && errno != EEXIST) ||
			     mknod(c->tun_node, S_IFCHR | 0600, c->plan->tun_rdev) || chown(c->tun_node, c->uid, c->gid)))
		child_fail(c, JC_STEP_KVM_NODE, -1);
}

static void child_build_root(const struct jail_child *c)
{
	const char *stage = c->stage;
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		child_fail(c, JC_STEP_MOUNT_PRIVATE, -1);
	if (mount("ironclaw-root", stage, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0755"))
		child_fail(c, JC_STEP_MOUNT_TMPFS, -1);
	if (c->plan->kvm || c->plan->tun)
		child_make_kvm_node(c);
	for (size_t i = 0; i < c->plan->n; i++) {
		const struct rootfs_mount *m = &c->plan->m[i];
		char dst[ROOTFS_PATH_MAX * 2];
		if (child_mkpath(stage, m->dst, m->is_dir))
			child_fail(c, JC_STEP_MKPATH, (int)i);
		/* Plain copies: no stdio between clone and exec. Both parts are
		 * bounded (stage and dst are each < ROOTFS_PATH_MAX). */
		size_t sl = strlen(stage), dl = strlen(m->dst);
		memcpy(dst, stage, sl);
		memcpy(dst + sl, m->dst, dl + 1);
		if (mount(m->src, dst, NULL, MS_BIND | MS_REC, NULL))
			child_fail(c, JC_STEP_BIND, (int)i);
		/* A bind mount takes its flags only on remount. Device nodes keep dev
		 * (they are nodes); everything else is nodev, nosuid. */
		unsigned long fl = MS_BIND | MS_REMOUNT | MS_NOSUID;
		if (!m->writable)
			fl |= MS_RDONLY;
		if (strncmp(m->dst, "/dev/", 5))
			fl |= MS_NODEV;
		if (mount(NULL, dst, NULL, fl, NULL))
			child_fail(c, JC_STEP_REMOUNT_RO, (int)i);
	}
	/* The loader and QEMU look for libraries under /lib, /usr/lib; the
	 * binds above already sit at the exact paths they open. */
	if (chdir(stage))
		child_fail(c, JC_STEP_PIVOT, -1);
	/* pivot_root(".", "."): the old root ends up stacked under the new one
	 * and is detached right after, so no path leads back to the host. */
	if (syscall(SYS_pivot_root, ".", "."))
		child_fail(c, JC_STEP_PIVOT, -1);
	if (umount2(".", MNT_DETACH))
		child_fail(c, JC_STEP_UMOUNT_OLD, -1);
	if (chdir("/"))
		child_fail(c, JC_STEP_PIVOT, -1);
	/* The root tmpfs itself is read-only: the VMM writes only to writable binds. */
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		child_fail(c, JC_STEP_REMOUNT_RO, -1);
}

static void child_set_rlimits(const struct jail_child *c)
{
	struct rlimit nofile = { c->nofile, c->nofile };
	struct rlimit fsize = { c->fsize, c->fsize };
	struct rlimit core = { 0, 0 };
	if (setrlimit(RLIMIT_NOFILE, &nofile) || setrlimit(RLIMIT_FSIZE, &fsize) || setrlimit(RLIMIT_CORE, &core))
		child_fail(c, JC_STEP_RLIMIT, -1);
}

/* 0,1,2 from the caller's fds, then the tap fd, then pass_fds; everything else
 * closed. Sources are first copied above CHILD_HIGH_FD so no dup2 clobbers a
 * source that is still to be moved. */
static void child_arrange_fds(struct jail_child *c)
{
	int high[3 + 1 + JAIL_PASS_FDS_MAX];
	int n = 0;
	for (int i = 0; i < c->n_fds; i++) {
		high[n] = fcntl(c->fds[i], F_DUPFD_CLOEXEC, CHILD_HIGH_FD);
		if (high[n] < 0)
			child_fail(c, JC_STEP_FDS, i);
		n++;
	}
	int errfd = fcntl(c->err_fd, F_DUPFD_CLOEXEC, CHILD_HIGH_FD + 50);
	if (errfd < 0)
		child_fail(c, JC_STEP_FDS, -1);
	c->err_fd = errfd;
	for (int i = 0; i < n; i++)
		if (dup2(high[i], i) < 0)
			child_fail(c, JC_STEP_FDS, i);
	if (syscall(SYS_close_range, (unsigned)n, (unsigned)errfd - 1, 0) ||
	    syscall(SYS_close_range, (unsigned)errfd + 1, ~0u, 0))
		child_fail(c, JC_STEP_FDS, -1);
}

void jail_child_run(struct jail_child *c)
{
	char go;
	/* First: if ironclaw dies from here on, so does this process (SIGKILL
	 * included: the kernel delivers PDEATHSIG). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		child_fail(c, JC_STEP_PDEATHSIG, -1);
	/* The parent closes the pipe without writing when it gives up or died
	 * before we set PDEATHSIG. */
	if (read(c->sync_fd, &go, 1) != 1)
		child_fail(c, JC_STEP_SYNC, -1);
	close(c->sync_fd);
	/* A session of its own: a terminal's Ctrl-C goes to ironclaw's process
	 * group, and ironclaw, not the VMM, decides what it means. */
	if (setsid() < 0)
		child_fail(c, JC_STEP_SETSID, -1);
	if (c->netns_fd >= 0 && setns(c->netns_fd, CLONE_NEWNET))
		child_fail(c, JC_STEP_SETNS, -1);
	child_build_root(c);
	if (sethostname("ironclaw-vm", 11))
		child_fail(c, JC_STEP_HOSTNAME, -1);
	child_arrange_fds(c);
	child_set_rlimits(c);
	/* Raw syscalls, not glibc's wrappers: those broadcast the change to every
	 * thread glibc believes exists (the parent's, copied into this child's
	 * memory) under a lock another thread may have held at clone time. This
	 * process has one thread, so the raw call is the whole change. */
	if (!c->keep_root && syscall(SYS_setgroups, 0, NULL))
		child_fail(c, JC_STEP_SETGROUPS, -1);
	if (!c->keep_root && syscall(SYS_setresgid, (unsigned long)c->gid, (unsigned long)c->gid, (unsigned long)c->gid))
		child_fail(c, JC_STEP_SETGID, -1);
	/* From root to a non-zero uid: the kernel clears every capability set.
	 * (keep_root: the exec'er, Firecracker's jailer, does it before it
	 * execs the VMM.) */
	if (!c->keep_root && syscall(SYS_setresuid, (unsigned long)c->uid, (unsigned long)c->uid, (unsigned long)c->uid))
		child_fail(c, JC_STEP_SETUID, -1);
	/* Changing credentials cleared the parent-death signal: arm it again. If
	 * ironclaw died in the gap, the read end of the error pipe is closed
	 * (POLLERR on our end), so stop here rather than run unowned. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		child_fail(c, JC_STEP_PDEATHSIG, -1);
	struct pollfd parent_gone = { .fd = c->err_fd, .events = 0 };
	if (poll(&parent_gone, 1, 0) > 0 && (parent_gone.revents & POLLERR))
		_exit(1);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		child_fail(c, JC_STEP_NNP, -1);
	struct sock_fprog prog = { .len = c->prog->len, .filter = (struct sock_filter *)c->prog->filter };
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		child_fail(c, JC_STEP_SECCOMP, -1);
	char *const envp[] = { NULL };
	execve(c->argv[0], c->argv, envp);
	child_fail(c, JC_STEP_EXEC, -1);
}
