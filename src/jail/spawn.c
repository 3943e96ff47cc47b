/* Starting, watching and tearing down one jailed VMM.
 *
 * jail_spawn is three steps over one context: prepare (everything made in the
 * parent), clone (the child into new namespaces), handshake (cgroups attached,
 * child released, its error pipe read). One release path undoes whatever a
 * failed step left. The jail records nothing itself: what happened to the VMM
 * goes back to the caller as a struct jail_exit. */
#include "jail/jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/io.h"
#include "jail/child.h"
#include "jail/jail_internal.h"
#include "jail/kmsg.h"
#include "jail/rootfs.h"
#include "jail/seccomp.h"

#define JAIL_NOFILE 1024             /* QEMU needs a few dozen; TCG needs no more */
#define JAIL_FSIZE (256ull << 20)    /* the serial log is the only file it grows */

struct jail {
	struct jail_names names;  /* a copy: the caller's may go away */
	pid_t pid;          /* -1 once reaped */
	int net;
	int kmsg_fd;        /* positioned at spawn time, to find the audit record of a kill */
	struct jail_exit exit;
};

static int jail_check_config(const struct jail_config *c, struct err *e)
{
	if (!c->names || !c->names->id[0])
		return err_set(e, -EINVAL, "jail: no VM names (hint: jail_names_make)");
	if (!c->argv || !c->argv[0])
		return err_set(e, -EINVAL, "jail: empty VMM argv");
	if (!c->seccomp)
		return err_set(e, -EINVAL, "jail: no seccomp policy given (the VMM never runs unfiltered)");
	size_t argc = 0;
	while (c->argv[argc])
		if (++argc > JAIL_ARGV_MAX)
			return err_set(e, -E2BIG, "jail: VMM argv has more than %d entries", JAIL_ARGV_MAX);
	if (c->n_pass_fds > JAIL_PASS_FDS_MAX)
		return err_set(e, -E2BIG, "jail: %zu fds to pass, at most %d", c->n_pass_fds, JAIL_PASS_FDS_MAX);
	if (c->n_allow > JAIL_ALLOW_MAX)
		return err_set(e, -E2BIG, "jail: %zu allow entries, at most %d", c->n_allow, JAIL_ALLOW_MAX);
	if (c->n_allow && !c->net)
		return err_set(e, -EINVAL, "jail: an allowlist needs net = 1");
	if (c->tap_by_name && !c->net)
		return err_set(e, -EINVAL, "jail: tap_by_name needs net = 1");
	if (c->net && !c->names->slot_claimed)
		return err_set(e, -EINVAL, "jail: net = 1 needs a reserved address slot (hint: jail_net_reserve)");
	for (size_t i = 0; i < c->n_allow; i++)
		if (c->allow[i].prefix > 32)
			return err_set(e, -EINVAL, "jail: allow entry %zu has prefix /%u (max 32)", i, c->allow[i].prefix);
	return 0;
}

pid_t jail_pid(const struct jail *j)
{
	return j ? j->pid : -1;
}

/* What the wait status says, and for a SIGSYS death the syscall, from the
 * kernel's audit record (type=1326) for that pid. */
static void jail_read_exit(struct jail *j, int status)
{
	struct jail_exit *x = &j->exit;
	memset(x, 0, sizeof(*x));
	x->status = status;
	x->syscall = -1;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		return;
	x->seccomp_kill = 1;
	if (jail_kmsg_find_seccomp(j->kmsg_fd, j->pid, &x->syscall, &x->arch) == 0) {
		secpol_syscall_name(x->arch, x->syscall, x->syscall_name, sizeof(x->syscall_name));
		snprintf(x->abi, sizeof(x->abi), "%s", secpol_arch_name(x->arch, x->syscall));
	}
}

int jail_poll(struct jail *j, struct jail_exit *x)
{
	if (!j)
		return -EINVAL;
	if (j->pid < 0) {
		if (x)
			*x = j->exit;
		return 1;
	}
	int status = 0;
	pid_t r = waitpid(j->pid, &status, WNOHANG);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	jail_read_exit(j, status);
	j->pid = -1;
	if (x)
		*x = j->exit;
	return 1;
}

/* Removes <dir> and what the VMM put in it, without following links and with
 * a bounded depth (the VMM makes sockets and a log there; Firecracker's
 * jailer a chroot: <dir>/jailer/firecracker/<id>/root/run/vm/...). */
static int jail_rm_tree(int parent, const char *name, int depth)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > 8)
		return -errno;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			jail_rm_tree(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR) && errno != ENOENT ? -errno : 0;
}

int jail_cleanup(const struct jail_names *n, int with_net, struct err *e)
{
	int first = 0, rc;
	if (with_net && (rc = jail_net_remove(n, e)) && !first)
		first = rc;
	jail_slot_release(n->id, n->slot);
	if ((rc = jail_cgroup_remove(n->cgroup, first ? NULL : e)) && !first)
		first = rc;
	int base = open(jail_run_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base >= 0) {
		rc = jail_rm_tree(base, n->id, 0);
		close(base);
		if (rc && !first)
			first = err_set(e, rc, "removing %s: %s", n->dir, strerror(-rc));
	}
	jail_state_remove(n->id);
	return first;
}

int jail_discard(const struct jail_names *n, struct err *e)
{
	if (!n || !n->id[0])
		return 0;
	return jail_cleanup(n, 0, e);
}

static void jail_kill_reap(pid_t pid, int *status)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

int jail_destroy(struct jail *j, struct jail_exit *x, struct err *e)
{
	if (x) {
		memset(x, 0, sizeof(*x));
		x->status = -1;   /* already reported by jail_poll, or nothing ran */
		x->syscall = -1;
	}
	if (!j)
		return 0;
	if (j->pid > 0) {
		int status = 0;
		jail_kill_reap(j->pid, &status);
		jail_read_exit(j, status);
		j->pid = -1;
		if (x)
			*x = j->exit;
	}
	int rc = jail_cleanup(&j->names, j->net, e);
	if (j->kmsg_fd >= 0)
		close(j->kmsg_fd);
	free(j);
	return rc;
}

static int jail_report_child(const struct jail_child_err *ce, const struct rootfs_plan *plan, struct err *e)
{
	const char *what = jail_child_step_name(ce->step);
	if ((ce->step == JC_STEP_BIND || ce->step == JC_STEP_MKPATH || ce->step == JC_STEP_REMOUNT_RO) &&
	    ce->index >= 0 && (size_t)ce->index < plan->n)
		return err_set(e, -ce->err, "jail setup failed %s (%s -> %s): %s", what, plan->m[ce->index].src,
			       plan->m[ce->index].dst, strerror(ce->err));
	if (ce->step == JC_STEP_EXEC && ce->err == ENOENT)
		return err_set(e, -ENOENT, "jail setup failed %s: %s (hint: a shared library or the binary is missing from the jail root)",
			       what, strerror(ce->err));
	return err_set(e, -ce->err, "jail setup failed %s: %s", what, strerror(ce->err));
}

/* Everything one spawn holds between its steps; released in one place. */
struct jail_spawn_ctx {
	const struct jail_config *c;
	struct jail *j;
	struct rootfs_plan *plan;
	struct secpol_program prog;
	struct jail_child child;
	int sync_p[2], err_p[2];
	int tap_fd, netns_fd, devnull;
	int made;      /* the state record exists: cleanup removes what is named */
	int net_made;  /* this spawn built the network */
};

/* Step 1: everything in the parent (state record first, so a crash at any
 * later point leaves something gc can find; then the root plan, the
 * compiled filter, cgroups, the network when asked, fds and pipes). */
static int jail_spawn_prepare(struct jail_spawn_ctx *s, struct err *e)
{
	const struct jail_config *c = s->c;
	const struct jail_names *n = c->names;
	int rc;
	if ((rc = jail_check_config(c, e)) || (rc = jail_prepare_base(e)))
		return rc;
	pid_t running = jail_state_vmm(n->id);
	if (running > 0)
		return err_set(e, -EEXIST, "VM '%s' already runs (pid %d)", n->id, (int)running);
	s->j = calloc(1, sizeof(*s->j));
	s->plan = calloc(1, sizeof(*s->plan));
	if (!s->j || !s->plan)
		return err_set(e, -ENOMEM, "jail: out of memory");
	s->j->names = *n;
	s->j->pid = -1;
	s->j->kmsg_fd = -1;
	s->j->net = c->net;
	s->made = 1;
	if ((rc = jail_prepare_dir(n, e)))
		return rc;
	/* The network before the root: a bind may name the VM's netns file
	 * (Firecracker's jailer joins it by path). */
	if (c->net) {
		if ((rc = jail_slot_claim(n->id, n->slot, e)))
			return rc == -EADDRINUSE ? err_set(e, rc, "address slot %u is no longer VM '%s''s", n->slot, n->id) : rc;
		const struct jail_tap_owner owner = { n->uid, n->gid };
		if ((rc = jail_net_create(n, c->allow, c->n_allow, c->tap_by_name ? &owner : NULL, &s->tap_fd, e)))
			return rc;
		s->net_made = 1;
		s->netns_fd = open(n->netns_path, O_RDONLY | O_CLOEXEC);
		if (s->netns_fd < 0)
			return err_set(e, -errno, "opening %s: %s", n->netns_path, strerror(errno));
	}
	if ((rc = rootfs_plan_build(s->plan, c->argv[0], c->binds, c->n_binds, c->kvm_node, e)) ||
	    (rc = secpol_compile(c->seccomp, &s->prog, e)))
		return rc;
	if (c->tap_by_name) {
		/* The VMM opens /dev/net/tun itself: a node only its uid may open. */
		struct stat st;
		if (stat("/dev/net/tun", &st) < 0 || !S_ISCHR(st.st_mode))
			return err_set(e, -ENODEV, "the VMM opens its tap through /dev/net/tun, which is missing here "
				       "(hint: modprobe tun)");
		s->plan->tun = 1;
		s->plan->tun_rdev = st.st_rdev;
	}
	struct jail_cgroup_limits lim = { c->memory_max_bytes, c->cpu_percent,
					  c->pids_max ? c->pids_max : JAIL_PIDS_DEFAULT };
	if ((rc = jail_cgroup_create(n->cgroup, &lim, e)))
		return rc;
	s->j->kmsg_fd = jail_kmsg_open();
	s->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (s->devnull < 0)
		return err_set(e, -errno, "opening /dev/null: %s", strerror(errno));
	if (pipe2(s->sync_p, O_CLOEXEC) || pipe2(s->err_p, O_CLOEXEC))
		return err_set(e, -errno, "jail: pipe: %s", strerror(errno));

	struct jail_child *ch = &s->child;
	ch->argv = c->argv;
	ch->plan = s->plan;
	ch->prog = &s->prog;
	ch->netns_fd = s->netns_fd;
	ch->uid = n->uid;
	ch->gid = n->gid;
	ch->keep_root = c->vmm_drops_privileges;
	ch->nofile = JAIL_NOFILE;
	ch->fsize = c->fsize_max_bytes > JAIL_FSIZE ? c->fsize_max_bytes : JAIL_FSIZE;
	ch->sync_fd = s->sync_p[0];
	ch->err_fd = s->err_p[1];
	if (snprintf(ch->stage, sizeof(ch->stage), "%s", jail_stage_dir()) >= (int)sizeof(ch->stage))
		return err_set(e, -ENAMETOOLONG, "jail: staging path too long");
	snprintf(ch->kvm_dev, sizeof(ch->kvm_dev), "%s/dev", ch->stage);
	snprintf(ch->kvm_node, sizeof(ch->kvm_node), "%s/dev/kvm", ch->stage);
	snprintf(ch->tun_dir, sizeof(ch->tun_dir), "%s/dev/net", ch->stage);
	snprintf(ch->tun_node, sizeof(ch->tun_node), "%s/dev/net/tun", ch->stage);
	ch->fds[0] = c->stdin_fd >= 0 ? c->stdin_fd : s->devnull;
	ch->fds[1] = c->stdout_fd >= 0 ? c->stdout_fd : s->devnull;
	ch->fds[2] = c->stderr_fd >= 0 ? c->stderr_fd : s->devnull;
	ch->n_fds = 3;
	if (c->net && !c->tap_by_name)
		ch->fds[ch->n_fds++] = s->tap_fd;
	for (size_t i = 0; i < c->n_pass_fds; i++)
		ch->fds[ch->n_fds++] = c->pass_fds[i];
	return 0;
}

/* Step 2: the child, in new namespaces (a new empty netns without net; with
 * net it joins the VM's after the go). */
static int jail_spawn_clone(struct jail_spawn_ctx *s, struct err *e)
{
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
	if (!s->c->net)
		flags |= CLONE_NEWNET;   /* empty: no NIC at all */
	pid_t p = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (p < 0)
		return err_set(e, -errno, "jail: clone into new namespaces: %s", strerror(errno));
	if (p == 0) {
		close(s->sync_p[1]);
		close(s->err_p[0]);
		jail_child_run(&s->child);
	}
	s->j->pid = p;
	close(s->sync_p[0]);
	s->sync_p[0] = -1;
	close(s->err_p[1]);
	s->err_p[1] = -1;
	return 0;
}

/* Step 3: cgroups and the record get the pid, the child is released, and the
 * error pipe tells: EOF means execve succeeded (the pipe is close-on-exec), a
 * record means a step failed. */
static int jail_spawn_handshake(struct jail_spawn_ctx *s, struct err *e)
{
	const struct jail_names *n = s->c->names;
	int rc;
	if ((rc = jail_cgroup_attach(n->cgroup, s->j->pid, e)) || (rc = jail_state_write(n->id, s->j->pid, e)))
		return rc;   /* closing sync_p[1] unwritten makes the child exit */
	if (io_write_all(s->sync_p[1], "g", 1) < 0)
		return err_set(e, -EPIPE, "jail: the child died before setup");
	close(s->sync_p[1]);
	s->sync_p[1] = -1;
	struct jail_child_err ce;
	ssize_t got = io_read(s->err_p[0], &ce, sizeof(ce));
	if (got == (ssize_t)sizeof(ce))
		return jail_report_child(&ce, s->plan, e);
	if (got != 0)
		return err_set(e, -EIO, "jail: unreadable report from the child");
	return 0;
}

static void jail_spawn_release(struct jail_spawn_ctx *s)
{
	for (int i = 0; i < 2; i++) {
		if (s->sync_p[i] >= 0)
			close(s->sync_p[i]);
		if (s->err_p[i] >= 0)
			close(s->err_p[i]);
	}
	if (s->tap_fd >= 0)
		close(s->tap_fd);
	if (s->netns_fd >= 0)
		close(s->netns_fd);
	if (s->devnull >= 0)
		close(s->devnull);
	secpol_program_free(&s->prog);
	free(s->plan);
	if (!s->j)
		return;
	if (s->j->pid > 0)
		jail_kill_reap(s->j->pid, NULL);
	/* The network only when this call made it: a failed create removes its
	 * own pieces, and a name clash must not take down another VM's. */
	if (s->made)
		jail_cleanup(s->c->names, s->net_made, NULL);
	if (s->j->kmsg_fd >= 0)
		close(s->j->kmsg_fd);
	free(s->j);
}

int jail_spawn(const struct jail_config *c, pid_t *pid, struct jail **out, struct err *e)
{
	struct jail_spawn_ctx s = {
		.c = c, .sync_p = { -1, -1 }, .err_p = { -1, -1 }, .tap_fd = -1, .netns_fd = -1, .devnull = -1,
	};
	*out = NULL;
	int rc = jail_spawn_prepare(&s, e);
	if (!rc)
		rc = jail_spawn_clone(&s, e);
	if (!rc)
		rc = jail_spawn_handshake(&s, e);
	if (!rc) {
		*pid = s.j->pid;
		*out = s.j;
		s.j = NULL;
	}
	jail_spawn_release(&s);
	return rc;
}
