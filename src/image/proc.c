/* One helper process (mmdebstrap, skopeo, umoci, tar) run from the libuv loop:
 * uv_spawn, its stdout and stderr read as lines (each capped, longer ones are
 * cut), the last lines kept for the error message, and one exit callback once
 * the process has ended and both pipes are drained. No waitpid, no blocking
 * read: the loop stays free while an image builds for half a minute. */
#include "image/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROC_LINE_MAX 4096
#define PROC_TAIL_MAX 2048
#define PROC_ENV_MAX 256

extern char **environ;

struct proc_stream {
	uv_pipe_t pipe;
	char line[PROC_LINE_MAX];
	size_t len;
	struct image_proc *p;
};

struct image_proc {
	uv_process_t proc;
	struct proc_stream out, err;
	image_proc_line_cb line_cb;
	image_proc_exit_cb done;
	void *ctx;
	int status;
	int exited;
	int open_handles;
	int streams_open;
	char tail[PROC_TAIL_MAX];
	size_t tail_len;
};

static void proc_tail_add(struct image_proc *p, const char *s, size_t n)
{
	if (n + 1 > PROC_TAIL_MAX)
		s += n - (PROC_TAIL_MAX / 2), n = PROC_TAIL_MAX / 2;
	if (p->tail_len + n + 2 > PROC_TAIL_MAX) {
		/* Drop the oldest lines until the new one fits. */
		size_t drop = p->tail_len + n + 2 - PROC_TAIL_MAX;
		char *nl = memchr(p->tail + drop, '\n', p->tail_len - drop);
		drop = nl ? (size_t)(nl - p->tail) + 1 : p->tail_len;
		memmove(p->tail, p->tail + drop, p->tail_len - drop);
		p->tail_len -= drop;
	}
	memcpy(p->tail + p->tail_len, s, n);
	p->tail_len += n;
	p->tail[p->tail_len++] = '\n';
	p->tail[p->tail_len] = '\0';
}

static void proc_emit(struct proc_stream *s)
{
	s->line[s->len] = '\0';
	proc_tail_add(s->p, s->line, s->len);
	if (s->p->line_cb)
		s->p->line_cb(s->p->ctx, s->line, s->len);
	s->len = 0;
}

static void proc_release(struct image_proc *p)
{
	if (--p->open_handles == 0)
		free(p);
}

static void proc_on_closed(uv_handle_t *h)
{
	proc_release(h->data);
}

/* A pipe's data is its stream, not the process. */
static void proc_on_pipe_closed(uv_handle_t *h)
{
	proc_release(((struct proc_stream *)h->data)->p);
}

static void proc_maybe_done(struct image_proc *p)
{
	if (!p->exited || p->streams_open)
		return;
	/* Drop a trailing newline so the tail reads well inside a message. */
	while (p->tail_len && p->tail[p->tail_len - 1] == '\n')
		p->tail[--p->tail_len] = '\0';
	p->done(p->ctx, p->status, p->tail);
	uv_close((uv_handle_t *)&p->proc, proc_on_closed);
}

static void proc_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536];
	(void)h;
	(void)suggested;
	/* Reads are consumed synchronously in proc_on_read: one buffer serves all. */
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void proc_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct proc_stream *s = st->data;
	if (n < 0) {
		if (s->len)
			proc_emit(s);
		uv_close((uv_handle_t *)st, proc_on_pipe_closed);
		s->p->streams_open--;
		proc_maybe_done(s->p);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char c = buf->base[i];
		if (c == '\n' || c == '\r') {
			if (s->len)
				proc_emit(s);
		} else if (s->len < PROC_LINE_MAX - 1) {
			s->line[s->len++] = c;
		}
	}
}

static void proc_on_exit(uv_process_t *h, int64_t status, int sig)
{
	struct image_proc *p = h->data;
	p->status = sig ? 128 + sig : (int)status;
	p->exited = 1;
	proc_maybe_done(p);
}

int image_proc_start(uv_loop_t *loop, char *const argv[], char *const env[], image_proc_line_cb line,
		     image_proc_exit_cb done, void *ctx, struct image_proc **out, struct err *e)
{
	char *envp[PROC_ENV_MAX + 1];
	size_t n = 0;
	for (char *const *v = env; v && *v && n < PROC_ENV_MAX / 2; v++)
		envp[n++] = *v;
	for (char **v = environ; *v && n < PROC_ENV_MAX; v++)
		envp[n++] = *v;
	envp[n] = NULL;

	struct image_proc *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	p->line_cb = line;
	p->done = done;
	p->ctx = ctx;
	p->out.p = p->err.p = p;
	uv_pipe_init(loop, &p->out.pipe, 0);
	uv_pipe_init(loop, &p->err.pipe, 0);
	p->out.pipe.data = &p->out;
	p->err.pipe.data = &p->err;
	p->proc.data = p;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->out.pipe },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->err.pipe },
	};
	uv_process_options_t po = {
		.exit_cb = proc_on_exit,
		.file = argv[0],
		.args = (char **)argv,
		.env = envp,
		.stdio_count = 3,
		.stdio = stdio,
	};
	int rc = uv_spawn(loop, &p->proc, &po);
	p->open_handles = 3;
	if (rc < 0) {
		/* libuv initialises the process handle even when the spawn fails. */
		uv_close((uv_handle_t *)&p->proc, proc_on_closed);
		uv_close((uv_handle_t *)&p->out.pipe, proc_on_pipe_closed);
		uv_close((uv_handle_t *)&p->err.pipe, proc_on_pipe_closed);
		if (rc == -ENOENT)
			return err_set(e, rc, "%s not found (hint: run `make deps`, it installs mmdebstrap, umoci, skopeo and e2fsprogs)",
				       argv[0]);
		return err_set(e, rc, "cannot start %s: %s", argv[0], uv_strerror(rc));
	}
	p->streams_open = 2;
	uv_read_start((uv_stream_t *)&p->out.pipe, proc_on_alloc, proc_on_read);
	uv_read_start((uv_stream_t *)&p->err.pipe, proc_on_alloc, proc_on_read);
	if (out)
		*out = p;
	return 0;
}
