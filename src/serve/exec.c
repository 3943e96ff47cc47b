/* POST /v1/sandboxes/{id}/exec: a command in a sandbox, its output streamed
 * to the client as NDJSON events while it runs (docs/api.yaml, ExecEvent).
 *
 * The response comes from a libmicrohttpd content reader fed from a capped
 * buffer. When the buffer is empty the reader suspends the connection; new
 * output (or the end) resumes it. A suspended connection is not polled by
 * MHD, so while suspended we watch its fd ourselves for a hang-up: a client
 * that goes away mid-exec gets its command killed (SIGKILL) at once, never
 * only when the next output happens to fail to send. A client that does not
 * read while the command floods output gets its command killed when the
 * buffer passes SERVE_EXEC_BUFFER_MAX: the daemon's memory is not the
 * client's to fill. Exit codes follow `ironclaw exec`. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "core/log.h"
#include "serve/internal.h"

struct exec_stream {
	struct serve *s;
	struct serve_req *r;       /* NULL once the request ended */
	struct serve_sandbox *sb;  /* valid until done (the VM aborts execs first) */
	struct vm_exec *x;         /* NULL after done */
	struct serve_exec_req req;
	struct buf out;            /* NDJSON not yet read by MHD */
	int ended;                 /* the last event is in out */
	int client_gone;
	int over;                  /* killed for an unread backlog */
	uv_poll_t hup;
	int hup_active, hup_open;
};

static void exec_maybe_free(struct exec_stream *st);

static void exec_hup_closed(uv_handle_t *h)
{
	struct exec_stream *st = h->data;
	st->hup_open = 0;
	exec_maybe_free(st);
}

static void exec_maybe_free(struct exec_stream *st)
{
	if (st->r || st->x)
		return;
	if (st->hup_open) {
		if (!uv_is_closing((uv_handle_t *)&st->hup))
			uv_close((uv_handle_t *)&st->hup, exec_hup_closed);
		return;
	}
	serve_exec_req_free(&st->req);
	buf_free(&st->out);
	free(st);
}

static void exec_hup_stop(struct exec_stream *st)
{
	if (st->hup_active) {
		st->hup_active = 0;
		uv_poll_stop(&st->hup);
	}
}

static void exec_wake(struct exec_stream *st)
{
	exec_hup_stop(st);
	if (st->r)
		serve_req_resume(st->r);
}

static void exec_emit(struct exec_stream *st, json_t *ev)
{
	char *line = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (!line)
		return;
	/* The last event always fits: the cap leaves room above the limit. */
	if (buf_append(&st->out, line, strlen(line)) == 0)
		buf_append(&st->out, "\n", 1);
	free(line);
	exec_wake(st);
}

static void exec_on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len,
			   void *ctx)
{
	struct exec_stream *st = ctx;
	if (!st->r || st->over)
		return;
	if (st->out.len + b64_encoded_len(len) > SERVE_EXEC_BUFFER_MAX) {
		log_warn("serve: exec in %s: the client left %zu bytes unread; killing the command",
			 st->sb->id, st->out.len);
		st->over = 1;
		vm_exec_kill(x, SIGKILL);
		return;
	}
	char *b = malloc(b64_encoded_len(len) + 1);
	if (!b)
		return;
	b64_encode(data, len, b);
	exec_emit(st, json_pack("{s:s, s:s}", "type", stream == 1 ? "stdout" : "stderr", "data", b));
	free(b);
}

static void exec_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct exec_stream *st = ctx;
	struct serve_sandbox *sb = st->sb;
	(void)x;
	st->x = NULL;
	sb->busy--;
	json_t *ev;
	if (st->over) {
		st->s->m.exec_failures++;
		ev = json_pack("{s:s, s:s}", "type", "error", "error",
			       "the client did not read the output fast enough; the command was killed");
	} else if (res->exec_errno) {
		int code = res->exec_errno == ENOENT || res->exec_errno == ENOTDIR ? 127 : 126;
		ev = json_pack("{s:s, s:i, s:i, s:b, s:s}", "type", "exit", "code", code, "signal", 0,
			       "timed_out", 0, "message", res->err.msg);
	} else if (res->timed_out) {
		ev = json_pack("{s:s, s:i, s:i, s:b, s:s}", "type", "exit", "code", 124, "signal",
			       res->signal, "timed_out", 1, "message",
			       res->err.code ? res->err.msg : "timeout_s passed; the command was killed");
		if (res->err.code) {
			/* The guest ignored its timeout: its VM is not trusted further. */
			log_warn("serve: sandbox %s: %s; destroying it", sb->id, res->err.msg);
			serve_sandbox_delete(sb);
		}
	} else if (res->err.code) {
		st->s->m.exec_failures++;
		ev = json_pack("{s:s, s:s}", "type", "error", "error", res->err.msg);
	} else {
		ev = json_pack("{s:s, s:i, s:i, s:b}", "type", "exit", "code",
			       res->signal ? 128 + res->signal : res->code, "signal", res->signal,
			       "timed_out", 0);
	}
	st->ended = 1;
	if (st->r)
		exec_emit(st, ev);
	else
		json_decref(ev);
	exec_maybe_free(st);
}

static void exec_on_hup(uv_poll_t *p, int status, int events)
{
	struct exec_stream *st = p->data;
	(void)status;
	(void)events;
	log_debug("serve: exec client hung up; killing the command");
	st->client_gone = 1;
	if (st->x)
		vm_exec_kill(st->x, SIGKILL);
	exec_wake(st); /* MHD sees the dead socket and completes the request */
}

static ssize_t exec_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct exec_stream *st = cls;
	(void)pos;
	if (st->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (st->out.len) {
		size_t n = st->out.len < max ? st->out.len : max;
		memcpy(buf, st->out.data, n);
		buf_consume(&st->out, n);
		return (ssize_t)n;
	}
	if (st->ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to send: sleep until output, the end, or a hang-up. */
	st->r->suspended = 1;
	MHD_suspend_connection(st->r->conn);
	if (st->hup_open && !st->hup_active) {
		st->hup_active = 1;
		uv_poll_start(&st->hup, UV_DISCONNECT, exec_on_hup);
	}
	return 0;
}

static void exec_detach(void *op, enum MHD_RequestTerminationCode toe)
{
	struct exec_stream *st = op;
	st->r = NULL;
	exec_hup_stop(st);
	if (st->x) {
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
			st->s->m.exec_disconnects++;
		vm_exec_kill(st->x, SIGKILL);
	}
	exec_maybe_free(st);
}

enum MHD_Result serve_exec_begin(struct serve_req *r, struct serve_sandbox *sb,
				 struct serve_exec_req *x)
{
	static const struct vm_exec_handlers handlers = {
		.output = exec_on_output,
		.done = exec_on_done,
	};
	struct err e = { 0 };
	struct exec_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		serve_exec_req_free(x);
		return MHD_NO;
	}
	st->s = r->s;
	st->sb = sb;
	st->req = *x;
	buf_init(&st->out, SERVE_EXEC_BUFFER_MAX + 64 * 1024);
	struct vm_exec_spec spec = {
		.argv = st->req.argv,
		.env = st->req.env,
		.cwd = st->req.cwd,
		.timeout_ms = st->req.timeout_s * 1000,
		.want_stdin = st->req.has_stdin,
	};
	r->s->m.execs++;
	if (vm_exec_start(sb->sv->vm, &spec, &handlers, st, &st->x, &e) < 0) {
		r->s->m.exec_failures++;
		serve_exec_req_free(&st->req);
		free(st);
		serve_req_answer_error(r, 409, NULL, e.msg);
		return MHD_YES;
	}
	sb->busy++;
	if (st->req.has_stdin)
		vm_exec_write_stdin(st->x, st->req.stdin_data, st->req.stdin_len, 1);
	st->r = r;
	r->op = st;
	r->op_detach = exec_detach;
	r->op_queued = 1;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn,
		MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci && uv_poll_init(r->s->loop, &st->hup, ci->connect_fd) == 0) {
		st->hup.data = st;
		st->hup_open = 1;
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
								      exec_reader, st, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
	enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ok;
}
