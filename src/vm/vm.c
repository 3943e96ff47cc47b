/* VM lifecycle: see vm.h.
 *
 * States: BOOTING (VMM spawned, channel connecting, waiting for hello) ->
 * READY -> STOPPING (destroy requested) -> gone. The VMM's exit is watched with
 * a pidfd on the loop, so a VMM that dies is noticed at once, not at the next
 * timeout. Everything from the guest goes through the channel, which closes on
 * the first protocol violation. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/io.h"
#include "core/log.h"
#include "jail/jail.h"
#include "vm/accel.h"
#include "vm/exec.h"
#include "vm/image.h"
#include "vm/layout.h"
#include "vm/qemu.h"
#include "vm/qmp.h"

#define VM_STDERR_KEEP 8192
#define VM_SHUTDOWN_GRACE_MS 2000
#define VM_QMP_GRACE_MS 1000
/* Guest RAM plus what QEMU itself needs (TCG's translation cache, device state). */
#define VM_VMM_OVERHEAD_MIB 384

enum vm_state { VM_BOOTING, VM_READY, VM_STOPPING, VM_GONE };

struct vm {
	uv_loop_t *loop;
	enum vm_state state;
	struct vm_events ev;
	void *ctx;
	char id[JAIL_ID_MAX + 1];
	char dir[256];          /* host path of the per-VM directory */
	char channel_path[300];
	char qmp_path[300];
	char console_path[300];
	struct jail *jail;
	int pidfd;
	uv_poll_t pid_watch;
	uv_pipe_t stderr_pipe;
	uv_timer_t timer;       /* boot timeout, then destroy grace */
	struct channel *channel;
	struct buf stderr_tail;
	struct err channel_err;  /* why the channel closed, if it did */
	uint64_t started_ms;
	double boot_ms;
	int vmm_exited;
	int vmm_status;
	int failed_reported;
	int handles_open;
	int destroy_stage;      /* 0 none, 1 shutdown sent, 2 QMP quit sent */
	struct vm_exec *execs;  /* running commands (exec.c) */
};

struct vm_exec **vm_exec_list(struct vm *vm)
{
	return &vm->execs;
}

uv_loop_t *vm_loop(struct vm *vm)
{
	return vm->loop;
}

struct channel *vm_channel(struct vm *vm)
{
	return vm->state == VM_READY ? vm->channel : NULL;
}

static void vm_finish(struct vm *vm);

const char *vm_id(const struct vm *vm)
{
	return vm->id;
}

double vm_boot_ms(const struct vm *vm)
{
	return vm->boot_ms;
}

int vm_vmm_pid(const struct vm *vm)
{
	return vm->jail && !vm->vmm_exited ? (int)jail_pid(vm->jail) : 0;
}

size_t vm_write_backlog(const struct vm *vm)
{
	return vm->channel ? channel_write_backlog(vm->channel) : 0;
}

static void vm_make_id(char *id, size_t len)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[10];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(rand() ^ getpid());
	size_t n = snprintf(id, len, "vm-");
	for (size_t i = 0; i < sizeof(rnd) && n + 1 < len; i++)
		id[n++] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
	id[n] = '\0';
}

/* The last lines QEMU printed and the guest's console, for error reports. */
static void vm_describe_death(struct vm *vm, struct err *e)
{
	char tail[600] = "";
	char *console = NULL;
	size_t len = 0;
	if (io_read_file(vm->console_path, 4u << 20, &console, &len) == 0 && len) {
		size_t from = len > 400 ? len - 400 : 0;
		snprintf(tail, sizeof(tail), "; console tail: %s", console + from);
		for (char *c = tail; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
	}
	free(console);
	char errs[600] = "";
	if (vm->stderr_tail.len) {
		snprintf(errs, sizeof(errs), ": %s", (char *)vm->stderr_tail.data);
		for (char *c = errs; *c; c++)
			if (*c == '\n')
				*c = ' ';
	}
	if (WIFSIGNALED(vm->vmm_status))
		err_set(e, -ECHILD, "QEMU was killed by signal %d%s%s%s", WTERMSIG(vm->vmm_status),
			WTERMSIG(vm->vmm_status) == SIGSYS ? " (seccomp: a forbidden syscall; see `ironclaw audit`)" : "",
			errs, tail);
	else
		err_set(e, -ECHILD, "QEMU exited with status %d%s%s", WEXITSTATUS(vm->vmm_status),
			errs, tail);
}

static void vm_fail(struct vm *vm, const struct err *e)
{
	if (vm->failed_reported || vm->state == VM_STOPPING || vm->state == VM_GONE)
		return;
	vm->failed_reported = 1;
	vm_exec_abort_all(vm, e);
	if (vm->ev.failed)
		vm->ev.failed(vm, e, vm->ctx);
}

static void vm_keep_stderr(struct vm *vm, const char *p, size_t n)
{
	/* Keep only the newest bytes: QEMU's last words are the useful ones. */
	if (n > VM_STDERR_KEEP) {
		p += n - VM_STDERR_KEEP;
		n = VM_STDERR_KEEP;
	}
	if (vm->stderr_tail.len + n > VM_STDERR_KEEP)
		buf_consume(&vm->stderr_tail, vm->stderr_tail.len + n - VM_STDERR_KEEP);
	buf_append(&vm->stderr_tail, p, n);
}

/* The VMM has exited, so whatever it wrote is already in the pipe: read it now
 * rather than waiting for another loop turn. */
static void vm_drain_stderr(struct vm *vm)
{
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&vm->stderr_pipe, &fd) < 0)
		return;
	char chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		vm_keep_stderr(vm, chunk, (size_t)n);
	}
}

static void vm_on_vmm_exit(uv_poll_t *p, int status, int events)
{
	struct vm *vm = p->data;
	(void)status;
	(void)events;
	int st = 0;
	if (jail_poll(vm->jail, &st) != 1)
		return;
	vm->vmm_exited = 1;
	vm->vmm_status = st;
	uv_update_time(vm->loop);
	log_debug("%s: VMM exited at %llu ms", vm->id,
		  (unsigned long long)(uv_now(vm->loop) - vm->started_ms));
	uv_poll_stop(&vm->pid_watch);
	if (vm->state == VM_STOPPING) {
		vm_finish(vm);
		return;
	}
	vm_drain_stderr(vm);
	struct err e = { 0 };
	vm_describe_death(vm, &e);
	if (vm->state == VM_BOOTING)
		err_wrap(&e, "the VM died before the guest was ready");
	else
		err_wrap(&e, "the VM died");
	vm_fail(vm, &e);
}

static void vm_stderr_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static char scratch[4096];
	buf->base = scratch;
	buf->len = sizeof(scratch);
}

static void vm_on_stderr(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct vm *vm = s->data;
	if (n <= 0) {
		if (n < 0)
			uv_read_stop(s);
		return;
	}
	vm_keep_stderr(vm, buf->base, (size_t)n);
}

static void vm_on_boot_timeout(uv_timer_t *t)
{
	struct vm *vm = t->data;
	if (vm->state != VM_BOOTING)
		return;
	struct err e = { 0 };
	err_set(&e, -ETIMEDOUT,
		"the guest did not say hello within %.0f s (hint: raise --boot-timeout, or see `ironclaw doctor`)",
		(double)(uv_now(vm->loop) - vm->started_ms) / 1000.0);
	vm_fail(vm, &e);
}

static int vm_on_notify(struct channel *ch, const char *method, json_t *params, void *ctx,
			struct err *e)
{
	struct vm *vm = ctx;
	(void)ch;
	if (!strcmp(method, "hello")) {
		if (vm->state != VM_BOOTING)
			return err_set(e, -EPROTO, "guest said hello twice");
		vm->state = VM_READY;
		vm->boot_ms = (double)(uv_now(vm->loop) - vm->started_ms);
		log_debug("%s: guest ready after %.0f ms", vm->id, vm->boot_ms);
		uv_timer_stop(&vm->timer);
		if (vm->ev.ready)
			vm->ev.ready(vm, vm->ctx);
		return 0;
	}
	if (vm->state != VM_READY && vm->state != VM_STOPPING)
		return err_set(e, -EPROTO, "guest sent %.64s before hello", method);
	int routed = vm_exec_route(vm, method, params, e);
	if (routed != 0)
		return routed < 0 ? routed : 0;
	if (vm->ev.notify)
		return vm->ev.notify(vm, method, params, vm->ctx, e);
	return err_set(e, -EPROTO, "unexpected notification %.64s", method);
}

static int vm_on_data(struct channel *ch, const struct frame_bin *b, void *ctx, struct err *e)
{
	struct vm *vm = ctx;
	(void)ch;
	if (vm->state != VM_READY && vm->state != VM_STOPPING)
		return err_set(e, -EPROTO, "guest sent exec output before hello");
	return vm_exec_route_data(vm, b, e);
}

static void vm_on_channel_gone(uv_timer_t *t)
{
	struct vm *vm = t->data;
	if (!vm->vmm_exited)
		vm_fail(vm, &vm->channel_err);
}

static void vm_on_channel_error(struct channel *ch, const struct err *ce, void *ctx)
{
	struct vm *vm = ctx;
	(void)ch;
	if (vm->state == VM_STOPPING)
		return;
	vm->channel_err = *ce;
	if (ce->code == -EPIPE || ce->code == UV_ECONNRESET) {
		/* If the VMM is dying, its exit status is the better explanation: give it
		 * a moment to be noticed before reporting the bare EOF. */
		uv_timer_start(&vm->timer, vm_on_channel_gone, 500, 0);
		return;
	}
	vm_fail(vm, &vm->channel_err);
}

static void vm_handle_closed(uv_handle_t *h)
{
	struct vm *vm = h->data;
	if (--vm->handles_open > 0)
		return;
	void (*destroyed)(struct vm *, void *) = vm->ev.destroyed;
	void *ctx = vm->ctx;
	buf_free(&vm->stderr_tail);
	vm->state = VM_GONE;
	if (destroyed)
		destroyed(vm, ctx);
	free(vm);
}

/* The VMM is gone (or being killed): release everything. */
static void vm_finish(struct vm *vm)
{
	struct err e = { 0 };
	err_set(&e, -ECANCELED, "the VM was destroyed while the command ran");
	vm_exec_abort_all(vm, &e);
	err_clear(&e);
	if (vm->channel) {
		channel_close(vm->channel);
		vm->channel = NULL;
	}
	if (jail_destroy(vm->jail, &e) < 0)
		fprintf(stderr, "ironclaw: cleaning up VM %s: %s\n", vm->id, e.msg);
	vm->jail = NULL;
	uv_update_time(vm->loop);
	log_debug("%s: jail removed at %llu ms", vm->id,
		  (unsigned long long)(uv_now(vm->loop) - vm->started_ms));
	if (vm->pidfd >= 0) {
		uv_poll_stop(&vm->pid_watch);
		uv_close((uv_handle_t *)&vm->pid_watch, vm_handle_closed);
	}
	uv_timer_stop(&vm->timer);
	uv_close((uv_handle_t *)&vm->timer, vm_handle_closed);
	uv_close((uv_handle_t *)&vm->stderr_pipe, vm_handle_closed);
}

static void vm_on_destroy_step(uv_timer_t *t)
{
	struct vm *vm = t->data;
	if (vm->vmm_exited)
		return;
	if (vm->destroy_stage == 1) {
		/* The guest ignored shutdown: ask QEMU itself to quit. */
		vm->destroy_stage = 2;
		qmp_quit(vm->qmp_path, 300);
		uv_timer_start(&vm->timer, vm_on_destroy_step, VM_QMP_GRACE_MS, 0);
		return;
	}
	/* Last resort; jail_destroy sends SIGKILL and reaps. */
	vm_finish(vm);
}

static void vm_on_shutdown_reply(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	(void)ch;
	(void)result;
	(void)error;
	(void)ctx;
}

void vm_destroy(struct vm *vm)
{
	if (!vm || vm->state == VM_STOPPING || vm->state == VM_GONE)
		return;
	int was_ready = vm->state == VM_READY;
	vm->state = VM_STOPPING;
	uv_update_time(vm->loop);
	log_debug("%s: destroy requested at %llu ms", vm->id,
		  (unsigned long long)(uv_now(vm->loop) - vm->started_ms));
	uv_timer_stop(&vm->timer);
	if (vm->vmm_exited) {
		vm_finish(vm);
		return;
	}
	if (was_ready && vm->channel &&
	    channel_request(vm->channel, "shutdown", json_object(), vm_on_shutdown_reply, vm) > 0) {
		vm->destroy_stage = 1;
		uv_timer_start(&vm->timer, vm_on_destroy_step, VM_SHUTDOWN_GRACE_MS, 0);
		return;
	}
	/* No working guest to ask: stop the VMM now. */
	vm_finish(vm);
}

long vm_request(struct vm *vm, const char *method, json_t *params, channel_reply_cb cb, void *ctx)
{
	if (vm->state != VM_READY || !vm->channel) {
		json_decref(params);
		return -ENOTCONN;
	}
	return channel_request(vm->channel, method, params, cb, ctx);
}

static int vm_spawn_vmm(struct vm *vm, const struct vm_options *o, const struct vm_image *img,
			int stderr_fd, struct err *e)
{
	struct vm_accel_verdict accel;
	vm_accel_detect(QEMU_BINARY, img->kernel, img->initrd, &accel);

	/* The guest configures eth0 from the kernel command line. */
	char cmdline[1024];
	snprintf(cmdline, sizeof(cmdline), "%s", o->cmdline_extra ? o->cmdline_extra : "");
	if (o->net) {
		struct jail_net_addr addr;
		if (jail_net_plan(vm->id, &addr, e) < 0)
			return err_wrap(e, "planning the VM's network");
		snprintf(cmdline, sizeof(cmdline), "ironclaw.ip=%s/%u ironclaw.gw=%s%s%s",
			 addr.guest_ip_str, addr.prefix, addr.gw_str, o->cmdline_extra ? " " : "",
			 o->cmdline_extra ? o->cmdline_extra : "");
	}

	struct qemu_spec spec = {
		.accel = accel.accel,
		.cpus = o->cpus ? o->cpus : VM_DEFAULT_CPUS,
		.memory_mib = o->memory_mib ? o->memory_mib : VM_DEFAULT_MEMORY_MIB,
		.cmdline_extra = cmdline[0] ? cmdline : NULL,
		.tap_fd = o->net ? JAIL_TAP_FD : -1,
	};
	struct jail_bind binds[VM_LAYOUT_BINDS];
	vm_layout_apply(&spec, binds, img->kernel, img->initrd, vm->dir);
	char *argv[QEMU_ARGV_MAX];
	char store[8192];
	if (qemu_build_argv(&spec, argv, store, sizeof(store)) < 0)
		return err_set(e, -E2BIG, "QEMU command line too long");

	struct jail_config jc = {
		.vm_id = vm->id,
		.argv = argv,
		.binds = binds,
		.n_binds = VM_LAYOUT_BINDS,
		.use_kvm = accel.accel == VM_ACCEL_KVM,
		.memory_max_bytes = (uint64_t)(spec.memory_mib + VM_VMM_OVERHEAD_MIB) << 20,
		.cpu_percent = spec.cpus * 100,
		.pids_max = 0,
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = stderr_fd,
		.net = o->net,
		.allow = o->allow,
		.n_allow = o->n_allow,
	};
	pid_t pid;
	uint64_t t0 = uv_hrtime();
	int rc = jail_spawn(&jc, &pid, &vm->jail, e);
	if (rc < 0)
		return err_wrap(e, "starting QEMU in its jail");
	log_debug("%s: jail_spawn took %.1f ms", vm->id, (double)(uv_hrtime() - t0) / 1e6);
	if (o->progress)
		fprintf(stderr, "ironclaw: booting micro-VM %s (%s: %s)\n", vm->id,
			vm_accel_name(accel.accel), accel.reason);
	return 0;
}

int vm_create(uv_loop_t *loop, const struct vm_options *o, const struct vm_events *ev,
	      void *ctx, struct vm **out, struct err *e)
{
	int rc;
	int errpipe[2] = { -1, -1 };
	struct vm_image img;
	const char *kernel = o->kernel, *initrd = o->initrd;
	if (!kernel || !initrd) {
		rc = vm_image_find(&img, e);
		if (rc < 0)
			return rc;
		if (kernel)
			snprintf(img.kernel, sizeof(img.kernel), "%s", kernel);
		if (initrd)
			snprintf(img.initrd, sizeof(img.initrd), "%s", initrd);
	} else {
		snprintf(img.kernel, sizeof(img.kernel), "%s", kernel);
		snprintf(img.initrd, sizeof(img.initrd), "%s", initrd);
	}
	if (access(img.kernel, R_OK) < 0)
		return err_set(e, -errno, "cannot read kernel %s: %s", img.kernel, strerror(errno));
	if (access(img.initrd, R_OK) < 0)
		return err_set(e, -errno, "cannot read initramfs %s: %s", img.initrd, strerror(errno));

	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, -ENOMEM, "out of memory");
	vm->loop = loop;
	vm->ev = *ev;
	vm->ctx = ctx;
	vm->pidfd = -1;
	vm->state = VM_BOOTING;
	buf_init(&vm->stderr_tail, VM_STDERR_KEEP);
	vm_make_id(vm->id, sizeof(vm->id));

	rc = jail_prepare_dir(vm->id, vm->dir, sizeof(vm->dir), e);
	if (rc < 0)
		goto fail;
	snprintf(vm->channel_path, sizeof(vm->channel_path), "%s/channel.sock", vm->dir);
	snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s/qmp.sock", vm->dir);
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);

	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		rc = err_set(e, -errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	uv_update_time(loop);
	vm->started_ms = uv_now(loop);
	rc = vm_spawn_vmm(vm, o, &img, errpipe[1], e);
	close(errpipe[1]);
	errpipe[1] = -1;
	if (rc < 0)
		goto fail;

	vm->pidfd = (int)syscall(SYS_pidfd_open, jail_pid(vm->jail), 0);
	if (vm->pidfd < 0) {
		rc = err_set(e, -errno, "pidfd_open: %s (hint: needs Linux 5.3 or later)", strerror(errno));
		goto fail;
	}
	uv_poll_init(loop, &vm->pid_watch, vm->pidfd);
	vm->pid_watch.data = vm;
	vm->handles_open++;
	uv_poll_start(&vm->pid_watch, UV_READABLE, vm_on_vmm_exit);

	uv_pipe_init(loop, &vm->stderr_pipe, 0);
	vm->stderr_pipe.data = vm;
	vm->handles_open++;
	uv_pipe_open(&vm->stderr_pipe, errpipe[0]);
	errpipe[0] = -1;
	uv_read_start((uv_stream_t *)&vm->stderr_pipe, vm_stderr_alloc, vm_on_stderr);

	uv_timer_init(loop, &vm->timer);
	vm->timer.data = vm;
	vm->handles_open++;
	unsigned timeout = o->boot_timeout_ms ? o->boot_timeout_ms : VM_DEFAULT_BOOT_TIMEOUT_MS;
	uv_timer_start(&vm->timer, vm_on_boot_timeout, timeout, 0);

	static const struct channel_handlers handlers = {
		.notify = vm_on_notify,
		.data = vm_on_data,
		.on_error = vm_on_channel_error,
	};
	rc = channel_connect(loop, vm->channel_path, timeout, &handlers, vm, &vm->channel, e);
	if (rc < 0) {
		/* Handles are live now: report through the normal path. */
		vm_fail(vm, e);
	}
	*out = vm;
	return 0;

fail:
	if (errpipe[0] >= 0)
		close(errpipe[0]);
	if (errpipe[1] >= 0)
		close(errpipe[1]);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	struct err ignored = { 0 };
	jail_destroy(vm->jail, &ignored);
	buf_free(&vm->stderr_tail);
	free(vm);
	return rc;
}
