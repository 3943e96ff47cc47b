/* Drives VMs through the library API on one libuv loop, for tests that look at
 * the host process itself (its fds, memory, loop latency) while VMs come and go:
 * each "run" creates a VM, runs one command in it, hashes its stdout, destroys
 * it, and records what happened. */
#ifndef IRONCLAW_TESTS_VMRUN_H
#define IRONCLAW_TESTS_VMRUN_H

#include <stdint.h>
#include <uv.h>

#include "jail/jail.h"
#include "vm/backend.h"

#define VMRUN_ID_MAX 64

struct vmrun {
	uv_loop_t *loop;
	char *const *argv;          /* the command in the guest */
	int net;                    /* give the VM a NIC with an empty allowlist */
	int abandon;                /* destroy it right after creating it (mid-boot) */
	const struct vm_backend_ops *backend; /* NULL: the default (QEMU) */
	/* results */
	char id[VMRUN_ID_MAX];
	uint64_t out_hash;          /* FNV-1a 64 of stdout */
	size_t out_len;
	int exit_code;              /* -1 until the command exited */
	int failed;                 /* the VM or the exec failed */
	char why[1024];
	int destroyed;
	void (*on_done)(struct vmrun *r);   /* after destroyed; may start another */
	void *user;
	/* internal */
	struct vm *vm;
};

/* Starts one run on r->loop; r must stay valid until on_done. Returns 0 or -errno. */
/* Points IRONCLAW_IMAGE_DIR at the checkout's build/image unless it is set:
 * every VM test boots the image `make image` built. */
void vmrun_use_checkout_image(void);
int vmrun_start(struct vmrun *r);
uint64_t vmrun_fnv1a(uint64_t h, const void *p, size_t n);
#define VMRUN_FNV_INIT 0xcbf29ce484222325ull

/* Open fds of this process (entries of /proc/self/fd). */
int vmrun_count_fds(void);
/* Resident set of this process in KiB (/proc/self/statm). */
long vmrun_rss_kib(void);

#endif
