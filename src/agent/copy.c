/* Workspace copy in and out of the VM: see copy.h.
 *
 * Copy-in: a pool job opens the pack (it scans the tree and checks the caps),
 * then each chunk is read by a pool job and written to the guest's
 * `@ws-unpack` stdin on the loop; a full stdin queue waits for the exec's
 * credit, and the next chunk is read while the last one travels.
 * Copy-out: `@ws-pack`'s stdout is unpacked while it arrives: the loop queues
 * each output piece (capped in total), one pool job parses the queue as it
 * fills (workspace_unpack), so host-side unpacking and hashing overlap the
 * guest's packing instead of following it. */
#include "agent/copy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

/* One pool job's worth of the tar stream; vm_exec cuts it into frames. */
#define COPY_CHUNK (1u << 20)

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
	char errtext[512];       /* the guest's stderr: why @ws-unpack failed */
	size_t errlen;
	agent_copy_cb cb;
	void *ctx;
};

/* Keeps the first line's worth of a builtin's stderr for the error message. */
static void copy_keep_err(char *buf, size_t cap, size_t *len, const uint8_t *d, size_t n)
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
	struct copy_in *c = ctx;
	(void)x;
	if (stream == 2)   /* @ws-unpack writes only why it failed, to stderr */
		copy_keep_err(c->errtext, sizeof(c->errtext), &c->errlen, d, n);
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

struct copy_piece {
	struct copy_piece *next;
	size_t len, off;
	uint8_t data[];
};

struct copy_out {
	uv_loop_t *loop;
	const char *staging;
	const struct workspace_manifest *before;   /* NULL: stage every file */
	struct workspace_manifest *after;
	struct vm_exec *x;
	uint64_t total;          /* stream bytes received, against AGENT_COPY_OUT_MAX */
	int over;
	int exec_done, worker_done;
	int stop_output;         /* the unpacker ended: drop what still arrives */
	int killed_for_worker;   /* the exec was killed because the unpacker failed */
	char errtext[512];
	size_t errlen;
	uv_work_t work;
	/* shared with the unpacking job, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct copy_piece *head, *tail;
	int ended;               /* no more pieces will come */
	int aborted;             /* ... and the stream is incomplete */
	struct err e;            /* the exec's failure */
	struct err job_e;        /* the unpacker's */
	agent_copy_cb cb;
	void *ctx;
};

static void copy_out_end_stream(struct copy_out *c, int aborted)
{
	pthread_mutex_lock(&c->mu);
	c->ended = 1;
	c->aborted |= aborted;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void copy_out_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct copy_out *c = ctx;
	if (stream == 2) {
		copy_keep_err(c->errtext, sizeof(c->errtext), &c->errlen, d, n);
		return;
	}
	if (c->over || c->stop_output)
		return;
	struct copy_piece *p = NULL;
	if (c->total + n > AGENT_COPY_OUT_MAX || !(p = malloc(sizeof(*p) + n))) {
		c->over = 1;
		vm_exec_kill(x, 9);
		copy_out_end_stream(c, 1);
		return;
	}
	c->total += n;
	p->next = NULL;
	p->len = n;
	p->off = 0;
	memcpy(p->data, d, n);
	pthread_mutex_lock(&c->mu);
	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* workspace_read_fn on the pool thread: blocks until the loop queued bytes or
 * the exec ended. */
static long copy_out_read(void *ctx, uint8_t *buf, size_t cap)
{
	struct copy_out *c = ctx;
	long n = 0;
	pthread_mutex_lock(&c->mu);
	while (!c->head && !c->ended)
		pthread_cond_wait(&c->cv, &c->mu);
	while (c->head && (size_t)n < cap) {
		struct copy_piece *p = c->head;
		size_t take = p->len - p->off < cap - (size_t)n ? p->len - p->off : cap - (size_t)n;
		memcpy(buf + n, p->data + p->off, take);
		p->off += take;
		n += (long)take;
		if (p->off == p->len) {
			c->head = p->next;
			if (!c->head)
				c->tail = NULL;
			free(p);
		}
	}
	if (n == 0 && c->aborted)
		n = -EIO;   /* the stream was cut: not a clean end of it */
	pthread_mutex_unlock(&c->mu);
	return n;
}

static void copy_out_job(uv_work_t *w)
{
	struct copy_out *c = w->data;
	/* The copy-out may be as large as copy-in allowed, and no larger. */
	struct workspace_limits lim = { 0 };
	workspace_unpack_against(copy_out_read, c, c->staging, &lim, c->before, c->after, &c->job_e);
}

static void copy_out_finish(struct copy_out *c)
{
	if (!c->exec_done || !c->worker_done)
		return;
	const struct err *e = NULL;
	if (c->killed_for_worker && c->job_e.code)
		e = &c->job_e;   /* the refusal, not the kill it caused */
	else if (c->e.code)
		e = &c->e;
	else if (c->job_e.code)
		e = &c->job_e;
	if (e && e != &c->job_e && !c->job_e.code)
		workspace_manifest_free(c->after);
	for (struct copy_piece *p = c->head, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	c->cb(c->ctx, e);
	free(c);
}

static void copy_out_after_job(uv_work_t *w, int status)
{
	struct copy_out *c = w->data;
	(void)status;
	c->worker_done = 1;
	c->stop_output = 1;
	if (!c->exec_done && c->x && c->job_e.code) {
		/* The unpacker refused the stream: the rest is not wanted. (After
		 * a clean end of the archive the exec is left to exit: killing it
		 * would race its exec.exit.) */
		c->killed_for_worker = 1;
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
	copy_out_end_stream(c, c->e.code != 0);
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
	c->loop = loop;
	c->staging = staging;
	c->before = before;
	c->after = after;
	c->cb = cb;
	c->ctx = ctx;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	/* The guest agent's builtin (src/guest/ws.h). */
	static char *argv[] = { "@ws-pack", "/workspace", NULL };
	static const struct vm_exec_handlers h = { .output = copy_out_on_output, .done = copy_out_on_done };
	struct vm_exec_spec spec = { .argv = argv, .cwd = "/", .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	int rc = vm_exec_start(vm, &spec, &h, c, &c->x, e);
	if (rc < 0) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c);
		return rc;
	}
	c->work.data = c;
	rc = uv_queue_work(loop, &c->work, copy_out_job, copy_out_after_job);
	if (rc < 0) {
		/* The exec runs; its done callback reports this. */
		err_set(&c->job_e, rc, "copying the workspace out: %s", uv_strerror(rc));
		c->worker_done = 1;
		c->stop_output = 1;
		c->killed_for_worker = 1;
		vm_exec_kill(c->x, 9);
	}
	return 0;
}
