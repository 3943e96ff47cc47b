/* The launcher: see launch.h.
 *
 * Phases: SPAWNING (jail_spawn on a pool thread) -> RUNNING (pidfd watched) ->
 * EXITED (reaped on the loop with jail_poll) -> RELEASING (jail_destroy on a pool
 * thread, handles closing) -> freed. A release that arrives while the spawn is
 * still on the pool waits for it: a thread-pool job cannot be recalled once it
 * runs, and the VMM it makes must not be left behind. */
#include "vm/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "vm/vm.h"

enum launch_phase { L_SPAWNING, L_RUNNING, L_EXITED, L_FAILED, L_RELEASING };

struct vm_launch {
	uv_loop_t *loop;
	enum launch_phase phase;
	struct vm_launch_events ev;
	void *ctx;
	struct jail_config *cfg;       /* borrowed until the spawn job is done */
	char id[JAIL_ID_MAX + 1];
	struct jail *jail;
	pid_t pid;
	int status;
	int stderr_w;                  /* the VMM's end, closed once spawned */
	int pidfd;
	uv_work_t work;
	uv_poll_t pid_watch;
	uv_pipe_t stderr_pipe;
	int handles_open;
	int watching;
	struct buf stderr_tail;
	char stderr_text[VM_LAUNCH_STDERR_KEEP + 1];
	struct err spawn_err;
	struct err cleanup_err;
	struct jail_exit final_exit;   /* filled by jail_destroy (status -1: already reported) */
	int release_wanted;
	void (*released)(void *ctx, const struct err *e);
	void *released_ctx;
	double spawn_ms;
};

static void launch_release_now(struct vm_launch *l);

pid_t vm_launch_pid(const struct vm_launch *l)
{
	return l && l->phase == L_RUNNING ? l->pid : 0;
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
	if (uv_fileno((uv_handle_t *)&l->stderr_pipe, &fd) < 0)
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

static void launch_on_pidfd(uv_poll_t *p, int status, int events)
{
	struct vm_launch *l = p->data;
	(void)status;
	(void)events;
	struct jail_exit x;
	if (l->phase != L_RUNNING || jail_poll(l->jail, &x) != 1)
		return;
	uv_poll_stop(&l->pid_watch);
	vm_audit_vmm_exit(l->id, l->pid, &x);
	l->phase = L_EXITED;
	l->status = x.status;
	int st = x.status;
	launch_drain_stderr(l);
	if (l->ev.exited)
		l->ev.exited(l, st, l->ctx);
}

static void launch_spawn_job(uv_work_t *w)
{
	struct vm_launch *l = w->data;
	double t0 = (double)uv_hrtime() / 1e6;
	if (jail_spawn(l->cfg, &l->pid, &l->jail, &l->spawn_err) < 0)
		l->jail = NULL;
	l->spawn_ms = (double)uv_hrtime() / 1e6 - t0;
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

static void launch_close_handles(struct vm_launch *l)
{
	if (l->watching) {
		uv_poll_stop(&l->pid_watch);
		uv_close((uv_handle_t *)&l->pid_watch, launch_handle_closed);
	}
	uv_close((uv_handle_t *)&l->stderr_pipe, launch_handle_closed);
}

static void launch_on_spawned(uv_work_t *w, int status)
{
	struct vm_launch *l = w->data;
	(void)status;
	close(l->stderr_w);
	l->stderr_w = -1;
	l->cfg = NULL;
	if (!l->jail) {
		l->phase = L_FAILED;
	} else {
		log_debug("%s: jail_spawn took %.1f ms (thread pool)", l->id, l->spawn_ms);
		l->pidfd = (int)syscall(SYS_pidfd_open, l->pid, 0);
		if (l->pidfd < 0) {
			err_set(&l->spawn_err, -errno, "pidfd_open: %s (hint: needs Linux 5.3 or later)",
				strerror(errno));
			l->phase = L_FAILED;
		} else {
			uv_poll_init(l->loop, &l->pid_watch, l->pidfd);
			l->pid_watch.data = l;
			l->handles_open++;
			l->watching = 1;
			uv_poll_start(&l->pid_watch, UV_READABLE, launch_on_pidfd);
			l->phase = L_RUNNING;
		}
	}
	if (l->release_wanted) {
		launch_release_now(l);
		return;
	}
	if (l->ev.started)
		l->ev.started(l, l->phase == L_FAILED ? &l->spawn_err : NULL, l->ctx);
}

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
	int errpipe[2];
	struct vm_launch *l = calloc(1, sizeof(*l));
	if (!l)
		return err_set(e, -ENOMEM, "out of memory");
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		free(l);
		return err_set(e, -errno, "pipe: %s", strerror(errno));
	}
	l->loop = loop;
	l->ev = *ev;
	l->ctx = ctx;
	l->pidfd = -1;
	l->pid = -1;
	l->phase = L_SPAWNING;
	buf_init(&l->stderr_tail, VM_LAUNCH_STDERR_KEEP);
	/* The job reads cfg on another thread; stderr_fd is the only field we set. */
	l->cfg = cfg;
	snprintf(l->id, sizeof(l->id), "%s", cfg->names ? cfg->names->id : "?");
	l->stderr_w = errpipe[1];
	cfg->stderr_fd = errpipe[1];
	uv_pipe_init(loop, &l->stderr_pipe, 0);
	l->stderr_pipe.data = l;
	l->handles_open = 1;
	uv_pipe_open(&l->stderr_pipe, errpipe[0]);
	uv_read_start((uv_stream_t *)&l->stderr_pipe, launch_stderr_alloc, launch_on_stderr);
	l->work.data = l;
	int rc = uv_queue_work(loop, &l->work, launch_spawn_job, launch_on_spawned);
	if (rc < 0) {
		close(errpipe[1]);
		uv_close((uv_handle_t *)&l->stderr_pipe, launch_handle_closed);
		return err_set(e, rc, "queueing the VMM's start: %s", uv_strerror(rc));
	}
	*out = l;
	return 0;
}

void vm_launch_kill(struct vm_launch *l)
{
	if (l && l->phase == L_RUNNING && l->pid > 0)
		kill(l->pid, SIGKILL);
}

static void launch_destroy_job(uv_work_t *w)
{
	struct vm_launch *l = w->data;
	/* Kills the VMM if it still runs, reaps it, removes every kernel object. */
	jail_destroy(l->jail, &l->final_exit, &l->cleanup_err);
	l->jail = NULL;
}

static void launch_on_destroyed(uv_work_t *w, int status)
{
	struct vm_launch *l = w->data;
	(void)status;
	/* On the loop thread: the audit log is not the pool's to write. */
	vm_audit_vmm_exit(l->id, l->pid, &l->final_exit);
	launch_close_handles(l);
}

static void launch_release_now(struct vm_launch *l)
{
	l->phase = L_RELEASING;
	if (l->watching)
		uv_poll_stop(&l->pid_watch);
	if (!l->jail) {
		launch_close_handles(l);
		return;
	}
	l->work.data = l;
	if (uv_queue_work(l->loop, &l->work, launch_destroy_job, launch_on_destroyed) < 0) {
		/* No pool: do it here rather than leave a VMM behind. */
		launch_destroy_job(&l->work);
		launch_on_destroyed(&l->work, 0);
	}
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
