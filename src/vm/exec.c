/* Command execution in the guest: see exec.h. */
#include "vm/exec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "proto/frame.h"
#include "vm/vm.h"

/* One exec.output chunk can be at most a frame; decoded data is 3/4 of that. */
#define EXEC_CHUNK_MAX (FRAME_MAX / 4 * 3)

struct vm_exec {
	struct vm *vm;
	long id;                  /* the exec.start request id */
	struct vm_exec_handlers h;
	void *ctx;
	struct vm_exec_result result;
	struct vm_exec *next;
};

static void vm_exec_unlink(struct vm_exec *x)
{
	struct vm_exec **pp = vm_exec_list(x->vm);
	while (*pp && *pp != x)
		pp = &(*pp)->next;
	if (*pp)
		*pp = x->next;
}

static void vm_exec_finish(struct vm_exec *x)
{
	vm_exec_unlink(x);
	if (x->h.done)
		x->h.done(x, &x->result, x->ctx);
	free(x);
}

static struct vm_exec *vm_exec_find(struct vm *vm, json_int_t id)
{
	for (struct vm_exec *x = *vm_exec_list(vm); x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

/* The reply to exec.start may come after the exec was aborted and freed, so the
 * callback holds a ticket (vm + id) and looks the exec up, instead of a pointer. */
struct vm_exec_ticket {
	struct vm *vm;
	long id;
};

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
	json_t *params = json_pack("{s:o,s:s,s:I,s:b}", "argv", vm_exec_string_array(spec->argv),
				   "cwd", spec->cwd ? spec->cwd : "/", "timeout_ms",
				   (json_int_t)spec->timeout_ms, "stdin", spec->want_stdin);
	if (spec->env)
		json_object_set_new(params, "env", vm_exec_string_array(spec->env));
	struct vm_exec_ticket *t = malloc(sizeof(*t));
	if (!t) {
		free(x);
		json_decref(params);
		return err_set(e, -ENOMEM, "out of memory");
	}
	t->vm = vm;
	long id = vm_request(vm, "exec.start", params, vm_exec_on_started, t);
	if (id < 0) {
		free(t);
		free(x);
		return err_set(e, (int)id, "sending exec.start: %s", strerror((int)-id));
	}
	t->id = id;
	x->id = id;
	struct vm_exec **list = vm_exec_list(vm);
	x->next = *list;
	*list = x;
	*out = x;
	return 0;
}

int vm_exec_write_stdin(struct vm_exec *x, const void *data, size_t len, int eof)
{
	if (len > EXEC_CHUNK_MAX)
		return -EMSGSIZE;
	char *enc = malloc(b64_encoded_len(len) + 1);
	if (!enc)
		return -ENOMEM;
	b64_encode(data, len, enc);
	json_t *params = json_pack("{s:I,s:s,s:b}", "exec", (json_int_t)x->id, "data", enc, "eof", eof);
	free(enc);
	long id = vm_request(x->vm, "exec.stdin", params, NULL, NULL);
	return id < 0 ? (int)id : 0;
}

int vm_exec_kill(struct vm_exec *x, int signal)
{
	long id = vm_request(x->vm, "exec.kill",
			     json_pack("{s:I,s:i}", "exec", (json_int_t)x->id, "signal", signal), NULL, NULL);
	return id < 0 ? (int)id : 0;
}

static int vm_exec_on_output(struct vm *vm, json_t *params, struct err *e)
{
	json_int_t id;
	const char *stream, *data;
	size_t data_len;
	if (json_unpack(params, "{s:I,s:s,s:s%}", "exec", &id, "stream", &stream, "data", &data,
			&data_len) < 0)
		return err_set(e, -EPROTO, "guest sent exec.output without exec, stream and data");
	struct vm_exec *x = vm_exec_find(vm, id);
	if (!x)
		return err_set(e, -EPROTO, "guest sent output for unknown exec %lld", (long long)id);
	int fd = !strcmp(stream, "stdout") ? 1 : !strcmp(stream, "stderr") ? 2 : 0;
	if (!fd)
		return err_set(e, -EPROTO, "guest sent output on unknown stream '%.32s'", stream);
	uint8_t *bytes = malloc(data_len / 4 * 3 + 3);
	if (!bytes)
		return err_set(e, -ENOMEM, "out of memory");
	long n = b64_decode(data, data_len, bytes);
	if (n < 0) {
		free(bytes);
		return err_set(e, -EPROTO, "guest sent exec.output with invalid base64");
	}
	if (x->h.output && n > 0)
		x->h.output(x, fd, bytes, (size_t)n, x->ctx);
	free(bytes);
	return 0;
}

static int vm_exec_on_exit(struct vm *vm, json_t *params, struct err *e)
{
	json_int_t id;
	if (json_unpack(params, "{s:I}", "exec", &id) < 0)
		return err_set(e, -EPROTO, "guest sent exec.exit without exec");
	struct vm_exec *x = vm_exec_find(vm, id);
	if (!x)
		return err_set(e, -EPROTO, "guest sent exit for unknown exec %lld", (long long)id);
	json_t *code = json_object_get(params, "code");
	json_t *sig = json_object_get(params, "signal");
	if (json_is_integer(code) && json_integer_value(code) >= 0 && json_integer_value(code) <= 255) {
		x->result.code = (int)json_integer_value(code);
	} else if (json_is_integer(sig) && json_integer_value(sig) > 0 && json_integer_value(sig) < 65) {
		x->result.signal = (int)json_integer_value(sig);
	} else {
		return err_set(e, -EPROTO, "guest sent exec.exit without a valid code or signal");
	}
	x->result.timed_out = json_is_true(json_object_get(params, "timed_out"));
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
