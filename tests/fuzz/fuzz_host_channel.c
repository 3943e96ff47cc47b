/* libFuzzer target: the host's handling of everything a guest can send. The
 * input is the byte stream from the guest, fed over a socketpair into a real
 * channel (vm/channel.c: frames, envelope, reply matching and checks) whose
 * notifications and binary frames are routed to real exec handling
 * (vm/exec.c: output, exit, stdin replies), as vm.c does. Before the input
 * arrives the host has sent exec.start (id 1), ping (id 2) and a binary
 * exec.stdin (id 3), so replies to those ids reach their checks.
 * Invariants: no crash or sanitizer report, at most one channel error, and
 * every handle closes. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vm/channel.c"
#include "vm/exec.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct vm {
	uv_loop_t loop;
	struct channel *ch;
	struct vm_exec *execs;
	int ready;
	int errors;
};

long vm_request(struct vm *vm, const char *method, json_t *params, channel_reply_cb cb, void *ctx)
{
	return channel_request(vm->ch, method, params, cb, ctx);
}

struct vm_exec **vm_exec_list(struct vm *vm)
{
	return &vm->execs;
}

uv_loop_t *vm_loop(struct vm *vm)
{
	return &vm->loop;
}

struct channel *vm_channel(struct vm *vm)
{
	return vm->errors ? NULL : vm->ch;
}

static int fz_notify(struct channel *ch, const char *method, json_t *params, void *ctx, struct err *e)
{
	struct vm *vm = ctx;
	(void)ch;
	if (!strcmp(method, "hello")) {
		if (vm->ready)
			return err_set(e, -EPROTO, "guest said hello twice");
		vm->ready = 1;
		return 0;
	}
	int rc = vm_exec_route(vm, method, params, e);
	return rc < 0 ? rc : rc == 1 ? 0 : err_set(e, -EPROTO, "unexpected %s", method);
}

static int fz_data(struct channel *ch, const struct frame_bin *b, void *ctx, struct err *e)
{
	(void)ch;
	return vm_exec_route_data(ctx, b, e);
}

static void fz_error(struct channel *ch, const struct err *e, void *ctx)
{
	struct vm *vm = ctx;
	(void)ch;
	if (++vm->errors > 1)
		abort();
	vm_exec_abort_all(vm, e);
}

static void fz_output(struct vm_exec *x, int stream, const uint8_t *d, size_t len, void *ctx)
{
	(void)x;
	(void)ctx;
	if ((stream != 1 && stream != 2) || (len && !d))
		abort();
}

static void fz_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	(void)x;
	(void)ctx;
	if (!r->err.code && r->signal == 0 && (r->code < 0 || r->code > 255))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct channel_handlers h = {
		.notify = fz_notify, .data = fz_data, .on_error = fz_error,
	};
	static const struct vm_exec_handlers xh = { .output = fz_output, .done = fz_done };
	static char *argv[] = { "cmd", NULL };
	struct vm vm = { 0 };
	struct err e = { 0 };
	struct vm_exec *x = NULL;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	uv_loop_init(&vm.loop);
	if (channel_open_fd(&vm.loop, sv[1], &h, &vm, &vm.ch, &e) < 0)
		abort();
	struct vm_exec_spec spec = { .argv = argv, .want_stdin = 1 };
	if (vm_exec_start(&vm, &spec, &xh, NULL, &x, &e) < 0)
		abort();
	channel_request(vm.ch, "ping", NULL, NULL, NULL);
	vm_exec_write_stdin(x, "in", 2, 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	/* Feed the input while the host loop runs, then EOF. */
	size_t off = 0;
	uint8_t sink[4096];
	while (off < size && !vm.errors) {
		ssize_t w = write(sv[0], data + off, size - off);
		if (w > 0)
			off += (size_t)w;
		while (read(sv[0], sink, sizeof(sink)) > 0)
			; /* what the host sends is not under test here */
		uv_run(&vm.loop, UV_RUN_NOWAIT);
	}
	close(sv[0]);
	while (!vm.errors && uv_run(&vm.loop, UV_RUN_ONCE))
		;
	err_set(&e, -ECANCELED, "fuzz input over");
	vm_exec_abort_all(&vm, &e);
	channel_close(vm.ch);
	uv_run(&vm.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&vm.loop) != 0)
		abort();
	return 0;
}
