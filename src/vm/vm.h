/* Backend-neutral lifecycle of one micro-VM.
 *
 * vm_create starts the VMM, connects the channel and waits (asynchronously, on
 * the caller's libuv loop) for the guest's `hello`. Exactly one of `ready` or
 * `failed` follows; `failed` can also come later if the VMM dies or the guest
 * breaks the protocol. vm_destroy asks the guest to power off, escalates to QMP
 * `quit` and then SIGKILL, removes every per-VM file, and finally calls
 * `destroyed`, after which the handle is freed. The VMM can never outlive this
 * process: it is started with a parent-death signal. */
#ifndef IRONCLAW_VM_VM_H
#define IRONCLAW_VM_VM_H

#include <jansson.h>
#include <uv.h>

#include "core/err.h"
#include "jail/jail.h"
#include "vm/channel.h"

#define VM_DEFAULT_CPUS 1
#define VM_DEFAULT_MEMORY_MIB 256
#define VM_DEFAULT_BOOT_TIMEOUT_MS 60000

struct vm;

struct vm_options {
	unsigned cpus;            /* 0: VM_DEFAULT_CPUS */
	unsigned memory_mib;      /* 0: VM_DEFAULT_MEMORY_MIB */
	unsigned boot_timeout_ms; /* 0: VM_DEFAULT_BOOT_TIMEOUT_MS */
	const char *kernel;       /* NULL: the default image's */
	const char *initrd;       /* NULL: the default image's */
	const char *cmdline_extra;/* appended to the kernel command line, may be NULL */
	int progress;             /* print boot progress on stderr */
	/* Network: with net == 0 the VM has no NIC at all. With net == 1 it gets one
	 * whose traffic may reach only `allow` (plus replies); see jail.h. */
	int net;
	const struct jail_net_allow *allow; /* borrowed */
	size_t n_allow;
};

struct vm_events {
	void (*ready)(struct vm *vm, void *ctx);
	/* The VM cannot go on (boot failed, VMM died, channel broke). The owner
	 * should call vm_destroy. Called at most once. */
	void (*failed)(struct vm *vm, const struct err *e, void *ctx);
	/* A guest notification other than hello (exec.output, exec.exit, ...). */
	int (*notify)(struct vm *vm, const char *method, json_t *params, void *ctx, struct err *e);
	/* Everything is gone; the handle is freed right after this returns. */
	void (*destroyed)(struct vm *vm, void *ctx);
};

/* Returns an owned handle in *out even when the boot later fails. */
int vm_create(uv_loop_t *loop, const struct vm_options *o, const struct vm_events *ev,
	      void *ctx, struct vm **out, struct err *e);
/* Sends a request to the guest agent; params stolen. Returns the id or -errno. */
long vm_request(struct vm *vm, const char *method, json_t *params, channel_reply_cb cb,
		void *ctx);
size_t vm_write_backlog(const struct vm *vm);
void vm_destroy(struct vm *vm);

const char *vm_id(const struct vm *vm);
/* Milliseconds from VMM start to the guest's hello (0 until then). */
double vm_boot_ms(const struct vm *vm);
/* The VMM's pid while it runs, else 0. */
int vm_vmm_pid(const struct vm *vm);

/* The loop the VM runs on (borrowed). */
uv_loop_t *vm_loop(struct vm *vm);
/* The channel while the VM is ready, else NULL (borrowed). */
struct channel *vm_channel(struct vm *vm);

struct vm_exec;
/* For exec.c: the list head of the VM's running execs (borrowed). */
struct vm_exec **vm_exec_list(struct vm *vm);

#endif
