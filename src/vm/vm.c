/* VM lifecycle: see vm.h and backend.h.
 *
 * States: PROBING (the backend picks the accelerator) -> SPAWNING (the jail is
 * built on the thread pool) -> BOOTING (VMM runs; channel connecting; waiting for
 * the backend's readiness event) -> READY -> STOPPING -> GONE.
 *
 * Stopping escalates through explicit stages, one timer for the purpose:
 *   GUEST    `shutdown` sent: the guest powers off, the VMM exits;
 *   VMM      the backend asked the VMM itself to quit;
 *   KILL     SIGKILL sent;
 *   CLEANUP  the VMM is gone or killed: the launcher removes the jail on the
 *            thread pool, then our handles close and `destroyed` runs.
 * Each purpose has its own timer (readiness deadline, stop escalation, the grace
 * after a channel EOF), so one can never cancel another by accident. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"
#include "jail/jail.h"
#include "vm/exec.h"
#include "vm/image.h"
#include "vm/launch.h"
#include "vm/snapshot.h"
#include "vm/layout.h"

#define VM_SHUTDOWN_GRACE_MS 2000
#define VM_QUIT_GRACE_MS 1000
#define VM_KILL_GRACE_MS 2000
#define VM_EOF_GRACE_MS 500
#define VM_CONNECT_MARGIN_MS 250  /* the connect step gives up this much before the boot deadline */

enum vm_state { VM_PROBING, VM_SPAWNING, VM_BOOTING, VM_READY, VM_STOPPING, VM_GONE };
enum vm_stop_stage { VM_STOP_NONE, VM_STOP_GUEST, VM_STOP_VMM, VM_STOP_KILL, VM_STOP_CLEANUP };

struct vm {
	uv_loop_t *loop;
	const struct vm_backend_ops *ops;
	struct vm_backend_vm bv;
	enum vm_state state;
	enum vm_stop_stage stop;
	struct vm_events ev;
	void *ctx;
	char id[JAIL_ID_MAX + 1];
	struct jail_names names; /* every derived name, computed once in vm_create */
	const char *dir;        /* host path of the per-VM directory (names.dir) */
	char console_path[300];
	struct vm_image img;
	char root_image[4200];  /* the image disk (vm_options.root_image), or "" */
	char scratch[340];      /* the scratch disk in the VM's directory, or "" */
	unsigned disk_mib;
	char cmdline[1024];
	unsigned cpus, memory_mib, boot_timeout_ms;
	int progress;
	int net;
	struct jail_net_allow allow[JAIL_ALLOW_MAX];
	size_t n_allow;
	struct vm_launch_plan plan;
	struct jail_config jc;
	struct vm_launch *launch;
	struct channel *channel;
	uv_timer_t boot_timer;  /* readiness deadline */
	uv_timer_t stop_timer;  /* stop escalation */
	uv_timer_t eof_timer;   /* after a channel EOF: let the VMM's exit explain it */
	int handles_open;
	struct err channel_err;  /* why the channel closed, if it did */
	uint64_t started_ms;
	double boot_ms;
	int vmm_exited;
	int vmm_status;
	int failed_reported;
	int probing;            /* the backend's probe has not answered yet */
	enum vm_stop_stage exit_stage; /* the stop stage in force when the VMM exited */
	struct vm_exec *execs;  /* running commands (exec.c) */
	char restore_from[4200]; /* a saved state to restore, or "" */
};

struct vm_exec **vm_exec_list(struct vm *vm)
{
	return &vm->execs;
}

struct channel *vm_channel(struct vm *vm)
{
	return vm->state == VM_READY ? vm->channel : NULL;
}

const char *vm_id(const struct vm *vm)
{
	return vm->id;
}

uv_loop_t *vm_loop(struct vm *vm)
{
	return vm->loop;
}

const char *vm_backend_name(const struct vm *vm)
{
	return vm->ops->name;
}

const char *vm_stop_how(const struct vm *vm)
{
	if (!vm->vmm_exited)
		return "not stopped";
	switch (vm->exit_stage) {
	case VM_STOP_GUEST:
		return "the guest powered off";
	case VM_STOP_VMM:
		return "the VMM quit when asked";
	case VM_STOP_KILL:
	case VM_STOP_CLEANUP:
		return "the VMM was killed";
	default:
		return "the VMM exited by itself";
	}
}

double vm_boot_ms(const struct vm *vm)
{
	return vm->boot_ms;
}

int vm_vmm_pid(const struct vm *vm)
{
	return vm->launch && !vm->vmm_exited ? (int)vm_launch_pid(vm->launch) : 0;
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

static void vm_log_at(struct vm *vm, const char *what)
{
	if (!log_enabled(LOG_DEBUG))
		return;
	uv_update_time(vm->loop);
	log_debug("%s: %s at %llu ms", vm->id, what,
		  (unsigned long long)(uv_now(vm->loop) - vm->started_ms));
}

/* The last lines the VMM printed and the guest's console, for error reports. */
static void vm_describe_death(struct vm *vm, struct err *e)
{
	char tail[600] = "";
	char console[401];
	/* Through the launcher: the directory is the VM uid's, not ours. */
	int cfd = vm_launcher_get()->open_read(vm->console_path);
	if (cfd >= 0) {
		off_t end = lseek(cfd, 0, SEEK_END);
		ssize_t n = end > 0 ? pread(cfd, console, sizeof(console) - 1,
					    end > 400 ? end - 400 : 0) : 0;
		close(cfd);
		if (n > 0) {
			console[n] = '\0';
			snprintf(tail, sizeof(tail), "; console tail: %s", console);
		}
	}
	char errs[600] = "";
	const char *text = vm_launch_stderr(vm->launch);
	if (text[0])
		snprintf(errs, sizeof(errs), ": %s", text);
	for (char *c = tail; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	for (char *c = errs; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	const char *vmm = vm->ops->vmm_name;
	int sig = WIFSIGNALED(vm->vmm_status) ? WTERMSIG(vm->vmm_status) : 0;
	if (sig)
		err_set(e, -ECHILD, "%s was killed by signal %d%s%s%s", vmm, sig,
			sig == SIGSYS ? " (seccomp: a forbidden syscall; see `ironclaw audit`)" : "",
			errs, tail);
	else
		err_set(e, -ECHILD, "%s exited with status %d%s%s", vmm, WEXITSTATUS(vm->vmm_status),
			errs, tail);
}

/* Reports that the VM cannot go on, once, and never during our own stop. */
static void vm_fail(struct vm *vm, const struct err *e)
{
	if (vm->failed_reported || vm->state == VM_STOPPING || vm->state == VM_GONE)
		return;
	vm->failed_reported = 1;
	uv_timer_stop(&vm->boot_timer);
	vm_exec_abort_all(vm, e);
	if (vm->ev.failed)
		vm->ev.failed(vm, e, vm->ctx);
}

static void vm_became_ready(struct vm *vm)
{
	vm->state = VM_READY;
	uv_update_time(vm->loop);
	vm->boot_ms = (double)(uv_now(vm->loop) - vm->started_ms);
	log_debug("%s: guest ready after %.0f ms", vm->id, vm->boot_ms);
	uv_timer_stop(&vm->boot_timer);
	if (vm->ev.ready)
		vm->ev.ready(vm, vm->ctx);
}

/* ---- teardown ---- */

static void vm_handle_closed(uv_handle_t *h)
{
	struct vm *vm = h->data;
	if (--vm->handles_open > 0)
		return;
	void (*destroyed)(struct vm *, void *) = vm->ev.destroyed;
	void *ctx = vm->ctx;
	vm->state = VM_GONE;
	free(vm->bv.state);
	if (destroyed)
		destroyed(vm, ctx);
	free(vm);
}

static void vm_on_released(void *ctx, const struct err *e)
{
	struct vm *vm = ctx;
	vm->launch = NULL;
	if (e)
		log_warn("cleaning up VM %s: %s", vm->id, e->msg);
	vm_log_at(vm, "jail removed");
	uv_close((uv_handle_t *)&vm->boot_timer, vm_handle_closed);
	uv_close((uv_handle_t *)&vm->stop_timer, vm_handle_closed);
	uv_close((uv_handle_t *)&vm->eof_timer, vm_handle_closed);
}

/* The VMM is gone (or is being killed): release everything. */
static void vm_cleanup(struct vm *vm)
{
	if (vm->stop == VM_STOP_CLEANUP)
		return;
	vm->stop = VM_STOP_CLEANUP;
	struct err e = { 0 };
	err_set(&e, -ECANCELED, "the VM was destroyed while the command ran");
	vm_exec_abort_all(vm, &e);
	if (vm->channel) {
		channel_close(vm->channel);
		vm->channel = NULL;
	}
	vm->ops->release(&vm->bv);
	uv_timer_stop(&vm->boot_timer);
	uv_timer_stop(&vm->stop_timer);
	uv_timer_stop(&vm->eof_timer);
	if (vm->launch) {
		vm_launch_release(vm->launch, vm_on_released, vm);   /* also kills the VMM */
	} else {
		struct err de = { 0 };
		if (vm_launcher_get()->discard(&vm->names, &de) < 0)   /* the directory and slot, if made */
			log_warn("cleaning up VM %s: %s", vm->id, de.msg);
		vm_on_released(vm, NULL);
	}
}

static void vm_on_stop_timer(uv_timer_t *t)
{
	struct vm *vm = t->data;
	if (vm->vmm_exited)
		return;
	switch (vm->stop) {
	case VM_STOP_GUEST:
		/* The guest ignored shutdown: ask the VMM itself to quit. */
		vm->stop = VM_STOP_VMM;
		vm_log_at(vm, "asking the VMM to quit");
		vm->ops->stop(&vm->bv);
		uv_timer_start(&vm->stop_timer, vm_on_stop_timer, VM_QUIT_GRACE_MS, 0);
		break;
	case VM_STOP_VMM:
		vm->stop = VM_STOP_KILL;
		vm_log_at(vm, "killing the VMM");
		vm->ops->force_stop(&vm->bv);
		uv_timer_start(&vm->stop_timer, vm_on_stop_timer, VM_KILL_GRACE_MS, 0);
		break;
	default:
		/* SIGKILL did not show as an exit in time: the launcher reaps it anyway. */
		vm_cleanup(vm);
		break;
	}
}

static void vm_on_shutdown_reply(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	(void)ch;
	(void)result;
	(void)error;
	(void)ctx;
}

static void vm_destroy_how(struct vm *vm, int now)
{
	if (!vm || vm->state == VM_STOPPING || vm->state == VM_GONE)
		return;
	enum vm_state was = vm->state;
	vm->state = VM_STOPPING;
	vm_log_at(vm, "destroy requested");
	uv_timer_stop(&vm->boot_timer);
	uv_timer_stop(&vm->eof_timer);
	if (vm->probing) {
		/* The probe's verdict arrives later; vm_on_probe sees STOPPING. */
		return;
	}
	if (vm->vmm_exited || was == VM_SPAWNING || !vm->launch) {
		vm_cleanup(vm);
		return;
	}
	if (!now && was == VM_READY && vm->channel &&
	    channel_request(vm->channel, "shutdown", json_object(), vm_on_shutdown_reply, vm) > 0) {
		vm->stop = VM_STOP_GUEST;
		uv_timer_start(&vm->stop_timer, vm_on_stop_timer, VM_SHUTDOWN_GRACE_MS, 0);
		return;
	}
	/* No working guest to ask, or nothing of it is kept: stop the VMM now. */
	vm->stop = VM_STOP_KILL;
	vm->ops->force_stop(&vm->bv);
	uv_timer_start(&vm->stop_timer, vm_on_stop_timer, VM_KILL_GRACE_MS, 0);
}

void vm_destroy(struct vm *vm)
{
	vm_destroy_how(vm, 0);
}

void vm_destroy_now(struct vm *vm)
{
	vm_destroy_how(vm, 1);
}

/* ---- the guest channel ---- */

static void vm_on_boot_timeout(uv_timer_t *t)
{
	struct vm *vm = t->data;
	if (vm->state != VM_BOOTING && vm->state != VM_SPAWNING)
		return;
	struct err e = { 0 };
	err_set(&e, -ETIMEDOUT,
		"the guest was not ready within %.0f s (hint: raise --boot-timeout, or see `ironclaw doctor`)",
		(double)vm->boot_timeout_ms / 1000.0);
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
		if (vm->ops->readiness(&vm->bv) == VM_READY_ON_HELLO)
			vm_became_ready(vm);
		return 0;
	}
	if (vm->state != VM_READY && vm->state != VM_STOPPING)
		return err_set(e, -EPROTO, "guest sent %.64s before it was ready", method);
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
		return err_set(e, -EPROTO, "guest sent exec output before it was ready");
	return vm_exec_route_data(vm, b, e);
}

static void vm_on_eof_grace(uv_timer_t *t)
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
		uv_timer_start(&vm->eof_timer, vm_on_eof_grace, VM_EOF_GRACE_MS, 0);
		return;
	}
	vm_fail(vm, &vm->channel_err);
}

static void vm_on_identity_reply(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	struct vm *vm = ctx;
	(void)ch;
	if (vm->state != VM_BOOTING)
		return;
	struct err e = { 0 };
	if (result && vm_snapshot_identity_check(result, &e) == 0) {
		vm_became_ready(vm);
		return;
	}
	if (!result) {
		const char *m = json_string_value(json_object_get(error, "message"));
		err_set(&e, -EPROTO, "the restored guest refused a fresh identity: %.200s",
			m ? m : "no message");
	}
	vm_fail(vm, &e);
}

static void vm_on_ping_reply(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	struct vm *vm = ctx;
	(void)ch;
	(void)error;
	if (vm->state != VM_BOOTING)
		return;
	struct err e = { 0 };
	if (result) {
		if (!vm->restore_from[0]) {
			vm_became_ready(vm);
			return;
		}
		/* A clone must not share the template's identity: it is ready only
		 * once it took fresh entropy, the clock, its hostname and id. */
		json_t *params = vm_snapshot_identity_params(vm->id, &e);
		if (params && channel_request(vm->channel, "vm.identity", params,
					      vm_on_identity_reply, vm) > 0)
			return;
		if (!e.code)
			err_set(&e, -EIO, "cannot send vm.identity to the restored guest");
		vm_fail(vm, &e);
		return;
	}
	err_set(&e, -EPROTO, "the guest did not answer ping after the restore");
	vm_fail(vm, &e);
}

static void vm_send_ping(struct vm *vm)
{
	struct err e = { 0 };
	if (channel_request(vm->channel, "ping", json_object(), vm_on_ping_reply, vm) < 0) {
		err_set(&e, -EIO, "cannot send ping to the guest");
		vm_fail(vm, &e);
	}
}

static void vm_on_restored(void *ctx, const struct err *re)
{
	struct vm *vm = ctx;
	if (vm->state != VM_BOOTING)
		return;
	if (re) {
		/* QEMU exits when it cannot load a stream, and its own reason (on
		 * stderr) beats our lost QMP connection: wait for the exit a moment,
		 * as after a channel EOF. */
		vm->channel_err = *re;
		err_wrap(&vm->channel_err, "restoring %s", vm->restore_from);
		uv_timer_start(&vm->eof_timer, vm_on_eof_grace, VM_EOF_GRACE_MS, 0);
		return;
	}
	vm_log_at(vm, "state handed to the VMM");
	vm_send_ping(vm);
}

static void vm_on_connected(void *ctx, int fd, const struct err *ce)
{
	struct vm *vm = ctx;
	struct err e = { 0 };
	if (vm->state != VM_BOOTING) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (ce) {
		e = *ce;
		err_wrap(&e, "connecting the guest channel");
		vm_fail(vm, &e);
		return;
	}
	vm_log_at(vm, "channel connected");
	static const struct channel_handlers handlers = {
		.notify = vm_on_notify,
		.data = vm_on_data,
		.on_error = vm_on_channel_error,
	};
	if (channel_open_fd(vm->loop, fd, &handlers, vm, &vm->channel, &e) < 0) {
		vm_fail(vm, &e);   /* the channel owned fd and closed it */
		return;
	}
	if (vm->ops->readiness(&vm->bv) != VM_READY_ON_PING)
		return;
	if (!vm->restore_from[0]) {
		vm_send_ping(vm);
		return;
	}
	/* The channel is connected before the state loads, so the restored guest
	 * never sees its host side closed (virtio-serial keeps the saved
	 * "host connected" and sends no port-close event). */
	int rc = vm->ops->snapshot_load(&vm->bv, vm->restore_from, vm_on_restored, vm);
	if (rc < 0) {
		err_set(&e, rc, "restoring %s: %s", vm->restore_from, strerror(-rc));
		vm_fail(vm, &e);
	}
}

/* ---- the VMM process ---- */

static void vm_on_vmm_exit(struct vm_launch *l, int status, void *ctx)
{
	struct vm *vm = ctx;
	(void)l;
	vm->vmm_exited = 1;
	vm->vmm_status = status;
	vm_log_at(vm, "VMM exited");
	vm->exit_stage = vm->stop;
	if (vm->state == VM_STOPPING) {
		vm_cleanup(vm);
		return;
	}
	struct err e = { 0 };
	vm_describe_death(vm, &e);
	err_wrap(&e, vm->state == VM_BOOTING ? "the VM died before the guest was ready" : "the VM died");
	vm_fail(vm, &e);
}

static void vm_on_vmm_started(struct vm_launch *l, const struct err *le, void *ctx)
{
	struct vm *vm = ctx;
	(void)l;
	struct err e = { 0 };
	if (le) {
		e = *le;
		err_wrap(&e, "starting %s in its jail", vm->ops->vmm_name);
		vm->vmm_exited = 1;
		if (vm->state == VM_STOPPING)
			vm_cleanup(vm);
		else
			vm_fail(vm, &e);
		return;
	}
	vm_log_at(vm, "VMM started");
	if (vm->state == VM_STOPPING) {
		vm_cleanup(vm);
		return;
	}
	vm->state = VM_BOOTING;
	/* The connect step's deadline ends just before the VM's readiness
	 * deadline (both run from the spawn), so a connect that never got through
	 * fails with its own reason ("nothing answered on vsock port 53") rather
	 * than the generic "not ready within N s". */
	uv_update_time(vm->loop);
	uint64_t spent = uv_now(vm->loop) - vm->started_ms;
	uint64_t left = vm->boot_timeout_ms > spent ? vm->boot_timeout_ms - spent : 1;
	unsigned connect_ms = (unsigned)(left > 2 * VM_CONNECT_MARGIN_MS ? left - VM_CONNECT_MARGIN_MS : left);
	if (vm->ops->connect(&vm->bv, connect_ms, vm_on_connected, vm, &e) < 0)
		vm_fail(vm, &e);
}

static int vm_launch_vmm(struct vm *vm, const struct vm_accel_verdict *accel, struct err *e)
{
	int rc;
	char cmdline[sizeof(vm->cmdline) + 128];
	snprintf(cmdline, sizeof(cmdline), "%s", vm->cmdline);
	if (vm->net) {
		/* The guest configures eth0 from the kernel command line. */
		struct jail_net_addr addr;
		if ((rc = vm_launcher_get()->net_reserve(&vm->names, &addr, e)) < 0)
			return err_wrap(e, "reserving the VM's network addresses");
		snprintf(cmdline, sizeof(cmdline), "ironclaw.ip=%s/%u ironclaw.gw=%s%s%s", addr.guest_ip_str,
			 addr.prefix, addr.gw_str, vm->cmdline[0] ? " " : "", vm->cmdline);
	}
	const struct vm_backend_spec spec = {
		.id = vm->id, .dir = vm->dir, .kernel = vm->img.kernel, .initrd = vm->img.initrd,
		.cmdline_extra = cmdline[0] ? cmdline : NULL, .cpus = vm->cpus,
		.memory_mib = vm->memory_mib, .accel = accel->accel,
		.tap_fd = vm->net ? JAIL_TAP_FD : -1,
		.restore = vm->restore_from[0] != '\0',
		.restore_from = vm->restore_from[0] ? vm->restore_from : NULL,
		.root_image = vm->root_image[0] ? vm->root_image : NULL,
		.scratch_image = vm->scratch[0] ? vm->scratch : NULL,
		.scratch_mib = vm->disk_mib,
	};
	if ((rc = vm->ops->plan(&vm->bv, &spec, &vm->plan, e)) < 0)
		return rc;
	vm_launch_config(&vm->plan, &vm->names, &vm->jc);
	vm->jc.net = vm->net;
	vm->jc.tap_by_name = vm->net && vm->plan.tap_by_name;
	vm->jc.vmm_drops_privileges = vm->plan.vmm_drops_privileges;
	vm->jc.allow = vm->allow;
	vm->jc.n_allow = vm->n_allow;
	static const struct vm_launch_events ev = {
		.started = vm_on_vmm_started,
		.exited = vm_on_vmm_exit,
	};
	if ((rc = vm_launch_start(vm->loop, &vm->jc, &ev, vm, &vm->launch, e)) < 0)
		return rc;
	vm->bv.launch = vm->launch;
	vm->state = VM_SPAWNING;
	uv_update_time(vm->loop);
	vm->started_ms = uv_now(vm->loop);
	uv_timer_start(&vm->boot_timer, vm_on_boot_timeout, vm->boot_timeout_ms, 0);
	if (vm->progress)
		fprintf(stderr, "ironclaw: %s micro-VM %s (%s: %s)\n",
			vm->restore_from[0] ? "restoring" : "booting", vm->id,
			vm_accel_name(accel->accel), accel->reason);
	return 0;
}

static void vm_on_probe(void *ctx, const struct vm_accel_verdict *v)
{
	struct vm *vm = ctx;
	vm->probing = 0;
	if (vm->state == VM_STOPPING) {
		vm_cleanup(vm);
		return;
	}
	struct err e = { 0 };
	if (vm_launch_vmm(vm, v, &e) < 0)
		vm_fail(vm, &e);
}

/* ---- creation ---- */

static int vm_find_image(const struct vm_options *o, struct vm_image *img, struct err *e)
{
	if (!o->kernel || !o->initrd) {
		int rc = vm_image_find(img, e);
		if (rc < 0)
			return rc;
	}
	if (o->kernel)
		snprintf(img->kernel, sizeof(img->kernel), "%s", o->kernel);
	if (o->initrd)
		snprintf(img->initrd, sizeof(img->initrd), "%s", o->initrd);
	if (access(img->kernel, R_OK) < 0)
		return err_set(e, -errno, "cannot read kernel %s: %s", img->kernel, strerror(errno));
	if (access(img->initrd, R_OK) < 0)
		return err_set(e, -errno, "cannot read initramfs %s: %s", img->initrd, strerror(errno));
	return 0;
}

static int vm_copy_options(struct vm *vm, const struct vm_options *o, struct err *e)
{
	if (o->n_allow > JAIL_ALLOW_MAX)
		return err_set(e, -E2BIG, "%zu --net entries, at most %d", o->n_allow, JAIL_ALLOW_MAX);
	if (o->cmdline_extra && strlen(o->cmdline_extra) >= sizeof(vm->cmdline) / 2)
		return err_set(e, -E2BIG, "kernel command line addition too long");
	vm->cpus = o->cpus ? o->cpus : VM_DEFAULT_CPUS;
	vm->memory_mib = o->memory_mib ? o->memory_mib : VM_DEFAULT_MEMORY_MIB;
	vm->boot_timeout_ms = o->boot_timeout_ms ? o->boot_timeout_ms : VM_DEFAULT_BOOT_TIMEOUT_MS;
	vm->progress = o->progress;
	if (o->restore_from) {
		if (o->net)
			return err_set(e, -EINVAL,
				       "a VM with a NIC cannot be restored from a template (its address is in the saved state); boot it cold");
		if (strlen(o->restore_from) >= sizeof(vm->restore_from))
			return err_set(e, -ENAMETOOLONG, "state file path too long");
		snprintf(vm->restore_from, sizeof(vm->restore_from), "%s", o->restore_from);
	}
	vm->net = o->net;
	vm->n_allow = o->n_allow;
	if (o->n_allow)
		memcpy(vm->allow, o->allow, o->n_allow * sizeof(*o->allow));
	snprintf(vm->cmdline, sizeof(vm->cmdline), "%s", o->cmdline_extra ? o->cmdline_extra : "");
	if (o->root_image) {
		if (strlen(o->root_image) >= sizeof(vm->root_image))
			return err_set(e, -ENAMETOOLONG, "image path too long");
		snprintf(vm->root_image, sizeof(vm->root_image), "%s", o->root_image);
		vm->disk_mib = o->disk_mib;
		/* The guest switches root to the image (src/guest/root.c). */
		size_t n = strlen(vm->cmdline);
		snprintf(vm->cmdline + n, sizeof(vm->cmdline) - n, "%sironclaw.root=1%s", n ? " " : "",
			 o->disk_mib ? " ironclaw.scratch=1" : "");
	} else if (o->disk_mib) {
		return err_set(e, -EINVAL, "a scratch disk (--disk) needs an image (--image NAME)");
	}
	return 0;
}

/* A sparse file: the scratch disk costs host disk only for what the guest
 * writes, and never more than disk_mib. It lives in the VM's directory, so
 * the jail's teardown removes it with the rest. */
static int vm_make_scratch(struct vm *vm, struct err *e)
{
	if (!vm->disk_mib)
		return 0;
	if ((size_t)snprintf(vm->scratch, sizeof(vm->scratch), "%s/%s", vm->dir, VM_LAYOUT_SCRATCH_FILE) >=
	    sizeof(vm->scratch))
		return err_set(e, -ENAMETOOLONG, "VM directory path too long");
	/* Owned by the VM's uid, so made by the launcher (root's work). */
	return vm_launcher_get()->scratch_create(&vm->names, vm->scratch, (uint64_t)vm->disk_mib << 20, e);
}

int vm_create(uv_loop_t *loop, const struct vm_options *o, const struct vm_events *ev,
	      void *ctx, struct vm **out, struct err *e)
{
	int rc;
	const struct vm_backend_ops *ops = o->backend ? o->backend : vm_backend_default();
	struct vm *vm = calloc(1, sizeof(*vm));
	void *state = calloc(1, ops->state_size ? ops->state_size : 1);
	if (!vm || !state) {
		free(vm);
		free(state);
		return err_set(e, -ENOMEM, "out of memory");
	}
	if ((rc = vm_find_image(o, &vm->img, e)) < 0 || (rc = vm_copy_options(vm, o, e)) < 0)
		goto fail;
	vm->loop = loop;
	vm->ops = ops;
	vm->ev = *ev;
	vm->ctx = ctx;
	vm->state = VM_PROBING;
	vm_make_id(vm->id, sizeof(vm->id));
	if ((rc = jail_names_make(vm->id, &vm->names, e)) < 0 ||
	    (rc = vm_launcher_get()->prepare_dir(&vm->names, e)) < 0)
		goto fail;
	vm->dir = vm->names.dir;
	if ((rc = vm_make_scratch(vm, e)) < 0) {
		struct err de = { 0 };
		vm_launcher_get()->discard(&vm->names, &de);
		goto fail;
	}
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);
	vm->bv = (struct vm_backend_vm){ .loop = loop, .id = vm->id, .dir = vm->dir, .state = state };
	uv_timer_init(loop, &vm->boot_timer);
	uv_timer_init(loop, &vm->stop_timer);
	uv_timer_init(loop, &vm->eof_timer);
	vm->boot_timer.data = vm->stop_timer.data = vm->eof_timer.data = vm;
	vm->handles_open = 3;
	uv_update_time(loop);
	vm->started_ms = uv_now(loop);
	*out = vm;
	vm->probing = 1;
	ops->probe(loop, vm->img.kernel, vm->img.initrd, vm_on_probe, vm);
	return 0;

fail:
	free(state);
	free(vm);
	return rc;
}

long vm_request(struct vm *vm, const char *method, json_t *params, channel_reply_cb cb, void *ctx)
{
	if (vm->state != VM_READY || !vm->channel) {
		json_decref(params);
		return -ENOTCONN;
	}
	return channel_request(vm->channel, method, params, cb, ctx);
}

int vm_pause(struct vm *vm, vm_backend_cb done, void *ctx)
{
	if (vm->state != VM_READY)
		return -ENOTCONN;
	return vm->ops->pause(&vm->bv, done, ctx);
}

int vm_resume(struct vm *vm, vm_backend_cb done, void *ctx)
{
	if (vm->state != VM_READY)
		return -ENOTCONN;
	return vm->ops->resume(&vm->bv, done, ctx);
}

int vm_snapshot_save(struct vm *vm, const char *path, vm_backend_cb done, void *ctx)
{
	if (vm->state != VM_READY)
		return -ENOTCONN;
	return vm->ops->snapshot_save(&vm->bv, path, done, ctx);
}

int vm_restored(const struct vm *vm)
{
	return vm->restore_from[0] != '\0';
}
