/* The privileged parent of `ironclaw serve` (priv.h): a small loop of its own
 * that answers the API process's messages and holds every VM's jail. It reads
 * nothing but the fixed messages of priv.h, checks each (priv_msg_recv for the
 * shape, here for the id and the state, priv_check.c for a SPAWN), and logs
 * and refuses what does not fit: nothing is created for a refused message.
 *
 * The jails are made by the in-process launcher (launch.c) on this process's
 * thread pool, so the VMMs' parent-death signal follows this process. When the
 * API process goes (its sockets close), every VM left is destroyed, the
 * socket file removed, and the parent exits with the child's status. */
#include "serve/priv.h"
#include "serve/priv_cov.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "core/log.h"
#include "vm/launch.h"
#include "vm/layout.h"

struct priv_vm {
	struct priv_vm *next;
	struct priv_parent *pp;
	struct jail_names names;
	struct vm_launch *launch;
	struct priv_msg_spawn *spawn;   /* argv and binds point into it while launching */
	char *argv[VM_PLAN_ARGV_MAX];
	struct jail_bind binds[VM_PLAN_BINDS_MAX];
	struct jail_net_allow allow[JAIL_ALLOW_MAX];
	struct jail_config jc;
	int stderr_fd;
	int released;                   /* release asked: no more answers but DESTROYED */
	int tell_destroyed;             /* the child asked: answer DESTROYED */
};

struct priv_parent {
	uv_loop_t loop;
	const char *socket_path;
	pid_t child;
	int sync_fd, async_fd;
	uv_poll_t sync_poll, async_poll;
	uv_signal_t sigint, sigterm;
	struct priv_vm *vms;
	unsigned n_vms;
	int child_gone;
	_Alignas(8) unsigned char buf[PRIV_MSG_MAX];
};

static void priv_refuse(const struct priv_hdr *h, const char *why)
{
	log_warn("priv: refused a message from the API process (type %u, id '%.48s'): %s",
		 h ? h->type : 0u, h && memchr(h->id, 0, sizeof(h->id)) ? h->id : "?", why);
}

static struct priv_vm *priv_vm_find(struct priv_parent *pp, const char *id)
{
	for (struct priv_vm *v = pp->vms; v; v = v->next)
		if (!strcmp(v->names.id, id))
			return v;
	return NULL;
}

static void priv_vm_free(struct priv_vm *v)
{
	struct priv_parent *pp = v->pp;
	for (struct priv_vm **p = &pp->vms; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	pp->n_vms--;
	if (v->stderr_fd >= 0)
		close(v->stderr_fd);
	free(v->spawn);
	free(v);
}

static void priv_maybe_finish(struct priv_parent *pp)
{
	if (pp->child_gone && !pp->vms)
		uv_stop(&pp->loop);
}

/* ---- the sync channel ---- */

static void priv_reply(struct priv_parent *pp, const struct priv_hdr *req, int rc,
		       const struct err *e, int fd, const struct priv_vm *v,
		       const struct jail_net_addr *addr)
{
	struct priv_msg_reply r;
	priv_msg_init(&r.h, PRIV_REPLY, req ? req->id : "");
	r.h.seq = req ? req->seq : 0;
	r.rc = rc;
	if (rc < 0 && e)
		snprintf(r.text, sizeof(r.text), "%.*s", PRIV_TEXT_MAX - 1, e->msg);
	if (v && addr) {
		r.slot = v->names.slot;
		r.addr = *addr;
	}
	int src = priv_msg_send(pp->sync_fd, &r, sizeof(r), rc >= 0 ? fd : -1);
	if (src < 0)
		log_warn("priv: answering the API process: %s", strerror(-src));
	if (fd >= 0)
		close(fd);
}

static const char *priv_file_name(uint32_t type, uint32_t file)
{
	if (type == PRIV_CONNECT && file == PRIV_FILE_QMP)
		return "qmp.sock";
	if (type == PRIV_CONNECT && file == PRIV_FILE_CHANNEL)
		return "channel.sock";
	if (type == PRIV_OPEN_LOG && file == PRIV_FILE_CONSOLE)
		return "console.log";
	return NULL;
}

static void priv_on_sync_msg(struct priv_parent *pp, const struct priv_hdr *h)
{
	struct err e = { 0 };
	struct jail_names names;
	struct priv_vm *v = NULL;
	struct jail_net_addr addr;
	int rc = 0, fd = -1;
	if (jail_names_make(h->id, &names, &e) < 0) {
		priv_refuse(h, e.msg);
		priv_reply(pp, h, -EINVAL, &e, -1, NULL, NULL);
		return;
	}
	if (h->type != PRIV_PREPARE && !(v = priv_vm_find(pp, h->id))) {
		err_set(&e, -ENOENT, "no VM %s was prepared", h->id);
		priv_refuse(h, e.msg);
		priv_reply(pp, h, -ENOENT, &e, -1, NULL, NULL);
		return;
	}
	switch (h->type) {
	case PRIV_PREPARE:
		if (priv_vm_find(pp, h->id) || pp->n_vms >= PRIV_VMS_MAX) {
			rc = err_set(&e, -EEXIST, "VM %s exists or too many VMs", h->id);
			priv_refuse(h, e.msg);
			break;
		}
		if ((rc = jail_prepare_dir(&names, &e)) < 0)
			break;
		v = calloc(1, sizeof(*v));
		if (!v) {
			rc = err_set(&e, -ENOMEM, "out of memory");
			jail_discard(&names, &e);
			break;
		}
		v->pp = pp;
		v->names = names;
		v->stderr_fd = -1;
		v->next = pp->vms;
		pp->vms = v;
		pp->n_vms++;
		break;
	case PRIV_NET_RESERVE:
		rc = jail_net_reserve(&v->names, &addr, &e);
		priv_reply(pp, h, rc, &e, -1, rc == 0 ? v : NULL, rc == 0 ? &addr : NULL);
		return;
	case PRIV_DISCARD:
		if (v->launch) {
			rc = err_set(&e, -EBUSY, "VM %s has a VMM: DESTROY it", h->id);
			priv_refuse(h, e.msg);
			break;
		}
		rc = jail_discard(&v->names, &e);
		priv_vm_free(v);
		break;
	case PRIV_SCRATCH: {
		const struct priv_msg_scratch *m = (const void *)h;
		char path[300];
		if (!m->bytes || m->bytes > PRIV_SCRATCH_MAX || (m->bytes & ((1u << 20) - 1)) || v->launch) {
			rc = err_set(&e, -EINVAL, "scratch disk of %llu bytes (whole MiB, 1 MiB .. 1 TiB, "
				     "before the spawn)", (unsigned long long)m->bytes);
			priv_refuse(h, e.msg);
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", v->names.dir, VM_LAYOUT_SCRATCH_FILE);
		rc = vm_launcher_inproc.scratch_create(&v->names, path, m->bytes, &e);
		break;
	}
	case PRIV_CONNECT:
	case PRIV_OPEN_LOG: {
		const struct priv_msg_file *m = (const void *)h;
		const char *name = priv_file_name(h->type, m->file);
		char path[300];
		if (!name) {
			rc = err_set(&e, -EINVAL, "file %u is not one this call may open", m->file);
			priv_refuse(h, e.msg);
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", v->names.dir, name);
		fd = h->type == PRIV_CONNECT ? vm_launcher_inproc.connect(path)
					     : vm_launcher_inproc.open_read(path);
		if (fd < 0) {
			rc = err_set(&e, fd, "%s: %s", path, strerror(-fd));
			fd = -1;
		}
		break;
	}
	default:
		rc = err_set(&e, -EPROTO, "type %u does not belong on the sync channel", h->type);
		priv_refuse(h, e.msg);
	}
	priv_reply(pp, h, rc, &e, fd, NULL, NULL);
}

/* ---- the async channel ---- */

static void priv_send_async(struct priv_parent *pp, const void *m, size_t n)
{
	int rc = priv_msg_send(pp->async_fd, m, n, -1);
	if (rc < 0 && !pp->child_gone)
		log_warn("priv: telling the API process: %s", strerror(-rc));
}

static void priv_send_spawned(struct priv_parent *pp, const char *id, int rc, pid_t pid,
			      const struct err *e)
{
	struct priv_msg_spawned m;
	priv_msg_init(&m.h, PRIV_SPAWNED, id);
	m.rc = rc;
	m.pid = pid;
	if (e)
		snprintf(m.text, sizeof(m.text), "%.*s", PRIV_TEXT_MAX - 1, e->msg);
	priv_send_async(pp, &m, sizeof(m));
}

static void priv_on_released(void *ctx, const struct err *e)
{
	struct priv_vm *v = ctx;
	struct priv_parent *pp = v->pp;
	if (v->tell_destroyed && !pp->child_gone) {
		struct priv_msg_destroyed m;
		priv_msg_init(&m.h, PRIV_DESTROYED, v->names.id);
		m.rc = e ? e->code : 0;
		if (e)
			snprintf(m.text, sizeof(m.text), "%.*s", PRIV_TEXT_MAX - 1, e->msg);
		priv_send_async(pp, &m, sizeof(m));
	}
	v->launch = NULL;
	priv_vm_free(v);
	priv_maybe_finish(pp);
}

static void priv_on_started(struct vm_launch *l, const struct err *e, void *ctx)
{
	struct priv_vm *v = ctx;
	/* The VMM holds its own copy of the child's stderr pipe now. */
	close(v->stderr_fd);
	v->stderr_fd = -1;
	if (e) {
		/* jail_spawn left nothing; release frees the handle (and a jail, if
		 * only the pidfd failed). The child never sends DESTROY for it. */
		priv_send_spawned(v->pp, v->names.id, e->code ? e->code : -EIO, -1, e);
		v->released = 1;
		vm_launch_release(l, priv_on_released, v);
		return;
	}
	/* jail_spawn is done with the configuration it borrowed. */
	free(v->spawn);
	v->spawn = NULL;
	priv_send_spawned(v->pp, v->names.id, 0, vm_launch_pid(l), NULL);
}

static void priv_on_exited(struct vm_launch *l, int status, void *ctx)
{
	struct priv_vm *v = ctx;
	(void)l;
	struct priv_msg_exited m;
	priv_msg_init(&m.h, PRIV_EXITED, v->names.id);
	m.status = status;
	priv_send_async(v->pp, &m, sizeof(m));
}

static void priv_on_spawn(struct priv_parent *pp, struct priv_vm *v, const struct priv_hdr *h,
			  int fd)
{
	struct err e = { 0 };
	int rc;
	if (v->launch) {
		err_set(&e, -EEXIST, "VM %s already has a VMM", h->id);
		priv_refuse(h, e.msg);
		if (fd >= 0)
			close(fd);
		priv_send_spawned(pp, h->id, -EEXIST, -1, &e);
		return;
	}
	if (fd < 0) {
		err_set(&e, -EINVAL, "SPAWN without the VMM's stderr descriptor");
		goto refuse;
	}
	if (!(v->spawn = malloc(sizeof(*v->spawn)))) {
		err_set(&e, -ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(v->spawn, h, sizeof(*v->spawn));
	if ((rc = priv_check_spawn(v->spawn, &v->names, v->argv, v->binds, v->allow, &v->jc, &e)) < 0)
		goto refuse;
	v->stderr_fd = fd;
	v->jc.stderr_fd = fd;
	static const struct vm_launch_events ev = { .started = priv_on_started,
						    .exited = priv_on_exited };
	if (vm_launch_start(&pp->loop, &v->jc, &ev, v, &v->launch, &e) < 0) {
		v->stderr_fd = -1;
		goto fail;
	}
	return;
refuse:
	priv_refuse(h, e.msg);
fail:
	if (fd >= 0)
		close(fd);
	priv_send_spawned(pp, h->id, e.code ? e.code : -EINVAL, -1, &e);
	/* The child's VM fails on this answer and never DISCARDs a VM it asked
	 * to spawn: the directory and slot go now. */
	struct err de = { 0 };
	jail_discard(&v->names, &de);
	priv_vm_free(v);
}

static void priv_on_async_msg(struct priv_parent *pp, const struct priv_hdr *h, int fd)
{
	struct err e = { 0 };
	struct jail_names names;
	struct priv_vm *v;
	if (jail_names_make(h->id, &names, &e) < 0) {
		priv_refuse(h, e.msg);
		goto out;
	}
	if (!(v = priv_vm_find(pp, h->id)) || v->released) {
		priv_refuse(h, "no such VM (not prepared, or already destroyed)");
		goto out;
	}
	switch (h->type) {
	case PRIV_SPAWN:
		priv_on_spawn(pp, v, h, fd);
		return;
	case PRIV_KILL:
		if (v->launch)
			vm_launch_kill(v->launch);
		else
			priv_refuse(h, "KILL before SPAWN");
		break;
	case PRIV_DESTROY:
		if (!v->launch) {
			priv_refuse(h, "DESTROY before SPAWN (use DISCARD)");
			break;
		}
		v->released = 1;
		v->tell_destroyed = 1;
		vm_launch_release(v->launch, priv_on_released, v);
		break;
	default:
		priv_refuse(h, "this type does not belong on the async channel");
	}
out:
	if (fd >= 0)
		close(fd);
}

/* ---- the loop ---- */

static void priv_child_gone(struct priv_parent *pp)
{
	if (pp->child_gone)
		return;
	pp->child_gone = 1;
	uv_poll_stop(&pp->sync_poll);
	uv_poll_stop(&pp->async_poll);
	if (pp->vms)
		log_info("priv: the API process is gone; destroying %u VMs", pp->n_vms);
	struct priv_vm *next;
	for (struct priv_vm *v = pp->vms; v; v = next) {
		next = v->next;
		if (v->launch) {
			if (!v->released) {
				v->released = 1;
				vm_launch_release(v->launch, priv_on_released, v);
			}
		} else {
			struct err e = { 0 };
			jail_discard(&v->names, &e);
			priv_vm_free(v);
		}
	}
	priv_maybe_finish(pp);
}

static void priv_on_readable(uv_poll_t *p, int status, int events)
{
	struct priv_parent *pp = p->data;
	int is_sync = p == &pp->sync_poll;
	int sock = is_sync ? pp->sync_fd : pp->async_fd;
	(void)events;
	if (status < 0) {
		priv_child_gone(pp);
		return;
	}
	for (int i = 0; i < 64 && !pp->child_gone; i++) {
		char why[160];
		int fd = -1;
		ssize_t n = priv_msg_recv(sock, pp->buf, &fd, why, sizeof(why));
		if (n == -EAGAIN)
			return;
		if (n == 0 || (n < 0 && n != -EPROTO)) {
			priv_child_gone(pp);
			return;
		}
		const struct priv_hdr *h = (const void *)pp->buf;
		if (n == -EPROTO) {
			priv_refuse(NULL, why);
			if (is_sync) {
				struct err e = { 0 };
				err_set(&e, -EPROTO, "%s", why);
				priv_reply(pp, NULL, -EPROTO, &e, -1, NULL, NULL);
			}
			continue;
		}
		if (is_sync) {
			if (fd >= 0)
				close(fd);
			priv_on_sync_msg(pp, h);
		} else {
			priv_on_async_msg(pp, h, fd);
		}
	}
}

static void priv_on_signal(uv_signal_t *s, int sig)
{
	struct priv_parent *pp = s->data;
	/* The API process stops its sandboxes and exits; we follow. */
	kill(pp->child, sig);
}

static int priv_parent_run(struct priv_parent *pp)
{
	uv_loop_init(&pp->loop);
	uv_poll_init(&pp->loop, &pp->sync_poll, pp->sync_fd);
	uv_poll_init(&pp->loop, &pp->async_poll, pp->async_fd);
	pp->sync_poll.data = pp->async_poll.data = pp;
	uv_poll_start(&pp->sync_poll, UV_READABLE | UV_DISCONNECT, priv_on_readable);
	uv_poll_start(&pp->async_poll, UV_READABLE | UV_DISCONNECT, priv_on_readable);
	uv_signal_init(&pp->loop, &pp->sigint);
	uv_signal_init(&pp->loop, &pp->sigterm);
	pp->sigint.data = pp->sigterm.data = pp;
	uv_signal_start(&pp->sigint, priv_on_signal, SIGINT);
	uv_signal_start(&pp->sigterm, priv_on_signal, SIGTERM);
	uv_run(&pp->loop, UV_RUN_DEFAULT);
	/* Everything is destroyed: close the handles and let the loop drain. */
	uv_close((uv_handle_t *)&pp->sync_poll, NULL);
	uv_close((uv_handle_t *)&pp->async_poll, NULL);
	uv_close((uv_handle_t *)&pp->sigint, NULL);
	uv_close((uv_handle_t *)&pp->sigterm, NULL);
	uv_run(&pp->loop, UV_RUN_DEFAULT);
	uv_loop_close(&pp->loop);
	close(pp->sync_fd);
	close(pp->async_fd);
	int st = 0;
	while (waitpid(pp->child, &st, 0) < 0 && errno == EINTR)
		;
	unlink(pp->socket_path);
	priv_cov_merge();
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int priv_fork(const struct serve_config *c, int listen_fd, int *sync_fd, int *async_fd,
	      struct err *e)
{
	int sp[2], ap[2], rc;
	if ((rc = priv_cache_prepare(e)) < 0 || (rc = priv_images_prepare(e)) < 0)
		return rc;
	/* The parent needs no supplementary groups, and priv_check's view of what
	 * the API uid may read assumes it has none. */
	if (setgroups(0, NULL) < 0)
		return err_set(e, -errno, "setgroups: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ap) < 0)
		return err_set(e, -errno, "socketpair: %s", strerror(errno));
	/* Room for every answer the API process has not read yet, so that the
	 * parent never blocks on it (root may exceed wmem_max). */
	int sndbuf = 8 << 20;
	setsockopt(ap[0], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	priv_cov_prepare();
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return err_set(e, -errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(sp[0]);
		close(ap[0]);
		priv_cov_child();
		if ((rc = priv_drop(e)) < 0)
			return rc;
		/* After the uid change, which clears it. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
			return err_set(e, -ESRCH, "the privileged parent is gone");
		*sync_fd = sp[1];
		*async_fd = ap[1];
		return 1;
	}
	close(sp[1]);
	close(ap[1]);
	close(listen_fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	log_info("priv: privileged parent %d, API process %d", (int)parent, (int)pid);
	struct priv_parent *pp = calloc(1, sizeof(*pp));
	if (!pp) {
		kill(pid, SIGKILL);
		return err_set(e, -ENOMEM, "out of memory");
	}
	pp->socket_path = c->socket_path;
	pp->child = pid;
	pp->sync_fd = sp[0];
	pp->async_fd = ap[0];
	int st = priv_parent_run(pp);
	free(pp);
	if (st)
		return err_set(e, -ECHILD, "the API process exited with status %d", st);
	return 0;
}
