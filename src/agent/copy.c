/* Workspace copy in and out of an in-process VM: see copy.h.
 *
 * Copy-in: the source (tarstream.c) reads each chunk on the pool, and it is
 * written to the guest's `@ws-unpack` stdin on the loop; a full stdin queue
 * waits for the exec's credit, and the next chunk is read once the last one
 * is taken. The first read scans the tree and checks its caps, so a tree over
 * them fails before any exec starts.
 * Copy-out: `@ws-pack`'s stdout goes into a sink (tarstream.c) as it arrives,
 * so host-side unpacking and hashing overlap the guest's packing instead of
 * following it. */
#include "agent/copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/tarstream.h"
#include "vm/vm.h"

struct copy_in {
	struct vm *vm;
	struct workspace_manifest *manifest;
	struct agent_tar_source *src;
	struct vm_exec *x;
	const uint8_t *chunk;
	size_t chunk_len;        /* 0 at the end */
	int chunk_pending;       /* read, not yet accepted by vm_exec_write_stdin */
	int reading;             /* a pool job is running */
	int eof_sent;
	int exec_done;
	int finished;
	struct err e;            /* first failure */
	char errtext[512];       /* the guest's stderr: why @ws-unpack failed */
	size_t errlen;
	agent_copy_cb cb;
	void *ctx;
};

void agent_copy_keep_err(char *buf, size_t cap, size_t *len, const uint8_t *d, size_t n)
{
	size_t take = n < cap - 1 - *len ? n : cap - 1 - *len;
	memcpy(buf + *len, d, take);
	*len += take;
	buf[*len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static void copy_in_finish(struct copy_in *c)
{
	if (c->finished || c->reading || !c->exec_done)
		return;
	c->finished = 1;
	if (!c->e.code)
		agent_tar_source_take_manifest(c->src, c->manifest);
	agent_tar_source_free(c->src);
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

static void copy_in_pump(struct copy_in *c);
static void copy_in_start_exec(struct copy_in *c);

static void copy_in_on_chunk(void *ctx, const uint8_t *p, size_t n, const struct err *e)
{
	struct copy_in *c = ctx;
	c->reading = 0;
	if (e) {
		copy_in_fail(c, e);
		if (!c->x)
			c->exec_done = 1;   /* the first read failed: no exec was started */
		copy_in_finish(c);
		return;
	}
	c->chunk = p;
	c->chunk_len = n;
	c->chunk_pending = 1;
	if (!c->x && !c->exec_done)
		copy_in_start_exec(c);
	copy_in_pump(c);
	copy_in_finish(c);
}

/* Hands the pending chunk to the exec, then starts the next read. */
static void copy_in_pump(struct copy_in *c)
{
	if (c->e.code || c->exec_done || c->reading || c->eof_sent || !c->x)
		return;
	if (c->chunk_pending) {
		int eof = c->chunk_len == 0;
		int rc = vm_exec_write_stdin(c->x, c->chunk, c->chunk_len, eof);
		if (rc == -ENOBUFS)
			return;   /* stdin_credit calls us again */
		if (rc < 0) {
			struct err e = { 0 };
			err_set(&e, rc, "copying the workspace in: the guest's unpacker stopped reading");
			copy_in_fail(c, &e);
			return;
		}
		c->chunk_pending = 0;
		if (eof) {
			c->eof_sent = 1;
			return;
		}
	}
	struct err e = { 0 };
	c->reading = 1;
	if (agent_tar_source_read(c->src, copy_in_on_chunk, c, &e) < 0) {
		c->reading = 0;
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
	struct copy_in *c = ctx;
	(void)x;
	if (stream == 2)   /* @ws-unpack writes only why it failed, to stderr */
		agent_copy_keep_err(c->errtext, sizeof(c->errtext), &c->errlen, d, n);
}

static void copy_in_on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct copy_in *c = ctx;
	(void)x;
	c->exec_done = 1;
	c->x = NULL;
	struct err e = { 0 };
	if (r->timed_out)
		err_set(&e, -ETIMEDOUT, "copying the workspace in: the guest's unpacker did not finish within %u s",
			AGENT_COPY_TIMEOUT_MS / 1000), copy_in_fail(c, &e);
	else if (r->err.code)
		copy_in_fail(c, &r->err);
	else if (r->signal || r->code)
		err_set(&e, -EIO, "copying the workspace in: the guest's unpacker failed (exit %d)%s%s",
			r->signal ? 128 + r->signal : r->code, c->errlen ? ": " : "", c->errtext),
			copy_in_fail(c, &e);
	else if (!c->eof_sent && !c->e.code)
		err_set(&e, -EIO, "copying the workspace in: the guest's unpacker ended early"), copy_in_fail(c, &e);
	copy_in_finish(c);
}

static void copy_in_start_exec(struct copy_in *c)
{
	/* The guest agent's builtin (src/guest/ws.h): it creates /workspace. */
	static char *argv[] = { "@ws-unpack", "/workspace", NULL };
	static const struct vm_exec_handlers h = {
		.output = copy_in_on_output,
		.stdin_credit = copy_in_on_credit,
		.done = copy_in_on_done,
	};
	struct vm_exec_spec spec = { .argv = argv, .cwd = "/", .want_stdin = 1,
				     .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	struct err e = { 0 };
	if (vm_exec_start(c->vm, &spec, &h, c, &c->x, &e) < 0) {
		c->x = NULL;
		copy_in_fail(c, &e);
		c->exec_done = 1;
	}
}

int agent_copy_in(uv_loop_t *loop, struct vm *vm, const char *root,
		  const struct workspace_pack_options *po, struct workspace_manifest *manifest,
		  agent_copy_cb cb, void *ctx, struct err *e)
{
	struct copy_in *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->vm = vm;
	c->manifest = manifest;
	c->cb = cb;
	c->ctx = ctx;
	int rc = agent_tar_source_new(loop, root, po, &c->src, e);
	if (rc == 0) {
		c->reading = 1;
		rc = agent_tar_source_read(c->src, copy_in_on_chunk, c, e);
	}
	if (rc < 0) {
		agent_tar_source_free(c->src);
		free(c);
		return rc;
	}
	return 0;
}

/* ---- copy-out ---- */

struct copy_out {
	struct workspace_manifest *after;
	struct agent_tar_sink *sink;
	struct vm_exec *x;
	int over;
	int exec_done, sink_done;
	int killed_for_sink;     /* the exec was killed because the unpacker failed */
	char errtext[512];
	size_t errlen;
	struct err e;            /* the exec's failure */
	struct err job_e;        /* the unpacker's */
	agent_copy_cb cb;
	void *ctx;
};

static void copy_out_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct copy_out *c = ctx;
	if (stream == 2) {
		agent_copy_keep_err(c->errtext, sizeof(c->errtext), &c->errlen, d, n);
		return;
	}
	if (c->over || c->sink_done)
		return;   /* the unpacker ended: drop what still arrives */
	if (agent_tar_sink_feed(c->sink, d, n) < 0) {
		c->over = 1;
		vm_exec_kill(x, 9);
	}
}

static void copy_out_finish(struct copy_out *c)
{
	if (!c->exec_done || !c->sink_done)
		return;
	const struct err *e = agent_copy_out_verdict(&c->e, &c->job_e, c->killed_for_sink, c->after);
	agent_tar_sink_free(c->sink);
	c->cb(c->ctx, e);
	free(c);
}

static void copy_out_on_sink(void *ctx, const struct err *e)
{
	struct copy_out *c = ctx;
	c->sink_done = 1;
	if (e)
		c->job_e = *e;
	if (!c->exec_done && c->x && c->job_e.code) {
		/* The unpacker refused the stream: the rest is not wanted. (After
		 * a clean end of the archive the exec is left to exit: killing it
		 * would race its exec.exit.) */
		c->killed_for_sink = 1;
		vm_exec_kill(c->x, 9);
	}
	copy_out_finish(c);
}

static void copy_out_on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct copy_out *c = ctx;
	(void)x;
	c->exec_done = 1;
	c->x = NULL;
	if (r->timed_out) {
		err_set(&c->e, -ETIMEDOUT, "copying the workspace out: the guest's packer did not finish within %u s",
			AGENT_COPY_TIMEOUT_MS / 1000);
	} else if (r->err.code) {
		c->e = r->err;
	} else if (c->over) {
		err_set(&c->e, -EFBIG, "copying the workspace out: the guest's tar stream passed %llu MiB",
			(unsigned long long)(AGENT_COPY_OUT_MAX >> 20));
	} else if (r->signal || r->code) {
		err_set(&c->e, -EIO, "copying the workspace out: the guest's packer failed (exit %d)%s%s",
			r->signal ? 128 + r->signal : r->code, c->errlen ? ": " : "", c->errtext);
	}
	if (c->sink)
		agent_tar_sink_end(c->sink, c->e.code != 0);
	copy_out_finish(c);
}

int agent_copy_out(uv_loop_t *loop, struct vm *vm, const char *staging,
		   struct workspace_manifest *after, agent_copy_cb cb, void *ctx, struct err *e)
{
	return agent_copy_out_against(loop, vm, staging, NULL, after, cb, ctx, e);
}

int agent_copy_out_against(uv_loop_t *loop, struct vm *vm, const char *staging,
			   const struct workspace_manifest *before,
			   struct workspace_manifest *after, agent_copy_cb cb, void *ctx,
			   struct err *e)
{
	struct copy_out *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	c->after = after;
	c->cb = cb;
	c->ctx = ctx;
	/* The guest agent's builtin (src/guest/ws.h). */
	static char *argv[] = { "@ws-pack", "/workspace", NULL };
	static const struct vm_exec_handlers h = { .output = copy_out_on_output, .done = copy_out_on_done };
	struct vm_exec_spec spec = { .argv = argv, .cwd = "/", .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	int rc = vm_exec_start(vm, &spec, &h, c, &c->x, e);
	if (rc < 0) {
		free(c);
		return rc;
	}
	struct err se = { 0 };
	if (agent_tar_sink_new(loop, staging, before, after, copy_out_on_sink, c, &c->sink, &se) < 0) {
		/* The exec runs; its done callback reports this. */
		c->job_e = se;
		c->sink_done = 1;
		c->killed_for_sink = 1;
		vm_exec_kill(c->x, 9);
	}
	return 0;
}
