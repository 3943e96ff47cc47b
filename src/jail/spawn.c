/* Starting, watching and tearing down one jailed VMM.
 *
 * jail_spawn prepares everything in the parent (state record first, so a crash
 * at any later point leaves something gc can find; then the root plan, the
 * compiled filter, cgroups, and the network when asked), clones the child into
 * new namespaces, attaches it to the cgroups, releases it, and waits on the
 * error pipe: EOF means execve succeeded (the pipe is close-on-exec), a record
 * means a step failed and everything is torn down again. */
#include "jail/jail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/io.h"
#include "jail/child.h"
#include "jail/jail_internal.h"
#include "jail/kmsg.h"

#define JAIL_NOFILE 1024             /* QEMU needs a few dozen; TCG needs no more */
#define JAIL_FSIZE (256ull << 20)    /* the serial log is the only file it grows */

struct jail {
	char id[JAIL_ID_MAX + 1];
	pid_t pid;          /* -1 once reaped */
	int status;         /* wait status once reaped */
	int net;
	uint32_t slot;
	int kmsg_fd;        /* positioned at spawn time, to find the audit record of a kill */
};

static int jail_check_config(const struct jail_config *c, struct err *e)
{
	int rc = jail_validate_id(c->vm_id, e);
	if (rc)
		return rc;
	if (!c->argv || !c->argv[0])
		return err_set(e, -EINVAL, "jail: empty VMM argv");
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
	for (size_t i = 0; i < c->n_allow; i++)
		if (c->allow[i].prefix > 32)
			return err_set(e, -EINVAL, "jail: allow entry %zu has prefix /%u (max 32)", i, c->allow[i].prefix);
	return 0;
}

pid_t jail_pid(const struct jail *j)
{
	return j ? j->pid : -1;
}

/* Records a SIGSYS death (the seccomp filter killed the VMM). The syscall
 * number comes from the kernel's audit record (type=1326) for that pid. */
static void jail_note_exit(struct jail *j)
{
	if (!WIFSIGNALED(j->status) || WTERMSIG(j->status) != SIGSYS)
		return;
	struct audit_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.time = (int64_t)time(NULL);
	snprintf(ev.kind, sizeof(ev.kind), "seccomp");
	snprintf(ev.vm_id, sizeof(ev.vm_id), "%s", j->id);
	ev.pid = (int)j->pid;
	ev.syscall = -1;
	unsigned long arch = 0;
	if (jail_kmsg_find_seccomp(j->kmsg_fd, j->pid, &ev.syscall, &arch) == 0) {
		const char *name = secpol_syscall_name(arch, ev.syscall);
		snprintf(ev.syscall_name, sizeof(ev.syscall_name), "%s", name ? name : "?");
		snprintf(ev.detail, sizeof(ev.detail), "VMM killed by the seccomp filter (%s ABI)",
			 secpol_arch_name(arch, ev.syscall));
	} else {
		snprintf(ev.detail, sizeof(ev.detail),
			 "VMM killed by SIGSYS; no kernel audit record found for the syscall number");
	}
	audit_record(&ev, NULL);
}

int jail_poll(struct jail *j, int *status)
{
	if (!j)
		return -EINVAL;
	if (j->pid < 0) {
		if (status)
			*status = j->status;
		return 1;
	}
	pid_t r = waitpid(j->pid, &j->status, WNOHANG);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	jail_note_exit(j);
	j->pid = -1;
	if (status)
		*status = j->status;
	return 1;
}

/* Removes <dir> and what the VMM put in it, without following links and with
 * a bounded depth (the VMM only makes sockets and a log there). */
static int jail_rm_tree(int parent, const char *name, int depth)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > 4)
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

/* Tears down everything named after vm_id. Used by destroy, failed spawns and gc. */
int jail_cleanup_id(const char *vm_id, int with_net, struct err *e)
{
	int first = 0, rc;
	struct jail_names n;
	jail_names_for(vm_id, &n);
	if (with_net && (rc = jail_net_remove(vm_id, e)) && !first)
		first = rc;
	jail_slot_release(vm_id, n.slot);
	if ((rc = jail_cgroup_remove(vm_id, first ? NULL : e)) && !first)
		first = rc;
	int base = open(JAIL_RUN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base >= 0) {
		rc = jail_rm_tree(base, vm_id, 0);
		close(base);
		if (rc && !first)
			first = err_set(e, rc, "removing %s/%s: %s", JAIL_RUN_DIR, vm_id, strerror(-rc));
	}
	jail_state_remove(vm_id);
	return first;
}

int jail_destroy(struct jail *j, struct err *e)
{
	if (!j)
		return 0;
	if (j->pid > 0) {
		kill(j->pid, SIGKILL);
		while (waitpid(j->pid, &j->status, 0) < 0 && errno == EINTR)
			;
		jail_note_exit(j);
		j->pid = -1;
	}
	int rc = jail_cleanup_id(j->id, j->net, e);
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

int jail_spawn(const struct jail_config *c, pid_t *pid, struct jail **out, struct err *e)
{
	int rc;
	struct jail *j = NULL;
	struct rootfs_plan *plan = NULL;
	struct secpol_program prog = { 0 };
	int sync_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
	int tap_fd = -1, netns_fd = -1, devnull = -1;
	int made = 0;   /* whether kernel objects may exist and need cleanup */
	int net_made = 0;
	char dir[256];

	*out = NULL;
	if ((rc = jail_check_config(c, e)))
		return rc;
	if ((rc = jail_prepare_base(e)))
		return rc;
	if (jail_state_alive(c->vm_id)) {
		/* Ours from jail_prepare_dir is fine; a VMM already running is not. */
		char probe[256];
		snprintf(probe, sizeof(probe), "%s/%s", JAIL_STATE_DIR, c->vm_id);
		char *buf = NULL;
		size_t len;
		int owner = 0, vmm = 0;
		if (!io_read_file(probe, 256, &buf, &len)) {
			sscanf(buf, "%d %*u %d", &owner, &vmm);
			free(buf);
		}
		if (vmm > 0 && jail_proc_start(vmm))
			return err_set(e, -EEXIST, "VM '%s' already runs (pid %d)", c->vm_id, vmm);
	}
	j = calloc(1, sizeof(*j));
	plan = calloc(1, sizeof(*plan));
	if (!j || !plan) {
		rc = err_set(e, -ENOMEM, "jail: out of memory");
		goto out;
	}
	snprintf(j->id, sizeof(j->id), "%s", c->vm_id);
	j->pid = -1;
	j->kmsg_fd = -1;
	j->net = c->net;
	made = 1;
	if ((rc = jail_state_write(c->vm_id, 0, e)) || (rc = jail_prepare_dir(c->vm_id, dir, sizeof(dir), e)))
		goto out;
	if ((rc = rootfs_plan_build(plan, c->argv[0], c->binds, c->n_binds, c->use_kvm, e)))
		goto out;
	if ((rc = secpol_compile(c->use_kvm ? SECPOL_KVM : SECPOL_TCG, &prog, e)))
		goto out;
	struct jail_cgroup_limits lim = { c->memory_max_bytes, c->cpu_percent,
					  c->pids_max ? c->pids_max : JAIL_PIDS_DEFAULT };
	if ((rc = jail_cgroup_create(c->vm_id, &lim, e)))
		goto out;
	if (c->net) {
		struct jail_names n;
		jail_names_for(c->vm_id, &n);
		j->slot = n.slot;
		if ((rc = jail_slot_claim(c->vm_id, n.slot, e)) ||
		    (rc = jail_net_create(c->vm_id, c->allow, c->n_allow, &tap_fd, e)))
			goto out;
		net_made = 1;
		char nspath[128];
		snprintf(nspath, sizeof(nspath), "/run/netns/%s", n.netns);
		netns_fd = open(nspath, O_RDONLY | O_CLOEXEC);
		if (netns_fd < 0) {
			rc = err_set(e, -errno, "opening %s: %s", nspath, strerror(errno));
			goto out;
		}
	}
	j->kmsg_fd = jail_kmsg_open();

	struct jail_child child = {
		.argv = c->argv, .plan = plan, .prog = &prog, .netns_fd = netns_fd,
		.uid = jail_uid_for(c->vm_id), .gid = (gid_t)jail_uid_for(c->vm_id),
		.nofile = JAIL_NOFILE, .fsize = JAIL_FSIZE,
	};
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		rc = err_set(e, -errno, "opening /dev/null: %s", strerror(errno));
		goto out;
	}
	child.fds[0] = c->stdin_fd >= 0 ? c->stdin_fd : devnull;
	child.fds[1] = c->stdout_fd >= 0 ? c->stdout_fd : devnull;
	child.fds[2] = c->stderr_fd >= 0 ? c->stderr_fd : devnull;
	child.n_fds = 3;
	if (c->net)
		child.fds[child.n_fds++] = tap_fd;
	for (size_t i = 0; i < c->n_pass_fds; i++)
		child.fds[child.n_fds++] = c->pass_fds[i];
	if (pipe2(sync_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC)) {
		rc = err_set(e, -errno, "jail: pipe: %s", strerror(errno));
		goto out;
	}
	child.sync_fd = sync_p[0];
	child.err_fd = err_p[1];

	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
	if (!c->net)
		flags |= CLONE_NEWNET;   /* empty: no NIC at all */
	pid_t p = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
	if (p < 0) {
		rc = err_set(e, -errno, "jail: clone into new namespaces: %s", strerror(errno));
		goto out;
	}
	if (p == 0) {
		close(sync_p[1]);
		close(err_p[0]);
		jail_child_run(&child);
	}
	j->pid = p;
	close(sync_p[0]);
	sync_p[0] = -1;
	close(err_p[1]);
	err_p[1] = -1;
	if ((rc = jail_cgroup_attach(c->vm_id, p, e)) || (rc = jail_state_write(c->vm_id, p, e)))
		goto out;   /* closing sync_p[1] unwritten makes the child exit */
	if (io_write_all(sync_p[1], "g", 1) < 0) {
		rc = err_set(e, -EPIPE, "jail: the child died before setup");
		goto out;
	}
	close(sync_p[1]);
	sync_p[1] = -1;
	struct jail_child_err ce;
	ssize_t n = io_read(err_p[0], &ce, sizeof(ce));
	if (n == (ssize_t)sizeof(ce)) {
		rc = jail_report_child(&ce, plan, e);
		goto out;
	}
	if (n != 0) {
		rc = err_set(e, -EIO, "jail: unreadable report from the child");
		goto out;
	}
	*pid = p;
	*out = j;
	j = NULL;
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (sync_p[i] >= 0)
			close(sync_p[i]);
		if (err_p[i] >= 0)
			close(err_p[i]);
	}
	if (tap_fd >= 0)
		close(tap_fd);
	if (netns_fd >= 0)
		close(netns_fd);
	if (devnull >= 0)
		close(devnull);
	secpol_program_free(&prog);
	free(plan);
	if (j) {
		if (j->pid > 0) {
			kill(j->pid, SIGKILL);
			while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		/* The network only when this call made it: a failed create removes
		 * its own pieces, and a name clash must not take down another VM's. */
		if (made)
			jail_cleanup_id(c->vm_id, net_made, NULL);
		if (j->kmsg_fd >= 0)
			close(j->kmsg_fd);
		free(j);
	}
	return rc;
}
