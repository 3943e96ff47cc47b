/* Host channel: see channel.h.
 *
 * Lifetime: the struct is freed only from the close callbacks of its libuv
 * handles (the stream and the deadline timer), so
 * callbacks already queued by libuv never touch freed memory. A `closing` flag
 * stops all delivery the moment an error is seen.
 *
 * Deadlines: each pending request records when its reply is due; one timer is
 * armed for the earliest. The table is a short list (a handful of requests in
 * flight), so a linear scan per change is cheaper than any heap. */
#include "vm/channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/msg.h"
#include "proto/rpc.h"

#define CHANNEL_METHOD_MAX 32

enum { PIPE_NONE, PIPE_OPEN, PIPE_CLOSING };

struct pending {
	long id;
	char method[CHANNEL_METHOD_MAX];
	uint64_t due;           /* uv_now ms; 0: no deadline */
	channel_reply_cb cb;
	void *ctx;
	struct pending *next;
};

struct channel {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	uv_timer_t deadline_timer;
	int pipe_state;         /* PIPE_NONE, PIPE_OPEN or PIPE_CLOSING */
	int handles_open;       /* handles not yet closed; free when it reaches 0 */
	int connected;
	int closing;
	unsigned reply_timeout_ms;
	struct channel_handlers h;
	void *ctx;
	struct frame_decoder decoder;
	struct pending *pending;
	long next_id;
	size_t backlog;
	char *rbuf;             /* CHANNEL_READ_BUF bytes, one per channel */
	int rbuf_busy;          /* libuv holds rbuf between alloc and read */
};

struct write_req {
	uv_write_t req;
	struct channel *ch;
	uint8_t *data;
	size_t len;
};

static void channel_handle_closed(uv_handle_t *handle)
{
	struct channel *ch = handle->data;
	if (handle == (uv_handle_t *)&ch->pipe)
		ch->pipe_state = PIPE_NONE;
	if (--ch->handles_open == 0) {
		frame_decoder_free(&ch->decoder);
		free(ch->rbuf);
		free(ch);
	}
}

static void channel_flush_pending(struct channel *ch)
{
	struct pending *p = ch->pending;
	ch->pending = NULL;
	while (p) {
		struct pending *next = p->next;
		if (p->cb)
			p->cb(ch, NULL, NULL, p->ctx);
		free(p);
		p = next;
	}
}

static void channel_fail(struct channel *ch, struct err *e)
{
	if (ch->closing)
		return;
	ch->closing = 1;
	uv_timer_stop(&ch->deadline_timer);
	if (ch->pipe_state == PIPE_OPEN)
		uv_read_stop((uv_stream_t *)&ch->pipe);
	if (ch->h.on_error)
		ch->h.on_error(ch, e, ch->ctx);
	channel_flush_pending(ch);
}

static void channel_on_deadline(uv_timer_t *t);

/* Arms the deadline timer for the earliest pending reply, or stops it. */
static void channel_arm_deadline(struct channel *ch)
{
	uint64_t first = 0;
	for (struct pending *p = ch->pending; p; p = p->next)
		if (p->due && (!first || p->due < first))
			first = p->due;
	if (!first || ch->closing) {
		uv_timer_stop(&ch->deadline_timer);
		return;
	}
	uint64_t now = uv_now(ch->loop);
	uv_timer_start(&ch->deadline_timer, channel_on_deadline, first > now ? first - now : 0, 0);
}

static void channel_on_deadline(uv_timer_t *t)
{
	struct channel *ch = t->data;
	uint64_t now = uv_now(ch->loop);
	for (struct pending *p = ch->pending; p; p = p->next) {
		if (p->due && p->due <= now) {
			struct err e = { 0 };
			err_set(&e, -ETIMEDOUT, "the guest did not answer %s within %.0f s; "
				"giving up on the VM", p->method, ch->reply_timeout_ms / 1000.0);
			channel_fail(ch, &e);
			return;
		}
	}
	channel_arm_deadline(ch);
}

static int channel_on_response(struct channel *ch, const struct rpc_msg *m, struct err *e)
{
	char why[256];
	struct pending **pp = &ch->pending;
	while (*pp && (*pp)->id != m->id)
		pp = &(*pp)->next;
	if (!*pp)
		return err_set(e, -EPROTO, "guest answered request id %lld, which was never sent",
			       (long long)m->id);
	struct pending *p = *pp;
	if (m->result ? proto_check_result(p->method, m->result, why, sizeof(why)) < 0
		      : proto_check_error(m->error, why, sizeof(why)) < 0)
		return err_set(e, -EPROTO, "guest sent a bad reply to %s: %s", p->method, why);
	*pp = p->next;
	if (p->cb)
		p->cb(ch, m->result, m->error, p->ctx);
	free(p);
	if (!ch->closing)
		channel_arm_deadline(ch);
	return 0;
}

static int channel_on_frame(json_t *msg, void *arg)
{
	struct channel *ch = arg;
	struct err e = { 0 };
	struct rpc_msg m;
	char why[256];
	int rc;
	if (ch->closing)
		return -ECANCELED;
	if (rpc_parse(msg, &m, why, sizeof(why)) < 0) {
		rc = err_set(&e, -EPROTO, "guest sent an invalid JSON-RPC message: %s", why);
	} else if (m.kind == RPC_RESPONSE) {
		rc = channel_on_response(ch, &m, &e);
	} else if (m.kind == RPC_REQUEST) {
		rc = err_set(&e, -EPROTO, "guest sent a request (%.64s); the guest may only notify",
			     m.method);
	} else if (proto_check_notification(m.method, m.params, why, sizeof(why)) < 0) {
		rc = err_set(&e, -EPROTO, "guest sent a bad notification: %s", why);
	} else {
		rc = ch->h.notify ? ch->h.notify(ch, m.method, m.params, ch->ctx, &e) : 0;
	}
	if (rc < 0) {
		channel_fail(ch, &e);
		return rc;
	}
	return ch->closing ? -ECANCELED : 0;
}

static int channel_on_binary(const struct frame_bin *b, void *arg)
{
	struct channel *ch = arg;
	struct err e = { 0 };
	int rc;
	if (ch->closing)
		return -ECANCELED;
	if (b->type != FRAME_BIN_OUTPUT || !ch->h.data)
		rc = err_set(&e, -EPROTO, "guest sent a binary frame of type %u, which only the "
			     "host may send", b->type);
	else
		rc = ch->h.data(ch, b, ch->ctx, &e);
	if (rc < 0) {
		channel_fail(ch, &e);
		return rc;
	}
	return ch->closing ? -ECANCELED : 0;
}

static void channel_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct channel *ch = handle->data;
	(void)suggested;
	/* One buffer per channel: libuv reads into it and we consume it before the
	 * next alloc (the decoder copies what it keeps). */
	if (ch->rbuf_busy) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	ch->rbuf_busy = 1;
	*buf = uv_buf_init(ch->rbuf, CHANNEL_READ_BUF);
}

static void channel_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct channel *ch = stream->data;
	struct err e = { 0 };
	if (buf->base == ch->rbuf)
		ch->rbuf_busy = 0;
	if (nread > 0 && !ch->closing) {
		int rc = frame_decoder_feed(&ch->decoder, (const uint8_t *)buf->base, (size_t)nread,
					    channel_on_frame, ch);
		if (rc < 0 && !ch->closing) {
			err_set(&e, rc, "guest sent a bad frame: %s", ch->decoder.error);
			channel_fail(ch, &e);
		}
	} else if (nread < 0 && !ch->closing) {
		if (nread == UV_EOF)
			err_set(&e, -EPIPE, "guest closed the channel%s",
				frame_decoder_idle(&ch->decoder) ? "" : " in the middle of a frame");
		else
			err_set(&e, (int)nread, "reading the guest channel: %s", uv_strerror((int)nread));
		channel_fail(ch, &e);
	}
}

static struct channel *channel_new(uv_loop_t *loop, const struct channel_handlers *h, void *ctx)
{
	struct channel *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->rbuf = malloc(CHANNEL_READ_BUF);
	if (!ch->rbuf) {
		free(ch);
		return NULL;
	}
	ch->loop = loop;
	ch->h = *h;
	ch->ctx = ctx;
	ch->next_id = 1;
	ch->reply_timeout_ms = CHANNEL_REPLY_TIMEOUT_MS;
	frame_decoder_init(&ch->decoder);
	frame_decoder_accept_binary(&ch->decoder, channel_on_binary);
	uv_timer_init(loop, &ch->deadline_timer);
	ch->deadline_timer.data = ch;
	ch->handles_open = 1;
	return ch;
}

static int channel_start_reading(struct channel *ch, struct err *e)
{
	ch->connected = 1;
	int rc = uv_read_start((uv_stream_t *)&ch->pipe, channel_alloc, channel_on_read);
	if (rc < 0)
		return err_set(e, rc, "reading the guest channel: %s", uv_strerror(rc));
	return 0;
}

int channel_open_fd(uv_loop_t *loop, int fd, const struct channel_handlers *h, void *ctx,
		    struct channel **out, struct err *e)
{
	struct channel *ch = channel_new(loop, h, ctx);
	int rc;
	if (!ch) {
		close(fd);
		return err_set(e, -ENOMEM, "out of memory");
	}
	uv_pipe_init(loop, &ch->pipe, 0);
	ch->pipe.data = ch;
	ch->pipe_state = PIPE_OPEN;
	ch->handles_open++;
	rc = uv_pipe_open(&ch->pipe, fd);
	if (rc < 0) {
		close(fd);
		err_set(e, rc, "using fd %d as the guest channel: %s", fd, uv_strerror(rc));
	} else {
		rc = channel_start_reading(ch, e);
	}
	if (rc < 0) {
		channel_close(ch);
		return rc;
	}
	*out = ch;
	return 0;
}

void channel_set_reply_timeout(struct channel *ch, unsigned ms)
{
	ch->reply_timeout_ms = ms;
}

static void channel_on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct channel *ch = w->ch;
	ch->backlog -= w->len;
	free(w->data);
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		struct err e = { 0 };
		err_set(&e, status, "writing to the guest channel: %s", uv_strerror(status));
		channel_fail(ch, &e);
	}
}

/* Queues data (owned; freed on every path) as the request id expecting a reply
 * to method. */
static long channel_send(struct channel *ch, long id, const char *method, uint8_t *data,
			 size_t len, unsigned timeout_ms, channel_reply_cb cb, void *ctx)
{
	if (len > CHANNEL_WRITE_MAX - ch->backlog) {
		free(data);
		return -ENOBUFS;
	}
	struct pending *p = calloc(1, sizeof(*p));
	struct write_req *w = calloc(1, sizeof(*w));
	if (!p || !w) {
		free(p);
		free(w);
		free(data);
		return -ENOMEM;
	}
	w->ch = ch;
	w->data = data;
	w->len = len;
	uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)&ch->pipe, &buf, 1, channel_on_write);
	if (rc < 0) {
		free(p);
		free(w);
		free(data);
		return rc;
	}
	ch->backlog += len;
	p->id = id;
	snprintf(p->method, sizeof(p->method), "%s", method);
	p->due = timeout_ms ? uv_now(ch->loop) + timeout_ms : 0;
	p->cb = cb;
	p->ctx = ctx;
	p->next = ch->pending;
	ch->pending = p;
	if (p->due)
		channel_arm_deadline(ch);
	return id;
}

long channel_request(struct channel *ch, const char *method, json_t *params,
		     channel_reply_cb cb, void *ctx)
{
	if (ch->closing || !ch->connected) {
		json_decref(params);
		return -ENOTCONN;
	}
	long id = ch->next_id++;
	json_t *msg = rpc_request(id, method, params);
	size_t len;
	uint8_t *data = frame_encode(msg, &len);
	json_decref(msg);
	if (!data)
		return -EMSGSIZE;
	return channel_send(ch, id, method, data, len, ch->reply_timeout_ms, cb, ctx);
}

long channel_request_stdin(struct channel *ch, uint64_t exec, const void *data, size_t len,
			   int eof, channel_reply_cb cb, void *ctx)
{
	if (ch->closing || !ch->connected)
		return -ENOTCONN;
	long id = ch->next_id;
	struct frame_bin b = { .type = FRAME_BIN_STDIN, .arg = eof ? FRAME_BIN_EOF : 0,
			       .exec = exec, .id = (uint64_t)id, .len = len };
	uint8_t prefix[FRAME_BIN_PREFIX];
	if (frame_bin_header(&b, prefix) < 0)
		return -EMSGSIZE;
	uint8_t *frame = malloc(FRAME_BIN_PREFIX + len);
	if (!frame)
		return -ENOMEM;
	memcpy(frame, prefix, FRAME_BIN_PREFIX);
	if (len)
		memcpy(frame + FRAME_BIN_PREFIX, data, len);
	ch->next_id++;
	return channel_send(ch, id, "exec.stdin", frame, FRAME_BIN_PREFIX + len, 0, cb, ctx);
}

size_t channel_write_backlog(const struct channel *ch)
{
	return ch->backlog;
}

void channel_close(struct channel *ch)
{
	if (!ch)
		return;
	ch->closing = 1;
	channel_flush_pending(ch);
	uv_close((uv_handle_t *)&ch->deadline_timer, channel_handle_closed);
	if (ch->pipe_state == PIPE_OPEN) {
		ch->pipe_state = PIPE_CLOSING;
		uv_close((uv_handle_t *)&ch->pipe, channel_handle_closed);
	}
}
