/* One captured command in the VM: see vmcall.h. */
#include "agent/vmcall.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

struct vmcall {
	struct vm_exec *x;
	const uint8_t *in;
	size_t in_len, in_sent;
	int in_closed;
	vmcall_cb cb;
	void *ctx;
	struct vmcall_result r;
};

static int capture_init(struct vmcall_capture *c, size_t cap, int whole)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap;
	c->whole = whole;
	size_t half = whole ? cap : cap / 2;
	c->head = malloc(half ? half : 1);
	c->tail = whole ? NULL : malloc(cap - half ? cap - half : 1);
	return c->head && (whole || c->tail) ? 0 : -ENOMEM;
}

static void capture_free(struct vmcall_capture *c)
{
	free(c->head);
	free(c->tail);
}

/* Returns -EFBIG once a whole-mode capture passes its cap. */
static int capture_add(struct vmcall_capture *c, const uint8_t *p, size_t n)
{
	size_t head_cap = c->whole ? c->cap : c->cap / 2;
	size_t tail_cap = c->cap - head_cap;
	c->total += n;
	size_t take = head_cap - c->head_len < n ? head_cap - c->head_len : n;
	memcpy(c->head + c->head_len, p, take);
	c->head_len += take;
	p += take;
	n -= take;
	if (!n)
		return 0;
	if (c->whole || !tail_cap)
		return c->whole ? -EFBIG : 0;
	/* The tail is a ring of the newest bytes. */
	if (n >= tail_cap) {
		memcpy(c->tail, p + n - tail_cap, tail_cap);
		c->ring_pos = 0;
		c->tail_len = tail_cap;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		c->tail[c->ring_pos] = p[i];
		c->ring_pos = (c->ring_pos + 1) % tail_cap;
	}
	c->tail_len = c->tail_len + n > tail_cap ? tail_cap : c->tail_len + n;
	return 0;
}

char *vmcall_capture_text(const struct vmcall_capture *c, size_t *len)
{
	size_t tail_cap = c->cap - (c->whole ? c->cap : c->cap / 2);
	size_t cut = c->total - c->head_len - c->tail_len;
	char note[96] = "";
	if (cut)
		snprintf(note, sizeof(note), "\n[... %zu bytes cut ...]\n", cut);
	size_t n = c->head_len + strlen(note) + c->tail_len;
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, c->head, c->head_len);
	memcpy(s + c->head_len, note, strlen(note));
	char *t = s + c->head_len + strlen(note);
	/* Unroll the ring: oldest byte first. */
	size_t start = c->tail_len < tail_cap ? 0 : c->ring_pos;
	for (size_t i = 0; i < c->tail_len; i++)
		t[i] = (char)c->tail[(start + i) % (tail_cap ? tail_cap : 1)];
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

int vmcall_result_init(struct vmcall_result *r, const struct vmcall_spec *spec)
{
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
	if (capture_init(&r->out, spec->out_cap, spec->out_whole) < 0 ||
	    capture_init(&r->err, spec->err_cap, 0) < 0) {
		vmcall_result_free(r);
		return -ENOMEM;
	}
	return 0;
}

int vmcall_result_add(struct vmcall_result *r, int stream, const uint8_t *p, size_t n)
{
	if (stream != 1) {
		capture_add(&r->err, p, n);
		return 0;
	}
	if (capture_add(&r->out, p, n) < 0) {
		r->over_cap = 1;
		return -EFBIG;
	}
	return 0;
}

void vmcall_result_free(struct vmcall_result *r)
{
	capture_free(&r->out);
	capture_free(&r->err);
	r->out.head = r->out.tail = r->err.head = r->err.tail = NULL;
}

static void vmcall_feed(struct vmcall *c)
{
	while (!c->in_closed) {
		size_t left = c->in_len - c->in_sent;
		size_t n = left < VM_EXEC_STDIN_CHUNK ? left : VM_EXEC_STDIN_CHUNK;
		int eof = n == left;
		int rc = vm_exec_write_stdin(c->x, c->in + c->in_sent, n, eof);
		if (rc == -ENOBUFS)
			return;   /* stdin_credit brings us back */
		if (rc < 0) {
			c->in_closed = 1;   /* the command stopped reading: its exit tells */
			return;
		}
		c->in_sent += n;
		if (eof)
			c->in_closed = 1;
	}
}

static void vmcall_on_credit(struct vm_exec *x, void *ctx)
{
	(void)x;
	vmcall_feed(ctx);
}

static void vmcall_on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct vmcall *c = ctx;
	int was_over = c->r.over_cap;
	if (vmcall_result_add(&c->r, stream, data, len) < 0 && !was_over)
		vm_exec_kill(x, 9);
}

static void vmcall_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct vmcall *c = ctx;
	(void)x;
	if (res->err.code && !res->timed_out)
		c->r.e = res->err;
	c->r.timed_out = res->timed_out;
	c->r.exit_code = !res->started && res->err.code ? -1 : res->signal ? 128 + res->signal : res->code;
	if (res->err.code && res->timed_out)
		c->r.e = res->err;   /* the guest did not stop it: the VM must go */
	/* An error reply to exec.start: the guest is alive and said no. */
	c->r.refused = !res->started && res->err.code && (res->exec_errno || res->err.code == -EINVAL);
	c->cb(c->ctx, &c->r);
	vmcall_result_free(&c->r);
	free(c);
}

int vmcall_start(struct vm *vm, const struct vmcall_spec *spec, vmcall_cb cb, void *ctx,
		 struct err *e)
{
	struct vmcall *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(e, -ENOMEM, "out of memory");
	if (vmcall_result_init(&c->r, spec) < 0) {
		free(c);
		return err_set(e, -ENOMEM, "out of memory");
	}
	c->cb = cb;
	c->ctx = ctx;
	c->in = spec->stdin_data;
	c->in_len = spec->stdin_len;
	c->in_closed = !spec->stdin_data;
	static const struct vm_exec_handlers h = {
		.output = vmcall_on_output,
		.stdin_credit = vmcall_on_credit,
		.done = vmcall_on_done,
	};
	struct vm_exec_spec xs = {
		.argv = spec->argv,
		.cwd = spec->cwd,
		.timeout_ms = spec->timeout_ms,
		.want_stdin = spec->stdin_data != NULL,
	};
	int rc = vm_exec_start(vm, &xs, &h, c, &c->x, e);
	if (rc < 0) {
		vmcall_result_free(&c->r);
		free(c);
		return rc;
	}
	vmcall_feed(c);
	return 0;
}
