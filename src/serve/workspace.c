/* PUT and GET /v1/sandboxes/{id}/workspace: the sandbox's /workspace as one
 * tar stream, in (the body fed to the guest agent's `@ws-unpack` builtin) and
 * out (`@ws-pack`'s stdout as the response body). This is how `ironclaw run`
 * over the daemon moves a workspace; the CLI builds and checks the tar
 * (src/workspace, libarchive) as the user, so the daemon never touches a
 * user's files and never parses the archive itself.
 *
 * In: the body is not buffered. Each upload chunk libmicrohttpd hands over is
 * queued on the exec's stdin; when the exec's host queue is full the chunk is
 * left unconsumed and the connection suspended until the guest's credit comes
 * back, so a client can send any size at the guest's pace with bounded daemon
 * memory. The stream is capped (--max-workspace-mib, else SERVE_WORKSPACE_MAX:
 * a 413 once the body passes it, the rest read and dropped, the sandbox left
 * as usable as a refused archive leaves it); the answer (204, or why
 * the unpacker refused) comes once the builtin exited.
 * Out: the exec's stdout goes through a capped buffer read by a content
 * reader, as exec.c streams do: an empty buffer suspends the connection, a
 * hang-up while suspended kills the builtin, and a stream that fails after the
 * 200 was sent ends, after the bytes already buffered, without its last
 * chunk, which the client sees as a cut stream, never as a whole archive. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "serve/internal.h"

struct ws_op {
	struct serve *s;
	struct serve_req *r;        /* NULL once the request ended */
	struct serve_sandbox *sb;
	struct vm_exec *x;          /* NULL once done */
	int out;                    /* 1: GET (pack), 0: PUT (unpack) */
	int running;                /* the exec has not reported done */
	/* PUT */
	uint64_t in_total;
	int in_waiting;             /* suspended on a full stdin queue */
	int in_eof;
	unsigned fail_status;       /* the answer when it failed: 400, 413, 503 */
	char why[ERR_MSG_MAX];
	char errtext[512];          /* the builtin's stderr */
	size_t errlen;
	/* GET */
	struct buf buf;
	uint64_t out_total;
	int ended, ok;
	uv_poll_t hup;
	int hup_open, hup_active, client_gone;
};

static void ws_maybe_free(struct ws_op *op);

static void ws_hup_closed(uv_handle_t *h)
{
	struct ws_op *op = h->data;
	op->hup_open = 0;
	ws_maybe_free(op);
}

static void ws_maybe_free(struct ws_op *op)
{
	if (op->r || op->running)
		return;
	if (op->hup_open) {
		if (!uv_is_closing((uv_handle_t *)&op->hup))
			uv_close((uv_handle_t *)&op->hup, ws_hup_closed);
		return;
	}
	buf_free(&op->buf);
	free(op);
}

static void ws_hup_stop(struct ws_op *op)
{
	if (op->hup_active) {
		op->hup_active = 0;
		uv_poll_stop(&op->hup);
	}
}

static void ws_fail(struct ws_op *op, unsigned status, const char *msg)
{
	if (!op->fail_status) {
		op->fail_status = status;
		snprintf(op->why, sizeof(op->why), "%s", msg);
	}
	if (op->x)
		vm_exec_kill(op->x, SIGKILL);
}

static void ws_keep_err(struct ws_op *op, const uint8_t *d, size_t n)
{
	size_t take = n < sizeof(op->errtext) - 1 - op->errlen ? n : sizeof(op->errtext) - 1 - op->errlen;
	memcpy(op->errtext + op->errlen, d, take);
	op->errlen += take;
	op->errtext[op->errlen] = '\0';
	op->errtext[strcspn(op->errtext, "\n")] = '\0';
}

static void ws_wake(struct ws_op *op)
{
	ws_hup_stop(op);
	if (op->r)
		serve_req_resume(op->r);
}

/* ---- PUT ---- */

static void ws_put_answer(struct ws_op *op)
{
	struct serve_req *r = op->r;
	if (!r || op->running || !op->in_eof)
		return;
	r->op = NULL;
	r->op_detach = NULL;
	op->r = NULL;
	if (op->fail_status)
		serve_req_answer_error(r, op->fail_status, NULL, op->why);
	else
		serve_req_answer_bytes(r, 204, NULL, "", 0);
}

static void ws_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx);

static void ws_on_credit(struct vm_exec *x, void *ctx)
{
	struct ws_op *op = ctx;
	(void)x;
	if (op->in_waiting) {
		op->in_waiting = 0;
		ws_wake(op);   /* MHD hands the unconsumed chunk over again */
	}
}

static void ws_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct ws_op *op = ctx;
	(void)x;
	op->x = NULL;
	op->running = 0;
	op->sb->busy--;
	char msg[ERR_MSG_MAX];
	const char *what = op->out ? "packer" : "unpacker";
	if (res->timed_out) {
		snprintf(msg, sizeof(msg), "the guest's %s did not finish within %u s", what,
			 SERVE_WORKSPACE_TIMEOUT_MS / 1000);
		ws_fail(op, 503, msg);
	} else if (res->err.code) {
		ws_fail(op, 503, res->err.msg);
	} else if (res->signal || res->code) {
		snprintf(msg, sizeof(msg), "the guest's %s failed (exit %d)%s%.400s", what,
			 res->signal ? 128 + res->signal : res->code, op->errlen ? ": " : "",
			 op->errtext);
		ws_fail(op, 400, msg);
	} else if (!op->out && !op->in_eof) {
		ws_fail(op, 400, "the guest's unpacker ended before the body did");
	}
	if (op->fail_status)
		log_warn("serve: workspace %s in %s: %s", op->out ? "GET" : "PUT", op->sb->id, op->why);
	if (op->out) {
		op->ended = 1;
		op->ok = !op->fail_status;
		ws_wake(op);
	} else if (op->in_waiting) {
		op->in_waiting = 0;
		ws_wake(op);   /* the rest of the body is dropped */
	}
	ws_put_answer(op);
	ws_maybe_free(op);
}

static void ws_detach(void *p, enum MHD_RequestTerminationCode toe)
{
	struct ws_op *op = p;
	(void)toe;
	op->r = NULL;
	ws_hup_stop(op);
	if (op->x)
		vm_exec_kill(op->x, SIGKILL);   /* the client went away mid-stream */
	ws_maybe_free(op);
}

static struct ws_op *ws_start(struct serve_req *r, struct serve_sandbox *sb, int out,
			      struct err *e)
{
	static char *argv_in[] = { "@ws-unpack", "/workspace", NULL };
	static char *argv_out[] = { "@ws-pack", "/workspace", NULL };
	static const struct vm_exec_handlers h_in = {
		.output = ws_on_output, .stdin_credit = ws_on_credit, .done = ws_on_done,
	};
	static const struct vm_exec_handlers h_out = { .output = ws_on_output, .done = ws_on_done };
	struct ws_op *op = calloc(1, sizeof(*op));
	if (!op) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	op->s = r->s;
	op->sb = sb;
	op->out = out;
	buf_init(&op->buf, SERVE_EXEC_BUFFER_MAX);
	struct vm_exec_spec spec = { .argv = out ? argv_out : argv_in, .cwd = "/",
				     .timeout_ms = SERVE_WORKSPACE_TIMEOUT_MS, .want_stdin = !out };
	if (vm_exec_start(sb->sv->vm, &spec, out ? &h_out : &h_in, op, &op->x, e) < 0) {
		buf_free(&op->buf);
		free(op);
		return NULL;
	}
	op->running = 1;
	sb->busy++;
	op->r = r;
	r->op = op;
	r->op_detach = ws_detach;
	return op;
}

/* The sandbox a /v1/sandboxes/{id}/workspace URL names, ready; else NULL and
 * the route answers why at the end of the body. */
static struct serve_sandbox *ws_sandbox_of(struct serve *s, const char *url)
{
	static const char pre[] = "/v1/sandboxes/";
	char id[SERVE_ID_LEN + 1];
	if (strncmp(url, pre, sizeof(pre) - 1))
		return NULL;
	const char *p = url + sizeof(pre) - 1, *slash = strchr(p, '/');
	if (!slash || slash == p || (size_t)(slash - p) > SERVE_ID_LEN)
		return NULL;
	memcpy(id, p, (size_t)(slash - p));
	id[slash - p] = 0;
	struct serve_sandbox *sb = serve_sandbox_find(s, id);
	return sb && sb->state == SB_READY && !sb->deleting ? sb : NULL;
}

int serve_workspace_streams(const char *url, const char *method)
{
	size_t n = strlen(url);
	return !strcmp(method, "PUT") && n > 10 && !strcmp(url + n - 10, "/workspace") &&
	       !strncmp(url, "/v1/sandboxes/", 14);
}

enum MHD_Result serve_workspace_put_data(struct serve_req *r, const char *url, const char *p,
					 size_t *n)
{
	struct ws_op *op = r->op;
	if (!op && !r->stream_drop) {
		struct err e = { 0 };
		struct serve_sandbox *sb = ws_sandbox_of(r->s, url);
		if (!sb || !(op = ws_start(r, sb, 0, &e)))
			r->stream_drop = 1;   /* the route answers (404, 409) at the end */
	}
	if (r->stream_drop || !op->running || op->fail_status) {
		/* Nothing takes the rest: read and drop it, up to a bound. */
		if ((r->drained += *n) > SERVE_BODY_DRAIN_MAX)
			return MHD_NO;
		*n = 0;
		return MHD_YES;
	}
	uint64_t cap = r->s->cfg.workspace_max_mib ? (uint64_t)r->s->cfg.workspace_max_mib << 20 :
		       SERVE_WORKSPACE_MAX;
	if (op->in_total + *n > cap) {
		char msg[160];
		snprintf(msg, sizeof(msg), "the workspace stream is over the daemon's %llu MiB (hint: "
			 "`ironclaw serve --max-workspace-mib N` raises it)",
			 (unsigned long long)(cap >> 20));
		ws_fail(op, 413, msg);
		*n = 0;
		return MHD_YES;
	}
	int rc = vm_exec_write_stdin(op->x, p, *n, 0);
	if (rc == -ENOBUFS) {
		/* Keep the chunk; the guest's credit resumes us. */
		op->in_waiting = 1;
		r->suspended = 1;
		MHD_suspend_connection(r->conn);
		return MHD_YES;
	}
	if (rc < 0)
		ws_fail(op, 400, "the guest's unpacker stopped reading");
	else
		op->in_total += *n;
	*n = 0;
	return MHD_YES;
}

int serve_workspace_put_end(struct serve_req *r, struct serve_sandbox *sb, struct err *e)
{
	struct ws_op *op = r->op;
	if (r->stream_drop) {
		/* The body was dropped, so no archive reached the guest. */
		err_set(e, -EAGAIN, "sandbox %s could not take the workspace now (see the daemon's log)",
			sb->id);
		return 409;
	}
	if (!op && !(op = ws_start(r, sb, 0, e)))   /* an empty body */
		return 409;
	op->in_eof = 1;
	if (op->x && !op->fail_status && vm_exec_write_stdin(op->x, NULL, 0, 1) < 0)
		ws_fail(op, 400, "the guest's unpacker stopped reading");
	ws_put_answer(op);   /* when the exec already ended; else its done does */
	ws_maybe_free(op);
	return 0;
}

/* ---- GET ---- */

static void ws_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct ws_op *op = ctx;
	(void)x;
	if (stream == 2) {
		ws_keep_err(op, d, n);
		return;
	}
	if (!op->out || op->fail_status)
		return;   /* @ws-unpack prints nothing on stdout */
	if (!op->r) {
		return;
	}
	if ((op->out_total += n) > SERVE_WORKSPACE_MAX) {
		ws_fail(op, 413, "the guest's workspace stream is over the cap");
		return;
	}
	if (buf_append(&op->buf, d, n) < 0) {
		ws_fail(op, 503, "the client did not read the workspace fast enough");
		return;
	}
	ws_wake(op);
}

static void ws_on_hup(uv_poll_t *p, int status, int events)
{
	struct ws_op *op = p->data;
	(void)status;
	(void)events;
	op->client_gone = 1;
	if (op->x)
		vm_exec_kill(op->x, SIGKILL);
	ws_wake(op);
}

static ssize_t ws_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct ws_op *op = cls;
	(void)pos;
	if (op->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	/* A failed pack still sends what the guest produced before it failed,
	 * then cuts the stream: the client gets every byte there was and a
	 * failed transfer, never a whole (shorter) archive. */
	if (op->fail_status && !op->buf.len)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (op->buf.len) {
		size_t n = op->buf.len < max ? op->buf.len : max;
		memcpy(out, op->buf.data, n);
		buf_consume(&op->buf, n);
		return (ssize_t)n;
	}
	if (op->ended)
		return op->ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
	op->r->suspended = 1;
	MHD_suspend_connection(op->r->conn);
	if (op->hup_open && !op->hup_active) {
		op->hup_active = 1;
		uv_poll_start(&op->hup, UV_DISCONNECT, ws_on_hup);
	}
	return 0;
}

enum MHD_Result serve_workspace_get(struct serve_req *r, struct serve_sandbox *sb)
{
	struct err e = { 0 };
	struct ws_op *op = ws_start(r, sb, 1, &e);
	if (!op) {
		serve_req_answer_error(r, 409, NULL, e.msg);
		return MHD_YES;
	}
	r->op_queued = 1;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn,
		MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci && uv_poll_init(r->s->loop, &op->hup, ci->connect_fd) == 0) {
		op->hup.data = op;
		op->hup_open = 1;
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
								      ws_reader, op, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/x-tar");
	enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ok;
}
