/* vm/exec.c against a fake guest over a socketpair. The VM is a stand-in
 * defined here (struct vm is opaque to exec.c: it reaches it only through
 * vm_request, vm_exec_list, vm_loop and vm_channel), so exec's routing,
 * strictness, host deadline and stdin credit are tested without QEMU. */
#include "unit/chan_fake.h"

#include "vm/exec.h"
#include "vm/vm.h"

struct vm {
	struct fake f;
	struct channel *ch;
	struct vm_exec *execs;
	int errors;
	struct err last;
	/* what the exec reported */
	char out[256], errs[256];
	size_t out_len, err_len;
	int done;
	struct vm_exec_result res;
	int credits;
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
	return &vm->f.loop;
}

struct channel *vm_channel(struct vm *vm)
{
	return vm->errors ? NULL : vm->ch;
}

static int fake_vm_notify(struct channel *ch, const char *method, json_t *params, void *ctx,
			  struct err *e)
{
	(void)ch;
	int rc = vm_exec_route(ctx, method, params, e);
	return rc < 0 ? rc : rc == 1 ? 0 : err_set(e, -EPROTO, "unrouted %s", method);
}

static int fake_vm_data(struct channel *ch, const struct frame_bin *b, void *ctx, struct err *e)
{
	(void)ch;
	return vm_exec_route_data(ctx, b, e);
}

static void fake_vm_error(struct channel *ch, const struct err *e, void *ctx)
{
	struct vm *vm = ctx;
	(void)ch;
	vm->errors++;
	vm->last = *e;
	vm_exec_abort_all(vm, e);
}

static void vm_open(struct vm *vm)
{
	static const struct channel_handlers h = {
		.notify = fake_vm_notify, .data = fake_vm_data, .on_error = fake_vm_error,
	};
	struct err e = { 0 };
	memset(vm, 0, sizeof(*vm));
	fake_init(&vm->f);
	cr_assert_eq(channel_open_fd(&vm->f.loop, vm->f.host_fd, &h, vm, &vm->ch, &e), 0, "%s", e.msg);
}

static void vm_close(struct vm *vm)
{
	struct err e = { 0 };
	err_set(&e, -ECANCELED, "test over");
	vm_exec_abort_all(vm, &e);
	channel_close(vm->ch);
	fake_fini(&vm->f);
}

static void on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct vm *vm = ctx;
	(void)x;
	char *dst = stream == 1 ? vm->out : vm->errs;
	size_t *n = stream == 1 ? &vm->out_len : &vm->err_len;
	cr_assert_lt(*n + len, sizeof(vm->out));
	memcpy(dst + *n, data, len);
	*n += len;
}

static void on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct vm *vm = ctx;
	(void)x;
	vm->res = *r;
	vm->done = 1;
}

static void on_credit(struct vm_exec *x, void *ctx)
{
	struct vm *vm = ctx;
	(void)x;
	vm->credits++;
}

static const struct vm_exec_handlers handlers = {
	.output = on_output, .done = on_done, .stdin_credit = on_credit,
};

/* Starts `cmd` and answers exec.start as the guest; returns the exec id. */
static json_int_t start(struct vm *vm, unsigned timeout_ms, int want_stdin, struct vm_exec **x)
{
	static char *argv[] = { "cmd", NULL };
	struct vm_exec_spec spec = { .argv = argv, .timeout_ms = timeout_ms, .want_stdin = want_stdin };
	struct err e = { 0 };
	cr_assert_eq(vm_exec_start(vm, &spec, &handlers, vm, x, &e), 0, "%s", e.msg);
	json_t *req = fake_recv(&vm->f);
	cr_assert_str_eq(fake_method(req), "exec.start");
	json_int_t id = fake_id(req);
	fake_send(&vm->f, rpc_result(id, json_pack("{s:i}", "pid", 42)));
	return id;
}

TestSuite(vm_exec);

Test(vm_exec, output_and_exit_are_routed)
{
	struct vm vm;
	struct vm_exec *x;
	vm_open(&vm);
	json_int_t id = start(&vm, 0, 0, &x);
	fake_send_output(&vm.f, (uint64_t)id, 1, "hello ");
	fake_send(&vm.f, rpc_notification("exec.output", json_pack("{s:I,s:s,s:s}", "exec", id,
		  "stream", "stdout", "data", "d29ybGQ=")));
	fake_send_output(&vm.f, (uint64_t)id, 2, "oops");
	fake_send(&vm.f, rpc_notification("exec.exit", json_pack("{s:I,s:i}", "exec", id, "code", 3)));
	fake_run_until(&vm.f, &vm.done);
	cr_assert_eq(vm.errors, 0, "%s", vm.last.msg);
	cr_assert_eq(vm.out_len, 11);
	cr_assert_eq(memcmp(vm.out, "hello world", 11), 0);
	cr_assert_eq(vm.err_len, 4);
	cr_assert(vm.res.started);
	cr_assert_eq(vm.res.code, 3);
	cr_assert_eq(vm.res.signal, 0);
	cr_assert_eq(vm.res.err.code, 0);
	vm_close(&vm);
}

Test(vm_exec, a_failed_start_is_reported)
{
	struct vm vm;
	struct vm_exec *x;
	static char *argv[] = { "nope", NULL };
	struct vm_exec_spec spec = { .argv = argv };
	struct err e = { 0 };
	vm_open(&vm);
	cr_assert_eq(vm_exec_start(&vm, &spec, &handlers, &vm, &x, &e), 0);
	json_t *req = fake_recv(&vm.f);
	fake_send(&vm.f, rpc_error(fake_id(req), -32000, "cannot run \"nope\""));
	fake_run_until(&vm.f, &vm.done);
	cr_assert(strstr(vm.res.err.msg, "cannot run"), "%s", vm.res.err.msg);
	cr_assert_eq(vm.errors, 0);
	vm_close(&vm);
}

/* A notification for the running exec (%I = its id) that must close the
 * channel with an error naming needle. */
static void bad_note(const char *method, const char *fmt, const char *needle)
{
	struct vm vm;
	struct vm_exec *x;
	json_error_t jerr;
	vm_open(&vm);
	json_int_t id = start(&vm, 0, 0, &x);
	char text[512];
	const char *hole = strstr(fmt, "%I");
	cr_assert_not_null(hole);
	snprintf(text, sizeof(text), "%.*s%lld%s", (int)(hole - fmt), fmt, (long long)id, hole + 2);
	json_t *params = json_loads(text, 0, &jerr);
	cr_assert_not_null(params, "%s: %s", text, jerr.text);
	fake_send(&vm.f, rpc_notification(method, params));
	fake_run_until(&vm.f, &vm.errors);
	cr_assert_eq(vm.errors, 1);
	cr_assert(strstr(vm.last.msg, needle), "error lacks '%s': %s", needle, vm.last.msg);
	/* The running exec was finished with the channel's error. */
	cr_assert(vm.done);
	cr_assert_neq(vm.res.err.code, 0);
	vm_close(&vm);
}

Test(vm_exec, every_notification_is_strict)
{
	bad_note("exec.exit", "{\"exec\":%I,\"code\":0,\"extra\":1}", "unknown field \"extra\"");
	bad_note("exec.exit", "{\"exec\":%I,\"code\":0,\"signal\":9}", "exactly one");
	bad_note("exec.exit", "{\"exec\":%I}", "exactly one");
	bad_note("exec.exit", "{\"exec\":%I,\"code\":256}", "\"code\" must be between");
	bad_note("exec.exit", "{\"exec\":%I,\"signal\":0}", "\"signal\" must be between");
	bad_note("exec.exit", "{\"exec\":%I,\"code\":0,\"timed_out\":1}", "true or false");
	bad_note("exec.exit", "{\"exec\":\"%I\",\"code\":0}", "\"exec\" must be an integer");
	bad_note("exec.exit", "{\"exec\":999%I,\"code\":0}", "unknown exec");
	bad_note("exec.output", "{\"exec\":%I,\"stream\":\"stdin\",\"data\":\"\"}", "\"stream\" must be");
	bad_note("exec.output", "{\"exec\":%I,\"stream\":\"stdout\",\"data\":\"@@@@\"}", "base64");
	bad_note("exec.output", "{\"exec\":%I,\"stream\":\"stdout\",\"data\":\"YQ=\"}", "padded base64");
	bad_note("exec.output", "{\"exec\":%I,\"stream\":\"stdout\"}", "missing \"data\"");
	bad_note("exec.output", "{\"exec\":%I,\"stream\":\"stdout\",\"data\":\"\",\"x\":0}", "unknown field");
	bad_note("exec.output", "{\"exec\":999%I,\"stream\":\"stdout\",\"data\":\"YQ==\"}", "unknown exec");
}

Test(vm_exec, binary_output_for_an_unknown_exec_closes)
{
	struct vm vm;
	struct vm_exec *x;
	vm_open(&vm);
	json_int_t id = start(&vm, 0, 0, &x);
	fake_send_output(&vm.f, (uint64_t)id + 100, 1, "x");
	fake_run_until(&vm.f, &vm.errors);
	cr_assert(strstr(vm.last.msg, "unknown exec"), "%s", vm.last.msg);
	vm_close(&vm);
}

Test(vm_exec, the_host_deadline_ends_an_exec_the_guest_does_not_stop)
{
	struct vm vm;
	struct vm_exec *x;
	vm_open(&vm);
	start(&vm, 100, 0, &x);
	/* The guest says nothing more: the host's timer (timeout + grace) fires. */
	fake_run_until(&vm.f, &vm.done);
	cr_assert(vm.res.timed_out);
	cr_assert_eq(vm.res.err.code, -ETIMEDOUT);
	cr_assert(strstr(vm.res.err.msg, "did not stop the command"), "%s", vm.res.err.msg);
	vm_close(&vm);
}

Test(vm_exec, stdin_moves_on_credit)
{
	struct vm vm;
	struct vm_exec *x;
	vm_open(&vm);
	json_int_t id = start(&vm, 0, 1, &x);
	size_t total = VM_EXEC_STDIN_WINDOW + VM_EXEC_STDIN_QUEUE_MAX;
	uint8_t *data = malloc(total);
	for (size_t i = 0; i < total; i++)
		data[i] = (uint8_t)(i * 7);
	/* Fill the window, then the host queue behind it; past that: -ENOBUFS. */
	cr_assert_eq(vm_exec_write_stdin(x, data, VM_EXEC_STDIN_WINDOW, 0), 0);
	cr_assert_eq(vm_exec_write_stdin(x, data + VM_EXEC_STDIN_WINDOW, VM_EXEC_STDIN_QUEUE_MAX, 1), 0);
	cr_assert_eq(vm_exec_write_stdin(x, "z", 1, 0), -EPIPE, "stdin is closed after eof");
	cr_assert_eq(vm_exec_stdin_pending(x), total);
	/* Read everything the host sends before any credit comes back. */
	fake_drain(&vm.f, vm.ch);
	cr_assert_eq(vm.f.bin_bytes, VM_EXEC_STDIN_WINDOW,
		     "%llu bytes in flight, window %u", (unsigned long long)vm.f.bin_bytes,
		     VM_EXEC_STDIN_WINDOW);
	/* Acknowledge frames one by one: each frees exactly its bytes of window. */
	size_t acked = 0, seen = 0;
	uint8_t *got = malloc(total);
	int eof_seen = 0;
	while (acked < total) {
		struct fake_bin *b = &vm.f.bins[vm.f.bins_next];
		cr_assert_lt(vm.f.bins_next, vm.f.nbins, "the host stopped sending");
		vm.f.bins_next++;
		cr_assert_eq(b->hdr.type, FRAME_BIN_STDIN);
		cr_assert_eq(b->hdr.exec, (uint64_t)id);
		cr_assert_leq(b->hdr.len, VM_EXEC_STDIN_CHUNK);
		memcpy(got + seen, b->data, b->hdr.len);
		seen += b->hdr.len;
		eof_seen = b->hdr.arg & FRAME_BIN_EOF;
		int credits = vm.credits;
		vm.credits = 0;
		fake_send(&vm.f, rpc_result((json_int_t)b->hdr.id, json_object()));
		fake_run_until(&vm.f, &vm.credits);
		vm.credits += credits;
		acked += b->hdr.len;
		fake_drain(&vm.f, vm.ch);
		cr_assert_leq(vm.f.bin_bytes - acked, VM_EXEC_STDIN_WINDOW, "window overrun");
	}
	cr_assert_eq(seen, total);
	cr_assert(eof_seen, "the last frame carries eof");
	cr_assert_eq(memcmp(got, data, total), 0, "stdin bytes differ");
	cr_assert_eq(vm_exec_stdin_pending(x), 0);
	free(got);
	free(data);
	vm_close(&vm);
}

Test(vm_exec, the_host_queue_is_capped)
{
	struct vm vm;
	struct vm_exec *x;
	vm_open(&vm);
	start(&vm, 0, 1, &x);
	uint8_t *data = calloc(1, VM_EXEC_STDIN_QUEUE_MAX);
	cr_assert_eq(vm_exec_write_stdin(x, data, VM_EXEC_STDIN_WINDOW, 0), 0);
	cr_assert_eq(vm_exec_write_stdin(x, data, VM_EXEC_STDIN_QUEUE_MAX, 0), 0);
	cr_assert_eq(vm_exec_write_stdin(x, data, 1, 0), -ENOBUFS);
	free(data);
	vm_close(&vm);
}

Test(vm_exec, a_refused_stdin_stops_further_writes)
{
	struct vm vm;
	struct vm_exec *x;
	vm_open(&vm);
	start(&vm, 0, 1, &x);
	cr_assert_eq(vm_exec_write_stdin(x, "abc", 3, 0), 0);
	struct fake_bin *b = fake_recv_bin(&vm.f);
	fake_send(&vm.f, rpc_error((json_int_t)b->hdr.id, -32000, "the command closed it"));
	/* Nothing to wait on but the reply's effect: poll the loop until it lands. */
	int refused = 0;
	for (int i = 0; i < 1000 && !refused; i++) {
		uv_run(&vm.f.loop, UV_RUN_NOWAIT);
		refused = vm_exec_write_stdin(x, "d", 1, 0) == -EPIPE;
		if (!refused) {
			struct pollfd p = { .fd = vm.f.fd, .events = POLLIN };
			poll(&p, 1, 10);
		}
	}
	cr_assert(refused);
	cr_assert_eq(vm.errors, 0);
	vm_close(&vm);
}
