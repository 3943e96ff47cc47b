/* The launcher: see launch.h.
 *
 * Phases: SPAWNING (the launcher's spawn in flight) -> RUNNING (the launcher
 * watches the process) -> EXITED (reaped) -> RELEASING (the launcher's destroy
 * in flight, handles closing) -> freed. A release that arrives while the spawn
 * is still in flight waits for it: a thread-pool job (or a request to the
 * privileged parent) cannot be recalled once sent, and the VMM it makes must
 * not be left behind.
 *
 * This file also holds the in-process launcher: jail_spawn and jail_destroy on
 * the thread pool, a pidfd watched on the loop, jail_poll to reap. */
#include "vm/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "vm/vm.h"

enum launch_phase { L_SPAWNING, L_RUNNING, L_EXITED, L_FAILED, L_RELEASING };

struct vm_launch {
	uv_loop_t *loop;
	const struct vm_launcher *ops;
	enum launch_phase phase;
	struct vm_launch_events ev;
	void *ctx;
	const struct jail_config *cfg; /* borrowed until the spawn is answered */
	char id[JAIL_ID_MAX + 1];
	pid_t pid;
	int status;
	int stderr_w;                  /* the VMM's end of our pipe, closed once spawned */
	int has_pipe;                  /* 0: the caller passed its own stderr_fd */
	uv_pipe_t stderr_pipe;
	int handles_open;
	struct buf stderr_tail;
	char stderr_text[VM_LAUNCH_STDERR_KEEP + 1];
	struct err spawn_err;
	struct err cleanup_err;
	int release_wanted;
	int spawned_ok;                /* the launcher has a VMM (and a jail) for us */
	void (*released)(void *ctx, const struct err *e);
	void *released_ctx;
	/* in-process launcher */
	struct jail *jail;
	int pidfd;
	uv_work_t work;
	uv_poll_t pid_watch;
	int watching;
	uv_timer_t anchor;             /* always open: l is freed when the last handle closes */
	struct jail_exit final_exit;   /* filled by jail_destroy (status -1: already reported) */
	double spawn_ms;
};

static const struct vm_launcher *launcher_current = &vm_launcher_inproc;

void vm_launcher_use(const struct vm_launcher *ops)
{
	launcher_current = ops ? ops : &vm_launcher_inproc;
}

const struct vm_launcher *vm_launcher_get(void)
{
	return launcher_current;
}

static void launch_release_now(struct vm_launch *l);
static void launch_handle_closed(uv_handle_t *h);

pid_t vm_launch_pid(const struct vm_launch *l)
{
	return l && l->phase == L_RUNNING ? l->pid : 0;
}

const char *vm_launch_id(const struct vm_launch *l)
{
	return l->id;
}

static void launch_keep_stderr(struct vm_launch *l, const char *p, size_t n)
{
	/* Keep only the newest bytes: the VMM's last words are the useful ones. */
	if (n > VM_LAUNCH_STDERR_KEEP) {
		p += n - VM_LAUNCH_STDERR_KEEP;
		n = VM_LAUNCH_STDERR_KEEP;
	}
	if (l->stderr_tail.len + n > VM_LAUNCH_STDERR_KEEP)
		buf_consume(&l->stderr_tail, l->stderr_tail.len + n - VM_LAUNCH_STDERR_KEEP);
	buf_append(&l->stderr_tail, p, n);
}

/* The VMM has exited, so whatever it wrote is already in the pipe: read it now
 * rather than on a later loop turn. The pipe is non-blocking (libuv made it so). */
static void launch_drain_stderr(struct vm_launch *l)
{
	uv_os_fd_t fd;
	if (!l->has_pipe || uv_fileno((uv_handle_t *)&l->stderr_pipe, &fd) < 0)
		return;
	char chunk[4096];
	for (int i = 0; i < 4; i++) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		launch_keep_stderr(l, chunk, (size_t)n);
	}
}

const char *vm_launch_stderr(struct vm_launch *l)
{
	size_t n = l->stderr_tail.len;
	memcpy(l->stderr_text, l->stderr_tail.data ? (const char *)l->stderr_tail.data : "", n);
	l->stderr_text[n] = '\0';
	return l->stderr_text;
}

static void launch_stderr_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	static char scratch[4096]; /* consumed synchronously in launch_on_stderr */
	*b = uv_buf_init(scratch, sizeof(scratch));
}

static void launch_on_stderr(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct vm_launch *l = s->data;
	if (n < 0) {
		uv_read_stop(s);
		return;
	}
	if (n > 0)
		launch_keep_stderr(l, b->base, (size_t)n);
}

/* ---- completions (any launcher) ---- */

void vm_launch_spawned(struct vm_launch *l, pid_t pid, const struct err *e)
{
	if (l->stderr_w >= 0)
		close(l->stderr_w);
	l->stderr_w = -1;
	l->cfg = NULL;
	if (e) {
		l->spawn_err = *e;
		l->phase = L_FAILED;
	} else {
		l->pid = pid;
		l->spawned_ok = 1;
		l->phase = L_RUNNING;
	}
	if (l->release_wanted) {
		launch_release_now(l);
		return;
	}
	if (l->ev.started)
		l->ev.started(l, l->phase == L_FAILED ? &l->spawn_err : NULL, l->ctx);
}

void vm_launch_exited(struct vm_launch *l, int status)
{
	if (l->phase != L_RUNNING)
		return;   /* a late report after release started */
	l->phase = L_EXITED;
	l->status = status;
	launch_drain_stderr(l);
	if (l->ev.exited)
		l->ev.exited(l, status, l->ctx);
}

static void launch_close_handles(struct vm_launch *l)
{
	if (l->watching) {
		uv_poll_stop(&l->pid_watch);
		uv_close((uv_handle_t *)&l->pid_watch, launch_handle_closed);
	}
	if (l->has_pipe)
		uv_close((uv_handle_t *)&l->stderr_pipe, launch_handle_closed);
	uv_close((uv_handle_t *)&l->anchor, launch_handle_closed);
}

void vm_launch_destroyed(struct vm_launch *l, const struct err *e)
{
	if (e && e->code)
		l->cleanup_err = *e;
	launch_close_handles(l);
}

static void launch_handle_closed(uv_handle_t *h)
{
	struct vm_launch *l = h->data;
	if (--l->handles_open > 0)
		return;
	if (l->pidfd >= 0)
		close(l->pidfd);
	void (*done)(void *, const struct err *) = l->released;
	void *ctx = l->released_ctx;
	struct err e = l->cleanup_err;
	buf_free(&l->stderr_tail);
	free(l);
	if (done)
		done(ctx, e.code ? &e : NULL);
}

/* ---- the in-process launcher ---- */

static void inproc_on_pidfd(uv_poll_t *p, int status, int events)
{
	struct vm_launch *l = p->data;
	(void)status;
	(void)events;
	struct jail_exit x;
	if (l->phase != L_RUNNING || jail_poll(l->jail, &x) != 1)
		return;
	uv_poll_stop(&l->pid_watch);
	vm_audit_vmm_exit(l->id, l->pid, &x);
	vm_launch_exited(l, x.status);
}

static void inproc_spawn_job(uv_work_t *w)
{
	struct vm_launch *l = w->data;
	double t0 = (double)uv_hrtime() / 1e6;
	if (jail_spawn(l->cfg, &l->pid, &l->jail, &l->spawn_err) < 0)
		l->jail = NULL;
	l->spawn_ms = (double)uv_hrtime() / 1e6 - t0;
}

static void inproc_on_spawned(uv_work_t *w, int status)
{
	struct vm_launch *l = w->data;
	struct err e = { 0 };
	(void)status;
	if (!l->jail) {
		e = l->spawn_err;
		vm_launch_spawned(l, -1, &e);
		return;
	}
	log_debug("%s: jail_spawn took %.1f ms (thread pool)", l->id, l->spawn_ms);
	l->pidfd = (int)syscall(SYS_pidfd_open, l->pid, 0);
	if (l->pidfd < 0) {
		err_set(&e, -errno, "pidfd_open: %s (hint: needs Linux 5.3 or later)", strerror(errno));
		/* The jail exists: spawned_ok makes release destroy it. */
		l->spawned_ok = 1;
		vm_launch_spawned(l, -1, &e);
		return;
	}
	uv_poll_init(l->loop, &l->pid_watch, l->pidfd);
	l->pid_watch.data = l;
	l->handles_open++;
	l->watching = 1;
	uv_poll_start(&l->pid_watch, UV_READABLE, inproc_on_pidfd);
	vm_launch_spawned(l, l->pid, NULL);
}

static int inproc_spawn(struct vm_launch *l, const struct jail_config *cfg, struct err *e)
{
	(void)cfg;   /* l->cfg is the same */
	l->work.data = l;
	int rc = uv_queue_work(l->loop, &l->work, inproc_spawn_job, inproc_on_spawned);
	if (rc < 0)
		return err_set(e, rc, "queueing the VMM's start: %s", uv_strerror(rc));
	return 0;
}

static void inproc_kill(struct vm_launch *l)
{
	if (l->pid > 0 && l->jail && jail_pid(l->jail) > 0)
		kill(l->pid, SIGKILL);
}

static void inproc_destroy_job(uv_work_t *w)
{
	struct vm_launch *l = w->data;
	/* Kills the VMM if it still runs, reaps it, removes every kernel object. */
	jail_destroy(l->jail, &l->final_exit, &l->cleanup_err);
	l->jail = NULL;
}

static void inproc_on_destroyed(uv_work_t *w, int status)
{
	struct vm_launch *l = w->data;
	(void)status;
	/* On the loop thread: the audit log is not the pool's to write. */
	vm_audit_vmm_exit(l->id, l->pid, &l->final_exit);
	struct err e = l->cleanup_err;
	vm_launch_destroyed(l, &e);
}

static void inproc_destroy(struct vm_launch *l)
{
	if (l->watching)
		uv_poll_stop(&l->pid_watch);
	l->work.data = l;
	if (uv_queue_work(l->loop, &l->work, inproc_destroy_job, inproc_on_destroyed) < 0) {
		/* No pool: do it here rather than leave a VMM behind. */
		inproc_destroy_job(&l->work);
		inproc_on_destroyed(&l->work, 0);
	}
}

static int inproc_scratch_create(const struct jail_names *n, const char *path, uint64_t bytes,
				 struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(e, -errno, "creating the scratch disk %s: %s", path, strerror(errno));
	/* The VMM runs as the VM's own unprivileged uid, as the directory. */
	int rc = ftruncate(fd, (off_t)bytes) < 0 || fchown(fd, n->uid, n->gid) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0) {
		unlink(path);
		return err_set(e, rc, "sizing the scratch disk to %llu MiB: %s",
			       (unsigned long long)(bytes >> 20), strerror(-rc));
	}
	return 0;
}

static int inproc_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	int err = errno;
	close(fd);
	return -err;
}

static int inproc_open_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	return fd < 0 ? -errno : fd;
}

static int inproc_prepare_dir(const struct jail_names *n, struct err *e)
{
	return jail_prepare_dir(n, e);
}

static int inproc_discard(const struct jail_names *n, struct err *e)
{
	return jail_discard(n, e);
}

const struct vm_launcher vm_launcher_inproc = {
	.name = "in-process",
	.spawn = inproc_spawn,
	.kill = inproc_kill,
	.destroy = inproc_destroy,
	.prepare_dir = inproc_prepare_dir,
	.net_reserve = jail_net_reserve,
	.discard = inproc_discard,
	.scratch_create = inproc_scratch_create,
	.connect = inproc_connect,
	.open_read = inproc_open_read,
};

/* ---- the handle ---- */

void vm_launch_config(const struct vm_launch_plan *plan, const struct jail_names *names,
		      struct jail_config *jc)
{
	*jc = (struct jail_config){
		.names = names,
		.argv = (char *const *)plan->argv,
		.binds = plan->binds,
		.n_binds = plan->n_binds,
		.seccomp = plan->seccomp,
		.kvm_node = plan->kvm_node,
		.memory_max_bytes = plan->memory_max_bytes,
		.cpu_percent = plan->cpu_percent,
		.fsize_max_bytes = plan->fsize_max_bytes,
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1,
	};
}

int vm_launch_start(uv_loop_t *loop, struct jail_config *cfg,
		    const struct vm_launch_events *ev, void *ctx, struct vm_launch **out,
		    struct err *e)
{
	int errpipe[2] = { -1, -1 };
	struct vm_launch *l = calloc(1, sizeof(*l));
	if (!l)
		return err_set(e, -ENOMEM, "out of memory");
	l->has_pipe = cfg->stderr_fd < 0;
	if (l->has_pipe && pipe2(errpipe, O_CLOEXEC) < 0) {
		free(l);
		return err_set(e, -errno, "pipe: %s", strerror(errno));
	}
	l->loop = loop;
	l->ops = launcher_current;
	l->ev = *ev;
	l->ctx = ctx;
	l->pidfd = -1;
	l->pid = -1;
	l->stderr_w = -1;
	l->phase = L_SPAWNING;
	uv_timer_init(loop, &l->anchor);
	l->anchor.data = l;
	l->handles_open = 1;
	buf_init(&l->stderr_tail, VM_LAUNCH_STDERR_KEEP);
	/* The spawn reads cfg on another thread or serializes it; stderr_fd is the
	 * only field we set. */
	l->cfg = cfg;
	snprintf(l->id, sizeof(l->id), "%s", cfg->names ? cfg->names->id : "?");
	if (l->has_pipe) {
		l->stderr_w = errpipe[1];
		cfg->stderr_fd = errpipe[1];
		uv_pipe_init(loop, &l->stderr_pipe, 0);
		l->stderr_pipe.data = l;
		l->handles_open++;
		uv_pipe_open(&l->stderr_pipe, errpipe[0]);
		uv_read_start((uv_stream_t *)&l->stderr_pipe, launch_stderr_alloc, launch_on_stderr);
	}
	int rc = l->ops->spawn(l, cfg, e);
	if (rc < 0) {
		if (l->has_pipe) {
			close(errpipe[1]);
			cfg->stderr_fd = -1;
		}
		l->stderr_w = -1;
		launch_close_handles(l);
		return rc;
	}
	*out = l;
	return 0;
}

void vm_launch_kill(struct vm_launch *l)
{
	if (l && l->phase == L_RUNNING && l->pid > 0)
		l->ops->kill(l);
}

static void launch_release_now(struct vm_launch *l)
{
	l->phase = L_RELEASING;
	if (!l->spawned_ok) {
		launch_close_handles(l);
		return;
	}
	l->ops->destroy(l);
}

void vm_launch_release(struct vm_launch *l, void (*done)(void *ctx, const struct err *e), void *ctx)
{
	if (!l)
		return;
	l->released = done;
	l->released_ctx = ctx;
	l->ev.started = NULL;
	l->ev.exited = NULL;
	if (l->phase == L_SPAWNING) {
		l->release_wanted = 1;
		return;
	}
	launch_release_now(l);
}
