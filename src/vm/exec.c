/* Command execution in the guest: see exec.h.
 *
 * Replies may come after their exec finished and was freed, so reply callbacks
 * hold a ticket (vm + exec id) and look the exec up instead of keeping a
 * pointer. Exec ids are request ids, never reused on a channel. */
#include "vm/exec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "proto/msg.h"
#include "vm/vm.h"

/* One exec.output chunk can be at most a frame; decoded data is 3/4 of that. */
#define EXEC_CHUNK_MAX (FRAME_MAX / 4 * 3)

struct vm_exec {
	struct vm *vm;
	long id;                  /* the exec.start request id */
	struct vm_exec_handlers h;
	void *ctx;
	struct vm_exec_result result;
	unsigned timeout_ms;
	uv_timer_t timer;         /* host deadline; initialised only with a timeout */
	int has_timer;
	struct buf in;            /* stdin waiting for credit */
	size_t in_off;            /* bytes of `in` already sent */
	size_t in_flight;         /* sent, not yet acknowledged */
	int in_reqs;              /* exec.stdin requests not yet answered */
	int in_eof;               /* caller closed stdin */
	int in_eof_sent;
	int in_broken;            /* the guest refused stdin: no more can go */
	struct vm_exec *next;
};

struct vm_exec_ticket {
	struct vm *vm;
	long id;
	size_t bytes;             /* exec.stdin: bytes this request carried */
};

static void vm_exec_unlink(struct vm_exec *x)
{
	struct vm_exec **pp = vm_exec_list(x->vm);
	while (*pp && *pp != x)
		pp = &(*pp)->next;
	if (*pp)
		*pp = x->next;
}

static void vm_exec_free(uv_handle_t *h)
{
	free(h->data);
}

static void vm_exec_finish(struct vm_exec *x)
{
	vm_exec_unlink(x);
	buf_free(&x->in);
	if (x->h.done)
		x->h.done(x, &x->result, x->ctx);
	if (x->has_timer) {
		uv_timer_stop(&x->timer);
		uv_close((uv_handle_t *)&x->timer, vm_exec_free);
	} else {
		free(x);
	}
}

static struct vm_exec *vm_exec_find(struct vm *vm, json_int_t id)
{
	for (struct vm_exec *x = *vm_exec_list(vm); x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

static struct vm_exec_ticket *vm_exec_ticket(struct vm *vm, long id, size_t bytes)
{
	struct vm_exec_ticket *t = malloc(sizeof(*t));
	if (t)
		*t = (struct vm_exec_ticket){ vm, id, bytes };
	return t;
}

static void vm_exec_on_started(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	(void)ch;
	struct vm_exec_ticket *t = ctx;
	struct vm_exec *x = vm_exec_find(t->vm, t->id);
	free(t);
	if (!x)
		return;
	if (result) {
		x->result.started = 1;
		return;
	}
	const char *msg = error ? json_string_value(json_object_get(error, "message")) : NULL;
	/* Hostile input: only a plain errno number is taken. */
	json_t *no = error ? json_object_get(json_object_get(error, "data"), "errno") : NULL;
	if (json_is_integer(no) && json_integer_value(no) > 0 && json_integer_value(no) < 4096)
		x->result.exec_errno = (int)json_integer_value(no);
	err_set(&x->result.err, error ? -EINVAL : -ECONNABORTED, "%s",
		msg ? msg : "the VM went away before the command started");
	/* A failed start has no exec.exit to wait for. The handle stays registered
	 * if the channel just closed: vm_exec_abort_all finishes it then. */
	if (error)
		vm_exec_finish(x);
}

/* The guest did not end the command by its own timeout plus the grace. */
static void vm_exec_on_deadline(uv_timer_t *t)
{
	struct vm_exec *x = t->data;
	x->result.timed_out = 1;
	err_set(&x->result.err, -ETIMEDOUT,
		"the guest did not stop the command %u ms after its %.3g s timeout; "
		"the VM must be destroyed", VM_EXEC_GRACE_MS, x->timeout_ms / 1000.0);
	vm_exec_finish(x);
}

static json_t *vm_exec_string_array(char *const *list)
{
	json_t *a = json_array();
	for (size_t i = 0; list && list[i]; i++)
		json_array_append_new(a, json_string(list[i]));
	return a;
}

int vm_exec_start(struct vm *vm, const struct vm_exec_spec *spec,
		  const struct vm_exec_handlers *h, void *ctx, struct vm_exec **out,
		  struct err *e)
{
	if (!spec->argv || !spec->argv[0] || !spec->argv[0][0])
		return err_set(e, -EINVAL, "no command given (hint: ironclaw exec -- CMD [ARGS...])");
	for (size_t i = 0; spec->argv[i]; i++) {
		/* JSON carries UTF-8 only; jansson refuses anything else. */
		json_t *probe = json_string(spec->argv[i]);
		if (!probe)
			return err_set(e, -EINVAL, "argument %zu is not valid UTF-8", i);
		json_decref(probe);
	}
	struct vm_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return err_set(e, -ENOMEM, "out of memory");
	x->vm = vm;
	x->h = *h;
	x->ctx = ctx;
	x->timeout_ms = spec->timeout_ms;
	buf_init(&x->in, VM_EXEC_STDIN_QUEUE_MAX);
	json_t *params = json_pack("{s:o,s:s,s:I,s:b}", "argv", vm_exec_string_array(spec->argv),
				   "cwd", spec->cwd ? spec->cwd : "/", "timeout_ms",
				   (json_int_t)spec->timeout_ms, "stdin", spec->want_stdin);
	if (spec->env)
		json_object_set_new(params, "env", vm_exec_string_array(spec->env));
	struct vm_exec_ticket *t = vm_exec_ticket(vm, 0, 0);
	if (!t) {
		free(x);
		json_decref(params);
		return err_set(e, -ENOMEM, "out of memory");
	}
	long id = vm_request(vm, "exec.start", params, vm_exec_on_started, t);
	if (id < 0) {
		free(t);
		free(x);
		return err_set(e, (int)id, "sending exec.start: %s", strerror((int)-id));
	}
	t->id = id;
	x->id = id;
	if (spec->timeout_ms > 0) {
		uv_timer_init(vm_loop(vm), &x->timer);
		x->timer.data = x;
		x->has_timer = 1;
		uv_timer_start(&x->timer, vm_exec_on_deadline,
			       (uint64_t)spec->timeout_ms + VM_EXEC_GRACE_MS, 0);
	}
	struct vm_exec **list = vm_exec_list(vm);
	x->next = *list;
	*list = x;
	*out = x;
	return 0;
}

static int vm_exec_pump_stdin(struct vm_exec *x);

static void vm_exec_on_stdin_reply(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	(void)ch;
	struct vm_exec_ticket *t = ctx;
	struct vm_exec *x = vm_exec_find(t->vm, t->id);
	size_t bytes = t->bytes;
	free(t);
	if (!x)
		return;
	x->in_flight -= bytes;
	x->in_reqs--;
	if (result) {
		vm_exec_pump_stdin(x);
		if (x->h.stdin_credit)
			x->h.stdin_credit(x, x->ctx);
		return;
	}
	/* The command closed its stdin or exited (an error reply), or the channel
	 * is gone: nothing more can be delivered. */
	x->in_broken = 1;
	buf_reset(&x->in);
	x->in_off = 0;
	(void)error;
}

/* Sends queued stdin while the window has room. */
static int vm_exec_pump_stdin(struct vm_exec *x)
{
	while (!x->in_broken && x->in_reqs < VM_EXEC_STDIN_REQS &&
	       x->in_flight < VM_EXEC_STDIN_WINDOW) {
		size_t left = x->in.len - x->in_off, n = left;
		if (n > VM_EXEC_STDIN_CHUNK)
			n = VM_EXEC_STDIN_CHUNK;
		if (n > VM_EXEC_STDIN_WINDOW - x->in_flight)
			n = VM_EXEC_STDIN_WINDOW - x->in_flight;
		int eof = x->in_eof && !x->in_eof_sent && n == left;
		if (n == 0 && !eof)
			break;
		struct channel *ch = vm_channel(x->vm);
		struct vm_exec_ticket *t = vm_exec_ticket(x->vm, x->id, n);
		if (!ch || !t) {
			free(t);
			return ch ? -ENOMEM : -ENOTCONN;
		}
		long id = channel_request_stdin(ch, (uint64_t)x->id, x->in.data + x->in_off, n, eof,
						vm_exec_on_stdin_reply, t);
		if (id < 0) {
			free(t);
			return (int)id;
		}
		x->in_off += n;
		x->in_flight += n;
		x->in_reqs++;
		if (eof)
			x->in_eof_sent = 1;
	}
	if (x->in_off == x->in.len) {
		buf_reset(&x->in);
		x->in_off = 0;
	} else if (x->in_off >= VM_EXEC_STDIN_QUEUE_MAX / 2) {
		buf_consume(&x->in, x->in_off);
		x->in_off = 0;
	}
	return 0;
}

int vm_exec_write_stdin(struct vm_exec *x, const void *data, size_t len, int eof)
{
	if (x->in_eof || x->in_broken)
		return -EPIPE;
	if (len > 0 && x->in_off > 0 && (x->in_off >= x->in.len / 2 || x->in.len + len > x->in.max)) {
		buf_consume(&x->in, x->in_off);
		x->in_off = 0;
	}
	if (len > 0 && buf_append(&x->in, data, len) < 0)
		return -ENOBUFS;
	if (eof)
		x->in_eof = 1;
	return vm_exec_pump_stdin(x);
}

size_t vm_exec_stdin_pending(const struct vm_exec *x)
{
	return x->in.len - x->in_off + x->in_flight;
}

int vm_exec_kill(struct vm_exec *x, int signal)
{
	long id = vm_request(x->vm, "exec.kill",
			     json_pack("{s:I,s:i}", "exec", (json_int_t)x->id, "signal", signal), NULL, NULL);
	return id < 0 ? (int)id : 0;
}

static int vm_exec_deliver(struct vm *vm, json_int_t id, int stream, const uint8_t *data,
			   size_t len, struct err *e)
{
	struct vm_exec *x = vm_exec_find(vm, id);
	if (!x)
		return err_set(e, -EPROTO, "guest sent output for unknown exec %lld", (long long)id);
	if (x->h.output && len > 0)
		x->h.output(x, stream, data, len, x->ctx);
	return 0;
}

static int vm_exec_on_output(struct vm *vm, json_t *params, struct err *e)
{
	struct proto_output o;
	char why[256];
	if (proto_check_exec_output(params, EXEC_CHUNK_MAX, &o, why, sizeof(why)) < 0)
		return err_set(e, -EPROTO, "guest sent a bad notification: %s", why);
	int rc = vm_exec_deliver(vm, o.exec, o.stream, o.data, o.len, e);
	free(o.data);
	return rc;
}

int vm_exec_route_data(struct vm *vm, const struct frame_bin *b, struct err *e)
{
	/* The decoder checked type, stream and id ranges. */
	return vm_exec_deliver(vm, (json_int_t)b->exec, b->arg, b->data, b->len, e);
}

static int vm_exec_on_exit(struct vm *vm, json_t *params, struct err *e)
{
	struct proto_exit ex;
	char why[256];
	if (proto_check_exec_exit(params, &ex, why, sizeof(why)) < 0)
		return err_set(e, -EPROTO, "guest sent a bad notification: %s", why);
	struct vm_exec *x = vm_exec_find(vm, ex.exec);
	if (!x)
		return err_set(e, -EPROTO, "guest sent exit for unknown exec %lld", (long long)ex.exec);
	x->result.code = ex.code;
	x->result.signal = ex.signal;
	x->result.timed_out = ex.timed_out;
	x->result.started = 1;
	vm_exec_finish(x);
	return 0;
}

int vm_exec_route(struct vm *vm, const char *method, json_t *params, struct err *e)
{
	int rc;
	if (!strcmp(method, "exec.output"))
		rc = vm_exec_on_output(vm, params, e);
	else if (!strcmp(method, "exec.exit"))
		rc = vm_exec_on_exit(vm, params, e);
	else
		return 0;
	return rc < 0 ? rc : 1;
}

void vm_exec_abort_all(struct vm *vm, const struct err *why)
{
	struct vm_exec **list = vm_exec_list(vm);
	while (*list) {
		struct vm_exec *x = *list;
		if (!x->result.err.code)
			x->result.err = *why;
		vm_exec_finish(x);
	}
}
