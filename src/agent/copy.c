/* Workspace copy in and out of the VM: see copy.h.
 *
 * Copy-in: a pool job opens the pack (it scans the tree and checks the caps),
 * then each chunk is read by a pool job and written to `tar -x`'s stdin on the
 * loop; a full stdin queue waits for the exec's credit. Copy-out: `tar -c`'s
 * stdout is collected in memory (capped) and unpacked by one pool job. */
#include "agent/copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

#define COPY_CHUNK (256u * 1024)

struct copy_in {
	uv_loop_t *loop;
	struct vm *vm;
	const char *root;
	const struct workspace_pack_options *po;
	struct workspace_manifest *manifest;
	struct workspace_pack *pack;
	struct vm_exec *x;
	uv_work_t work;
	uint8_t *chunk;
	long chunk_len;          /* bytes read into chunk; 0 at the end; <0 error */
	int chunk_pending;       /* read, not yet accepted by vm_exec_write_stdin */
	int reading;             /* a pool job is running */
	int eof_sent;
	int exec_done;
	int finished;
	struct err e;            /* first failure */
	struct err job_e;
	agent_copy_cb cb;
	void *ctx;
};

static void copy_in_finish(struct copy_in *c)
{
	if (c->finished || c->reading || !c->exec_done)
		return;
	c->finished = 1;
	if (!c->e.code && c->pack)
		workspace_pack_take_manifest(c->pack, c->manifest);
	workspace_pack_free(c->pack);
	free(c->chunk);
	c->cb(c->ctx, c->e.code ? &c->e : NULL);
	free(c);
}

static void copy_in_fail(struct copy_in *c, const struct err *e)
{
	if (!c->e.code)
		c->e = *e;
	if (c->x && !c->exec_done)
		vm_exec_kill(c->x, 9);
}

static void copy_in_read_job(uv_work_t *w)
{
	struct copy_in *c = w->data;
	c->chunk_len = workspace_pack_read(c->pack, c->chunk, COPY_CHUNK, &c->job_e);
}

static void copy_in_pump(struct copy_in *c);

static void copy_in_after_read(uv_work_t *w, int status)
{
	struct copy_in *c = w->data;
	(void)status;
	c->reading = 0;
	if (c->chunk_len < 0) {
		copy_in_fail(c, &c->job_e);
		copy_in_finish(c);
		return;
	}
	c->chunk_pending = 1;
	copy_in_pump(c);
	copy_in_finish(c);
}

/* Hands the pending chunk to the exec, then starts the next read. */
static void copy_in_pump(struct copy_in *c)
{
	if (c->e.code || c->exec_done || c->reading || c->eof_sent)
		return;
	if (c->chunk_pending) {
		int eof = c->chunk_len == 0;
		int rc = vm_exec_write_stdin(c->x, c->chunk, (size_t)c->chunk_len, eof);
		if (rc == -ENOBUFS)
			return;   /* stdin_credit calls us again */
		if (rc < 0) {
			struct err e = { 0 };
			err_set(&e, rc, "copying the workspace in: the guest's tar stopped reading");
			copy_in_fail(c, &e);
			return;
		}
		c->chunk_pending = 0;
		if (eof) {
			c->eof_sent = 1;
			return;
		}
	}
	c->reading = 1;
	c->work.data = c;
	if (uv_queue_work(c->loop, &c->work, copy_in_read_job, copy_in_after_read) < 0) {
		c->reading = 0;
		struct err e = { 0 };
		err_set(&e, -EAGAIN, "copying the workspace in: no thread pool");
		copy_in_fail(c, &e);
	}
}

static void copy_in_on_credit(struct vm_exec *x, void *ctx)
{
	(void)x;
	copy_in_pump(ctx);
}

static void copy_in_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	(void)x;
	(void)stream;
	(void)d;
	(void)n;
	(void)ctx;   /* tar -x prints nothing we need; its exit code tells */
}

static void copy_in_on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct copy_in *c = ctx;
	(void)x;
	c->exec_done = 1;
	c->x = NULL;
	struct err e = { 0 };
	if (r->timed_out)
		err_set(&e, -ETIMEDOUT, "copying the workspace in: the guest's tar did not finish within %u s",
			AGENT_COPY_TIMEOUT_MS / 1000), copy_in_fail(c, &e);
	else if (r->err.code)
		copy_in_fail(c, &r->err);
	else if (r->signal || r->code)
		err_set(&e, -EIO, "copying the workspace in: the guest's tar failed (exit %d)",
			r->signal ? 128 + r->signal : r->code), copy_in_fail(c, &e);
	else if (!c->eof_sent && !c->e.code)
		err_set(&e, -EIO, "copying the workspace in: the guest's tar ended early"), copy_in_fail(c, &e);
	copy_in_finish(c);
}

static void copy_in_open_job(uv_work_t *w)
{
	struct copy_in *c = w->data;
	if (workspace_pack_open(c->root, c->po, &c->pack, &c->job_e) < 0)
		c->pack = NULL;
}

static void copy_in_after_open(uv_work_t *w, int status)
{
	struct copy_in *c = w->data;
	(void)status;
	c->reading = 0;
	if (!c->pack) {
		c->e = c->job_e;
		c->exec_done = 1;
		copy_in_finish(c);
		return;
	}
	static char *argv[] = { "sh", "-c", "mkdir -p /workspace && exec tar -xf - -C /workspace", NULL };
	static const struct vm_exec_handlers h = {
		.output = copy_in_on_output,
		.stdin_credit = copy_in_on_credit,
		.done = copy_in_on_done,
	};
	struct vm_exec_spec spec = { .argv = argv, .cwd = "/", .want_stdin = 1,
				     .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	struct err e = { 0 };
	if (vm_exec_start(c->vm, &spec, &h, c, &c->x, &e) < 0) {
		c->e = e;
		c->exec_done = 1;
		copy_in_finish(c);
		return;
	}
	copy_in_pump(c);
}

int agent_copy_in(uv_loop_t *loop, struct vm *vm, const char *root,
		  const struct workspace_pack_options *po, struct workspace_manifest *manifest,
		  agent_copy_cb cb, void *ctx, struct err *e)
{
	struct copy_in *c = calloc(1, sizeof(*c));
	if (!c || !(c->chunk = malloc(COPY_CHUNK))) {
		free(c);
		return err_set(e, -ENOMEM, "out of memory");
	}
	c->loop = loop;
	c->vm = vm;
	c->root = root;
	c->po = po;
	c->manifest = manifest;
	c->cb = cb;
	c->ctx = ctx;
	c->reading = 1;
	c->work.data = c;
	int rc = uv_queue_work(loop, &c->work, copy_in_open_job, copy_in_after_open);
	if (rc < 0) {
		free(c->chunk);
		free(c);
		return err_set(e, rc, "copying the workspace in: %s", uv_strerror(rc));
	}
	return 0;
}

/* ---- copy-out ---- */

struct copy_out {
	uv_loop_t *loop;
	const char *staging;
	struct workspace_manifest *after;
	uint8_t *data;
	size_t len, cap;
	int over;
	char errtext[512];
	size_t errlen;
	uv_work_t work;
	struct err e;
	agent_copy_cb cb;
	void *ctx;
};

static void copy_out_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct copy_out *c = ctx;
	if (stream == 2) {
		size_t take = n < sizeof(c->errtext) - 1 - c->errlen ? n : sizeof(c->errtext) - 1 - c->errlen;
		memcpy(c->errtext + c->errlen, d, take);
		c->errlen += take;
		return;
	}
	if (c->over)
		return;
	if (c->len + n > AGENT_COPY_OUT_MAX) {
		c->over = 1;
		vm_exec_kill(x, 9);
		return;
	}
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 1u << 20;
		while (cap < c->len + n)
			cap *= 2;
		uint8_t *grown = realloc(c->data, cap);
		if (!grown) {
			c->over = 1;
			vm_exec_kill(x, 9);
			return;
		}
		c->data = grown;
		c->cap = cap;
	}
	memcpy(c->data + c->len, d, n);
	c->len += n;
}

static void copy_out_job(uv_work_t *w)
{
	struct copy_out *c = w->data;
	/* The copy-out may be as large as copy-in allowed, and no larger. */
	struct workspace_limits lim = { 0 };
	workspace_unpack_mem(c->data, c->len, c->staging, &lim, c->after, &c->e);
}

static void copy_out_finish(struct copy_out *c)
{
	free(c->data);
	c->cb(c->ctx, c->e.code ? &c->e : NULL);
	free(c);
}

static void copy_out_after_job(uv_work_t *w, int status)
{
	(void)status;
	copy_out_finish(w->data);
}

static void copy_out_on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct copy_out *c = ctx;
	(void)x;
	if (r->timed_out) {
		err_set(&c->e, -ETIMEDOUT, "copying the workspace out: the guest's tar did not finish within %u s",
			AGENT_COPY_TIMEOUT_MS / 1000);
	} else if (r->err.code) {
		c->e = r->err;
	} else if (c->over) {
		err_set(&c->e, -EFBIG, "copying the workspace out: the guest's tar stream passed %llu MiB",
			(unsigned long long)(AGENT_COPY_OUT_MAX >> 20));
	} else if (r->signal || r->code) {
		c->errtext[c->errlen] = '\0';
		c->errtext[strcspn(c->errtext, "\n")] = '\0';
		err_set(&c->e, -EIO, "copying the workspace out: the guest's tar failed (exit %d): %s",
			r->signal ? 128 + r->signal : r->code, c->errtext);
	}
	if (c->e.code) {
		copy_out_finish(c);
		return;
	}
	c->work.data = c;
	int rc = uv_queue_work(c->loop, &c->work, copy_out_job, copy_out_after_job);
	if (rc < 0) {
		err_set(&c->e, rc, "copying the workspace out: %s", uv_strerror(rc));
		copy_out_finish(c);
	}
}

int agent_copy_out(uv_loop_t *loop, struct vm *vm, const char *staging,
		   struct workspace_manifest *after, agent_copy_cb cb, void *ctx, struct err *e)
{
	struct copy_out *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->loop = loop;
	c->staging = staging;
	c->after = after;
	c->cb = cb;
	c->ctx = ctx;
	static char *argv[] = { "tar", "-cf", "-", "-C", "/workspace", ".", NULL };
	static const struct vm_exec_handlers h = { .output = copy_out_on_output, .done = copy_out_on_done };
	struct vm_exec_spec spec = { .argv = argv, .cwd = "/", .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	struct vm_exec *x;
	int rc = vm_exec_start(vm, &spec, &h, c, &x, e);
	if (rc < 0)
		free(c);
	return rc;
}
