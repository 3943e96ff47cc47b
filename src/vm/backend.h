/* The VM backend interface: what a VMM (QEMU today, Firecracker next) must do so
 * that vm.c can run it without knowing which one it is.
 *
 * vm.c owns the lifecycle (launch in the jail, watch the process, connect the
 * channel, wait for readiness, stop with escalation, clean up). A backend only
 * answers questions and performs VMM-specific steps:
 *
 *   probe          which accelerator can run guests here (may boot a probe VM
 *                  through the launcher, asynchronously; the verdict is cached)
 *   plan           the jailed launch: VMM argv, binds, seccomp policy, limits
 *   connect        a connected byte stream to the guest agent, after any
 *                  handshake the transport needs (vsock: CONNECT/OK)
 *   readiness      what makes the guest ready: its `hello` after a boot, a reply
 *                  to `ping` after a snapshot restore
 *   pause/resume, snapshot_save/snapshot_load   may return -ENOTSUP
 *   stop           ask the VMM itself to exit (the guest ignored `shutdown`)
 *   force_stop     kill it now
 *   release        drop the backend's own handles
 *
 * Every op runs on the loop thread and must not block it: slow work goes to the
 * libuv thread pool or is driven by callbacks. docs/backends.md walks through
 * adding a backend. */
#ifndef IRONCLAW_VM_BACKEND_H
#define IRONCLAW_VM_BACKEND_H

#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "jail/jail.h"

#define VM_PLAN_ARGV_MAX 64
#define VM_PLAN_STORE 8192
#define VM_PLAN_BINDS_MAX 8

enum vm_accel { VM_ACCEL_TCG, VM_ACCEL_KVM };

struct vm_accel_verdict {
	enum vm_accel accel;
	int cached;          /* 1 when read from the cache */
	char reason[256];    /* why, in words, for `ironclaw doctor` */
};

/* What makes a freshly connected guest ready. */
enum vm_readiness {
	VM_READY_ON_HELLO,   /* the guest agent's `hello` notification (a boot) */
	VM_READY_ON_PING,    /* a reply to a `ping` request (a restored snapshot) */
};

/* Everything a backend needs to plan one VM; all borrowed. */
struct vm_backend_spec {
	const char *id;              /* the VM id */
	const char *dir;             /* host path of the per-VM directory */
	const char *kernel, *initrd; /* host paths */
	const char *cmdline_extra;   /* appended to the kernel command line, or NULL */
	unsigned cpus, memory_mib;
	enum vm_accel accel;
	int tap_fd;                  /* fd number of the tap in the VMM, or -1 */
	int restore;                 /* the VMM waits for a saved state (snapshot_load) */
	const char *restore_from;    /* with restore: vm_options.restore_from, for a backend that binds it */
	const char *root_image;      /* host path of a read-only root disk, or NULL */
	const char *scratch_image;   /* host path of a writable scratch disk (in dir), or NULL */
	unsigned scratch_mib;        /* its size */
};

/* A jailed launch, filled by plan. argv and binds point into this struct (store),
 * so it must stay where it is until the launch has started. */
struct vm_launch_plan {
	char *argv[VM_PLAN_ARGV_MAX];
	char store[VM_PLAN_STORE];
	struct jail_bind binds[VM_PLAN_BINDS_MAX];
	size_t n_binds;
	const struct jail_seccomp_policy *seccomp; /* the VMM's filter (static, borrowed) */
	int kvm_node;                /* the VMM needs /dev/kvm */
	uint64_t memory_max_bytes;
	unsigned cpu_percent;
	uint64_t fsize_max_bytes;    /* the largest file the VMM writes (a scratch disk); 0: default */
	int tap_by_name;             /* with a NIC: the VMM opens JAIL_TAP_NAME itself (jail_config.tap_by_name) */
	int vmm_drops_privileges;    /* jail_config.vmm_drops_privileges (Firecracker's jailer) */
};

/* The backend-neutral view of one VM that ops receive. */
struct vm_backend_vm {
	uv_loop_t *loop;
	const char *id;
	const char *dir;
	struct vm_launch *launch;    /* the running VMM (launch.h) */
	void *state;                 /* ops->state_size bytes, zeroed, owned by vm.c */
};

typedef void (*vm_backend_cb)(void *ctx, const struct err *e);
typedef void (*vm_connect_cb)(void *ctx, int fd, const struct err *e);
typedef void (*vm_probe_cb)(void *ctx, const struct vm_accel_verdict *v);

struct vm_backend_ops {
	const char *name;            /* "qemu" */
	const char *vmm_name;        /* "QEMU": the process, in messages */
	const char *vmm_binary;      /* absolute path of the VMM, for `doctor` */
	size_t state_size;

	/* Calls done exactly once, possibly before returning (a cached verdict). */
	void (*probe)(uv_loop_t *loop, const char *kernel, const char *initrd, vm_probe_cb done,
		      void *ctx);
	int (*plan)(struct vm_backend_vm *bv, const struct vm_backend_spec *spec,
		    struct vm_launch_plan *plan, struct err *e);
	/* Starts connecting once the VMM runs; done gets an owned, connected,
	 * non-blocking fd, or an error, exactly once (unless release comes first). */
	int (*connect)(struct vm_backend_vm *bv, unsigned deadline_ms, vm_connect_cb done,
		       void *ctx, struct err *e);
	enum vm_readiness (*readiness)(struct vm_backend_vm *bv);
	int (*pause)(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx);
	int (*resume)(struct vm_backend_vm *bv, vm_backend_cb done, void *ctx);
	int (*snapshot_save)(struct vm_backend_vm *bv, const char *path, vm_backend_cb done, void *ctx);
	int (*snapshot_load)(struct vm_backend_vm *bv, const char *path, vm_backend_cb done, void *ctx);
	/* Asks the VMM to exit; its exit (seen by vm.c) is the answer. */
	void (*stop)(struct vm_backend_vm *bv);
	void (*force_stop)(struct vm_backend_vm *bv);
	/* Drops every handle; nothing of bv is touched afterwards. */
	void (*release)(struct vm_backend_vm *bv);
};

extern const struct vm_backend_ops vm_backend_qemu;
extern const struct vm_backend_ops vm_backend_firecracker;

/* The backend a VM gets when vm_options.backend is NULL. */
const struct vm_backend_ops *vm_backend_default(void);

const char *vm_accel_name(enum vm_accel a);

#endif
