/* QMP client: see qmp.h.
 *
 * One uv_pipe to QEMU's QMP socket, one capped line buffer, a FIFO of commands.
 * QMP answers in order, and we tag each command with an id anyway and check it, so a
 * reply can never be matched to the wrong command. A deadline timer runs while a
 * command is outstanding: QEMU busy or wedged must not hold the caller. */
#include "vm/qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "vm/launch.h"

enum qmp_phase { QMP_CONNECTING, QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_DEAD };

struct qmp_cmd {
	struct qmp_cmd *next;
	long id;
	char *line;              /* owned, newline-terminated JSON */
	qmp_reply_cb cb;
	void *ctx;
	int sent;
	int fd;                  /* owned; passed with the line (SCM_RIGHTS), or -1 */
};

struct qmp {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	uv_connect_t connect_req;
	uv_timer_t deadline;
	enum qmp_phase phase;
	int handles_open;
	int closing;
	long next_id;
	struct buf line;
	struct qmp_cmd *head, *tail;
	struct err dead_why;
	int connect_status;     /* a failed connect, reported on the next loop turn */
};

struct qmp_write {
	uv_write_t req;
	char *data;
};

static void qmp_handle_closed(uv_handle_t *h)
{
	struct qmp *q = h->data;
	if (--q->handles_open > 0)
		return;
	buf_free(&q->line);
	free(q);
}

static void qmp_finish_cmd(struct qmp *q, json_t *result, const struct err *e)
{
	struct qmp_cmd *c = q->head;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	uv_timer_stop(&q->deadline);
	if (c->cb)
		c->cb(q, result, e, c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c->line);
	free(c);
}

/* The session is over: every command still queued fails with the reason. */
static void qmp_die(struct qmp *q, const struct err *why)
{
	if (q->phase == QMP_DEAD)
		return;
	q->phase = QMP_DEAD;
	q->dead_why = *why;
	uv_read_stop((uv_stream_t *)&q->pipe);
	uv_timer_stop(&q->deadline);
	while (q->head)
		qmp_finish_cmd(q, NULL, why);
}

static void qmp_on_written(uv_write_t *req, int status)
{
	struct qmp_write *w = (struct qmp_write *)req;
	(void)status; /* a failed write shows up as EOF or the deadline */
	free(w->data);
	free(w);
}

static int qmp_send_line(struct qmp *q, const char *line)
{
	struct qmp_write *w = calloc(1, sizeof(*w));
	char *copy = strdup(line);
	if (!w || !copy) {
		free(w);
		free(copy);
		return -ENOMEM;
	}
	w->data = copy;
	uv_buf_t b = uv_buf_init(copy, (unsigned)strlen(copy));
	int rc = uv_write(&w->req, (uv_stream_t *)&q->pipe, &b, 1, qmp_on_written);
	if (rc < 0) {
		free(copy);
		free(w);
	}
	return rc;
}

/* QMP's getfd takes the descriptor from the message that carries the command,
 * which libuv's writes cannot attach to a non-IPC pipe. Commands go one at a
 * time and the previous one was answered, so libuv's write queue is empty and
 * writing the short line directly keeps the order. The socket is non-blocking;
 * a line under 200 bytes into an idle socket does not meet EAGAIN, and if it
 * did the command fails rather than waits. */
static int qmp_send_line_fd(struct qmp *q, struct qmp_cmd *c)
{
	uv_os_fd_t sock;
	if (uv_stream_get_write_queue_size((uv_stream_t *)&q->pipe) != 0)
		return UV_EAGAIN;
	if (uv_fileno((uv_handle_t *)&q->pipe, &sock) < 0)
		return UV_EBADF;
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov = { .iov_base = c->line, .iov_len = strlen(c->line) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != iov.iov_len)
		return UV_EAGAIN;
	close(c->fd);   /* QEMU holds its own copy now */
	c->fd = -1;
	return 0;
}

static void qmp_on_deadline(uv_timer_t *t)
{
	struct qmp *q = t->data;
	struct err e = { 0 };
	err_set(&e, -ETIMEDOUT, "QEMU did not answer QMP within %d ms", QMP_TIMEOUT_MS);
	qmp_die(q, &e);
}

/* Sends the head command when the session is ready and nothing is outstanding. */
static void qmp_pump(struct qmp *q)
{
	if (q->phase != QMP_READY || !q->head || q->head->sent)
		return;
	struct qmp_cmd *c = q->head;
	c->sent = 1;
	uv_timer_start(&q->deadline, qmp_on_deadline, QMP_TIMEOUT_MS, 0);
	int rc = c->fd >= 0 ? qmp_send_line_fd(q, c) : qmp_send_line(q, c->line);
	if (rc < 0) {
		struct err e = { 0 };
		err_set(&e, rc, "writing to QMP: %s", uv_strerror(rc));
		qmp_die(q, &e);
	}
}

static int qmp_on_line(struct qmp *q, const char *line, size_t len, struct err *e)
{
	json_error_t je;
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, -EPROTO, "QEMU sent a QMP line that is not a JSON object");
	}
	int rc = 0;
	if (q->phase == QMP_GREETING) {
		if (!json_object_get(j, "QMP")) {
			rc = err_set(e, -EPROTO, "QEMU's QMP greeting is missing");
		} else {
			q->phase = QMP_NEGOTIATING;
			uv_timer_start(&q->deadline, qmp_on_deadline, QMP_TIMEOUT_MS, 0);
			rc = qmp_send_line(q, "{\"execute\":\"qmp_capabilities\"}\n");
			if (rc < 0)
				err_set(e, rc, "writing to QMP: %s", uv_strerror(rc));
		}
	} else if (json_object_get(j, "event")) {
		/* Asynchronous events (SHUTDOWN, STOP, ...): the VMM's exit tells us more. */
	} else if (q->phase == QMP_NEGOTIATING) {
		if (!json_object_get(j, "return")) {
			rc = err_set(e, -EPROTO, "QEMU refused QMP capabilities negotiation");
		} else {
			uv_timer_stop(&q->deadline);
			q->phase = QMP_READY;
		}
	} else if (q->phase == QMP_READY && q->head && q->head->sent) {
		json_t *id = json_object_get(j, "id");
		json_t *ret = json_object_get(j, "return");
		json_t *error = json_object_get(j, "error");
		if (!json_is_integer(id) || json_integer_value(id) != q->head->id) {
			rc = err_set(e, -EPROTO, "QEMU answered a QMP command we did not send");
		} else if (error) {
			const char *desc = json_string_value(json_object_get(error, "desc"));
			struct err ce = { 0 };
			err_set(&ce, -EIO, "QMP %s", desc ? desc : "error without a description");
			qmp_finish_cmd(q, NULL, &ce);
		} else if (ret) {
			qmp_finish_cmd(q, ret, NULL);
		} else {
			rc = err_set(e, -EPROTO, "QEMU sent a QMP reply without return or error");
		}
	} else {
		rc = err_set(e, -EPROTO, "QEMU sent an unexpected QMP reply");
	}
	json_decref(j);
	if (rc == 0)
		qmp_pump(q);
	return rc;
}

static void qmp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	static char scratch[8192]; /* consumed synchronously in qmp_on_read */
	*b = uv_buf_init(scratch, sizeof(scratch));
}

static void qmp_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct qmp *q = s->data;
	struct err e = { 0 };
	if (q->phase == QMP_DEAD)
		return;
	if (n < 0) {
		err_set(&e, (int)n, "QMP connection: %s", n == UV_EOF ? "QEMU closed it" : uv_strerror((int)n));
		qmp_die(q, &e);
		return;
	}
	const char *p = b->base, *end = b->base + n;
	while (p < end && q->phase != QMP_DEAD) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (buf_append(&q->line, p, take) < 0) {
			err_set(&e, -EMSGSIZE, "QEMU sent a QMP line over %u bytes", QMP_LINE_MAX);
			qmp_die(q, &e);
			return;
		}
		p += take;
		if (!nl)
			break;
		p++;
		int rc = qmp_on_line(q, (const char *)q->line.data, q->line.len, &e);
		buf_reset(&q->line);
		if (rc < 0) {
			qmp_die(q, &e);
			return;
		}
	}
}

static void qmp_on_connect(uv_connect_t *req, int status)
{
	struct qmp *q = req->data;
	struct err e = { 0 };
	if (q->phase == QMP_DEAD)
		return;
	if (status < 0) {
		err_set(&e, status, "connecting to QMP: %s", uv_strerror(status));
		qmp_die(q, &e);
		return;
	}
	q->phase = QMP_GREETING;
	uv_timer_start(&q->deadline, qmp_on_deadline, QMP_TIMEOUT_MS, 0);
	int rc = uv_read_start((uv_stream_t *)&q->pipe, qmp_alloc, qmp_on_read);
	if (rc < 0) {
		err_set(&e, rc, "reading QMP: %s", uv_strerror(rc));
		qmp_die(q, &e);
	}
}

static void qmp_on_connect_failed(uv_timer_t *t)
{
	struct qmp *q = t->data;
	qmp_on_connect(&q->connect_req, q->connect_status);
}

int qmp_open(uv_loop_t *loop, const char *path, struct qmp **out, struct err *e)
{
	struct qmp *q = calloc(1, sizeof(*q));
	if (!q)
		return err_set(e, -ENOMEM, "out of memory");
	q->loop = loop;
	q->next_id = 1;
	buf_init(&q->line, QMP_LINE_MAX);
	uv_pipe_init(loop, &q->pipe, 0);
	q->pipe.data = q;
	uv_timer_init(loop, &q->deadline);
	q->deadline.data = q;
	q->handles_open = 2;
	q->connect_req.data = q;
	/* Through the launcher: the socket is the VM uid's (serve's privileged
	 * parent connects for us). A Unix connect answers at once; a failure is
	 * still reported on the next loop turn, as uv_pipe_connect did, so that
	 * commands queued meanwhile fail through their callbacks (where callers
	 * retry a socket QEMU has not made yet). */
	int fd = vm_launcher_get()->connect(path), rc = fd;
	if (fd >= 0 && (rc = uv_pipe_open(&q->pipe, fd)) < 0)
		close(fd);
	if (rc < 0) {
		q->connect_status = rc;
		uv_timer_start(&q->deadline, qmp_on_connect_failed, 0, 0);
	} else {
		qmp_on_connect(&q->connect_req, 0);
	}
	*out = q;
	return 0;
}

int qmp_execute(struct qmp *q, const char *cmd, json_t *args, qmp_reply_cb cb, void *ctx)
{
	return qmp_execute_fd(q, cmd, args, -1, cb, ctx);
}

int qmp_execute_fd(struct qmp *q, const char *cmd, json_t *args, int fd, qmp_reply_cb cb,
		   void *ctx)
{
	if (q->phase == QMP_DEAD || q->closing) {
		json_decref(args);
		if (fd >= 0)
			close(fd);
		return q->dead_why.code ? q->dead_why.code : -ENOTCONN;
	}
	struct qmp_cmd *c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(args);
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->id = q->next_id++;
	json_t *msg = json_pack("{s:s,s:I}", "execute", cmd, "id", (json_int_t)c->id);
	if (msg && args)
		json_object_set(msg, "arguments", args);
	json_decref(args);
	char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (!text || asprintf(&c->line, "%s\n", text) < 0) {
		free(text);
		if (fd >= 0)
			close(fd);
		free(c);
		return -ENOMEM;
	}
	free(text);
	c->cb = cb;
	c->ctx = ctx;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	qmp_pump(q);
	return 0;
}

void qmp_close(struct qmp *q)
{
	if (!q || q->closing)
		return;
	struct err e = { 0 };
	err_set(&e, -ECANCELED, "QMP session closed");
	qmp_die(q, &e);
	q->closing = 1;
	uv_close((uv_handle_t *)&q->pipe, qmp_handle_closed);
	uv_close((uv_handle_t *)&q->deadline, qmp_handle_closed);
}
