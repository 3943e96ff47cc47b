/* QEMU state save/load over QMP with a passed descriptor: see snapshot_qemu.h.
 *
 * One operation is a short chain of QMP commands, one outstanding at a time:
 *   save:  stop, migrate-set-parameters (no bandwidth cap: the default 32 MiB/s
 *          would make an 88 MiB stream take three seconds), getfd, migrate,
 *          then query-migrate every QEMU_SNAP_POLL_MS until it completes;
 *   load:  getfd, migrate-incoming, query-migrate until it completes, cont.
 *          The cont must come after the load: QEMU restores the saved run
 *          state (paused, as it was saved), whatever `cont` said before.
 * The operation owns a timer and counts its commands in flight; it is freed
 * when it is finished, no command is in flight and the timer is closed, so a
 * cancel in the middle (the VM destroyed) never frees memory a callback still
 * holds. */
#include "vm/snapshot_qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define QEMU_SNAP_POLL_MS 10
#define QEMU_SNAP_FDNAME "ironclaw-state"

enum snap_step { SNAP_STOP, SNAP_PARAMS, SNAP_GETFD, SNAP_CONT, SNAP_MIGRATE, SNAP_POLL, SNAP_DONE };

struct qemu_snap {
	uv_loop_t *loop;
	struct qmp **qmpp;
	const char *qmp_path;
	int incoming;
	int fd;                  /* the state file until handed to QEMU, else -1 */
	const enum snap_step *steps;  /* the chain, ending with SNAP_DONE */
	size_t at;
	enum snap_step step;
	vm_backend_cb done;
	void *ctx;
	int in_flight;           /* QMP commands not answered yet */
	int finished;
	int timer_open;
	uv_timer_t timer;
	uint64_t started_ms;
};

static const enum snap_step snap_save_steps[] = { SNAP_STOP, SNAP_PARAMS, SNAP_GETFD, SNAP_MIGRATE,
						   SNAP_POLL, SNAP_DONE };
static const enum snap_step snap_load_steps[] = { SNAP_GETFD, SNAP_MIGRATE, SNAP_POLL, SNAP_CONT,
						   SNAP_DONE };

static void snap_next(struct qemu_snap *s);

static void snap_maybe_free(struct qemu_snap *s)
{
	if (s->finished && s->in_flight == 0 && !s->timer_open)
		free(s);
}

static void snap_timer_closed(uv_handle_t *h)
{
	struct qemu_snap *s = h->data;
	s->timer_open = 0;
	snap_maybe_free(s);
}

static void snap_finish(struct qemu_snap *s, const struct err *e)
{
	if (s->finished)
		return;
	s->finished = 1;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, snap_timer_closed);
	vm_backend_cb done = s->done;
	s->done = NULL;
	if (done)
		done(s->ctx, e);
	snap_maybe_free(s);
}

static void snap_fail(struct qemu_snap *s, int code, const char *msg)
{
	struct err e = { 0 };
	err_set(&e, code, "%s", msg);
	snap_finish(s, &e);
}

static void snap_on_timer(uv_timer_t *t)
{
	snap_next(t->data);
}

/* Before the first reply, a failed QMP connect means QEMU has not made its
 * socket yet: open a new session a little later. */
static int snap_retry_connect(struct qemu_snap *s, const struct err *e)
{
	if (s->at != 0 || (e->code != -ENOENT && e->code != -ECONNREFUSED))
		return 0;
	uv_update_time(s->loop);
	if (uv_now(s->loop) - s->started_ms > QEMU_SNAP_QMP_RETRY_MS)
		return 0;
	qmp_close(*s->qmpp);
	*s->qmpp = NULL;
	uv_timer_start(&s->timer, snap_on_timer, QEMU_SNAP_POLL_MS, 0);
	return 1;
}

static int snap_status(struct qemu_snap *s, json_t *result)
{
	const char *status = json_string_value(json_object_get(result, "status"));
	if (!status)
		return 0;
	if (!strcmp(status, "completed"))
		return 1;
	if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
		const char *why = json_string_value(json_object_get(result, "error-desc"));
		char msg[300];
		snprintf(msg, sizeof(msg), "QEMU could not %s the VM state: %.200s",
			 s->incoming ? "load" : "save", why ? why : status);
		snap_fail(s, -EIO, msg);
		return -1;
	}
	return 0;
}

static void snap_on_reply(struct qmp *q, json_t *result, const struct err *e, void *ctx)
{
	struct qemu_snap *s = ctx;
	(void)q;
	s->in_flight--;
	if (s->finished) {
		snap_maybe_free(s);
		return;
	}
	if (e) {
		if (snap_retry_connect(s, e))
			return;
		struct err w = *e;
		err_wrap(&w, s->incoming ? "restoring the VM state" : "saving the VM state");
		snap_finish(s, &w);
		return;
	}
	if (s->step == SNAP_POLL) {
		int st = snap_status(s, result);
		if (st < 0)
			return;
		if (st == 0) {
			uv_update_time(s->loop);
			if (uv_now(s->loop) - s->started_ms > QEMU_SNAP_SAVE_TIMEOUT_MS) {
				snap_fail(s, -ETIMEDOUT,
					  s->incoming ? "loading the VM state took over 120 s; giving up"
						      : "saving the VM state took over 120 s; giving up "
							"(hint: a smaller --memory saves faster)");
				return;
			}
			uv_timer_start(&s->timer, snap_on_timer, QEMU_SNAP_POLL_MS, 0);
			return;
		}
	}
	s->step = s->steps[++s->at];
	snap_next(s);
}

static int snap_send(struct qemu_snap *s, const char *cmd, json_t *args, int fd)
{
	if (!*s->qmpp) {
		struct err e = { 0 };
		if (qmp_open(s->loop, s->qmp_path, s->qmpp, &e) < 0) {
			json_decref(args);
			if (fd >= 0)
				close(fd);
			return e.code;
		}
	}
	s->in_flight++;
	int rc = qmp_execute_fd(*s->qmpp, cmd, args, fd, snap_on_reply, s);
	if (rc < 0)
		s->in_flight--;
	return rc;
}

static void snap_next(struct qemu_snap *s)
{
	int rc = 0;
	const char *cmd = "";
	switch (s->step) {
	case SNAP_STOP:
		rc = snap_send(s, cmd = "stop", NULL, -1);
		break;
	case SNAP_PARAMS:
		rc = snap_send(s, cmd = "migrate-set-parameters",
			       json_pack("{s:I}", "max-bandwidth", (json_int_t)INT64_MAX / 2), -1);
		break;
	case SNAP_GETFD: {
		/* QMP owns the copy it sends; ours stays for a retry after a reconnect. */
		int copy = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
		if (copy < 0) {
			rc = -errno;
			break;
		}
		rc = snap_send(s, cmd = "getfd", json_pack("{s:s}", "fdname", QEMU_SNAP_FDNAME), copy);
		break;
	}
	case SNAP_CONT:
		rc = snap_send(s, cmd = "cont", NULL, -1);
		break;
	case SNAP_MIGRATE:
		rc = snap_send(s, cmd = s->incoming ? "migrate-incoming" : "migrate",
			       json_pack("{s:s}", "uri", "fd:" QEMU_SNAP_FDNAME), -1);
		break;
	case SNAP_POLL:
		rc = snap_send(s, cmd = "query-migrate", NULL, -1);
		break;
	case SNAP_DONE:
		log_debug("VM state %s after %llu ms", s->incoming ? "handed to QEMU" : "saved",
			  (unsigned long long)(uv_now(s->loop) - s->started_ms));
		snap_finish(s, NULL);
		return;
	}
	if (rc < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "sending QMP %s to QEMU failed: %s", cmd, strerror(-rc));
		snap_fail(s, rc, msg);
	}
}

static int snap_start(uv_loop_t *loop, struct qmp **qmpp, const char *qmp_path, int fd,
		      int incoming, vm_backend_cb done, void *ctx, struct qemu_snap **out)
{
	struct qemu_snap *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	*s = (struct qemu_snap){ .loop = loop, .qmpp = qmpp, .qmp_path = qmp_path, .fd = fd,
				 .incoming = incoming, .done = done, .ctx = ctx, .timer_open = 1,
				 .steps = incoming ? snap_load_steps : snap_save_steps };
	s->step = s->steps[0];
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	uv_update_time(loop);
	s->started_ms = uv_now(loop);
	*out = s;
	snap_next(s);
	return 0;
}

int qemu_snap_save(uv_loop_t *loop, struct qmp **qmpp, const char *qmp_path, const char *path,
		   vm_backend_cb done, void *ctx, struct qemu_snap **out, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, -errno, "creating the VM state file %s: %s", path, strerror(errno));
	int rc = snap_start(loop, qmpp, qmp_path, fd, 0, done, ctx, out);
	return rc < 0 ? err_set(e, rc, "out of memory") : 0;
}

int qemu_snap_load(uv_loop_t *loop, struct qmp **qmpp, const char *qmp_path, const char *path,
		   vm_backend_cb done, void *ctx, struct qemu_snap **out, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "opening the VM state file %s: %s", path, strerror(errno));
	int rc = snap_start(loop, qmpp, qmp_path, fd, 1, done, ctx, out);
	return rc < 0 ? err_set(e, rc, "out of memory") : 0;
}

void qemu_snap_cancel(struct qemu_snap *s)
{
	if (!s)
		return;
	s->done = NULL;
	snap_finish(s, NULL);
}
