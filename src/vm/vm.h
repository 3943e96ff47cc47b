/* The vm subsystem's one header for the rest of the code: the backend-neutral
 * lifecycle of one micro-VM (here), commands in a VM (vm/exec.h), the default
 * image and the accelerator verdict (vm/image.h, vm/accel.h, for `doctor`), host
 * housekeeping (gc, --net parsing, the VMM's seccomp policy).
 *
 * Backend-neutral lifecycle of one micro-VM.
 *
 * vm_create returns at once; everything else happens on the caller's libuv
 * loop, which nothing here blocks: the backend's accelerator probe, the jailed
 * launch (on the thread pool), the channel's connect step, and the wait for the
 * backend's readiness event (the guest's `hello` after a boot). Exactly one of
 * `ready` or `failed` follows; `failed` can also come later if the VMM dies or
 * the guest breaks the protocol, but never once vm_destroy was called.
 * vm_destroy asks the guest to power off, escalates to the VMM (QMP `quit` for
 * QEMU) and then SIGKILL, removes every per-VM kernel object and file (on the
 * thread pool), and finally calls `destroyed`, after which the handle is freed.
 * The VMM can never outlive this process: it is started with a parent-death
 * signal. */
#ifndef IRONCLAW_VM_VM_H
#define IRONCLAW_VM_VM_H

#include <jansson.h>
#include <uv.h>

#include "core/err.h"
#include "jail/jail.h"
#include "vm/accel.h"
#include "vm/backend.h"
#include "vm/channel.h"
#include "vm/exec.h"
#include "vm/image.h"

#define VM_DEFAULT_CPUS 1
#define VM_DEFAULT_MEMORY_MIB 256
#define VM_DEFAULT_BOOT_TIMEOUT_MS 60000

struct vm;

/* `--backend` (backend_select.c). */
enum vm_backend_choice { VM_BACKEND_QEMU, VM_BACKEND_FIRECRACKER, VM_BACKEND_AUTO };
int vm_backend_parse(const char *s, enum vm_backend_choice *out, struct err *e);
/* The ops for a choice, with why in words. auto may run the one-time KVM
 * probe on a private loop (vm_accel_detect): call it before the caller's loop
 * runs, as the CLI does. */
const struct vm_backend_ops *vm_backend_choose(enum vm_backend_choice c, char *why, size_t n);

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
	const struct vm_backend_ops *backend; /* NULL: QEMU */
	/* A saved VM state (a template's, vm/template.h) to restore instead of
	 * booting; NULL: cold boot. The shape (cpus, memory, kernel, initrd) must
	 * be the one it was saved from, and net must be 0 (the guest's address is
	 * part of the state). The clone gets fresh identity before `ready`:
	 * entropy, clock, hostname and VM id (vm.identity). */
	const char *restore_from;
	/* Boot from this ext4 image (src/image) instead of the busybox initramfs's
	 * own root: attached read-only, shared by every VM using it, under a
	 * throwaway overlay. NULL: no image disk. */
	const char *root_image;
	/* With root_image: the overlay's writable layer is a fresh sparse disk of
	 * this many MiB in the VM's directory instead of a tmpfs. 0: tmpfs. */
	unsigned disk_mib;
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

/* Returns an owned handle in *out (set before any event can fire) even when the
 * boot later fails; a failure to start is reported through `failed`. */
int vm_create(uv_loop_t *loop, const struct vm_options *o, const struct vm_events *ev,
	      void *ctx, struct vm **out, struct err *e);
/* Sends a request to the guest agent; params stolen. Returns the id or -errno. */
long vm_request(struct vm *vm, const char *method, json_t *params, channel_reply_cb cb,
		void *ctx);
size_t vm_write_backlog(const struct vm *vm);
void vm_destroy(struct vm *vm);
/* vm_destroy without asking the guest: the VMM is killed at once (the
 * backend's force_stop), for a VM nothing of which is kept (a used-once
 * sandbox: its guest's unsynced writes go nowhere anyway). The cleanup is the
 * same: every per-VM object and file is gone before `destroyed`. */
void vm_destroy_now(struct vm *vm);

/* Pauses or resumes the guest's vCPUs through the backend; done runs once.
 * -ENOTSUP when the backend cannot. */
int vm_pause(struct vm *vm, vm_backend_cb done, void *ctx);
int vm_resume(struct vm *vm, vm_backend_cb done, void *ctx);

/* Pauses the guest and saves its whole state into a new file at path (the
 * backend's format; QEMU's migration stream). The guest stays paused; resume
 * or destroy it. -ENOTSUP when the backend cannot; done runs once. */
int vm_snapshot_save(struct vm *vm, const char *path, vm_backend_cb done, void *ctx);
/* 1 when the VM was restored from a saved state rather than booted. */
int vm_restored(const struct vm *vm);

const char *vm_id(const struct vm *vm);
uv_loop_t *vm_loop(struct vm *vm);
/* The backend's name ("qemu"). */
const char *vm_backend_name(const struct vm *vm);
/* Milliseconds from VMM start to ready (the guest's hello, or for a restore
 * its answer with fresh identity); 0 until then. */
double vm_boot_ms(const struct vm *vm);
/* How the VMM ended, in words (for logs and tests; valid in `destroyed`):
 * "the guest powered off", "the VMM quit when asked", "the VMM was killed",
 * "the VMM exited by itself", or "not stopped". */
const char *vm_stop_how(const struct vm *vm);
/* The VMM's pid while it runs, else 0. */
int vm_vmm_pid(const struct vm *vm);

/* The loop the VM runs on (borrowed). */
uv_loop_t *vm_loop(struct vm *vm);
/* The channel while the VM is ready, else NULL (borrowed). */
struct channel *vm_channel(struct vm *vm);

struct vm_exec;
/* For exec.c: the list head of the VM's running execs (borrowed). */
struct vm_exec **vm_exec_list(struct vm *vm);

/* ---- host-wide services (host.c, audit_exit.c) ----
 * The CLI reaches the jail only through these. */

/* Most `--net` allowlist entries (struct jail_net_allow, as in vm_options). */
#define VM_NET_ALLOW_MAX JAIL_ALLOW_MAX

/* Removes the leftovers of VMs that are gone (netns, veth, nft table, cgroups,
 * address slots, directories). Returns how many VMs were cleaned or -errno. */
int vm_gc(struct err *e);
/* Parses `--net allow=CIDR[:PORT],...|none` (see jail_net_parse_allow). */
int vm_net_parse_allow(const char *spec, size_t len, struct jail_net_allow *out, size_t max, size_t *n,
		       struct err *e);
/* The VMM's seccomp policy (KVM or TCG variant; static, borrowed) and its
 * size measured against libseccomp's x86_64 table. */
const struct jail_seccomp_policy *vm_seccomp_policy(int kvm);
int vm_seccomp_count(const struct jail_seccomp_policy *p, struct jail_seccomp_count *out, struct err *e);
/* Records what the jail reported about a VMM's end in the audit log (a
 * seccomp kill; x->status < 0 means already reported, nothing to do). */
void vm_audit_vmm_exit(const char *vm_id, pid_t pid, const struct jail_exit *x);

#endif
