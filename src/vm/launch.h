/* The launcher: the one way a VMM process is started, watched and removed, for
 * every VM and for the accelerator probe alike.
 *
 * jail_spawn and jail_destroy block (clone, namespace and cgroup setup, netlink,
 * reaping), so they run on the libuv thread pool; everything else is on the
 * loop: a pidfd tells when the VMM exits, its stderr is kept (the newest bytes)
 * for error reports. The pool's threads live as long as the process, which
 * matters: the VMM's parent-death signal follows the thread that cloned it. */
#ifndef IRONCLAW_VM_LAUNCH_H
#define IRONCLAW_VM_LAUNCH_H

#include <sys/types.h>
#include <uv.h>

#include "core/err.h"
#include "jail/jail.h"
#include "vm/backend.h"

#define VM_LAUNCH_STDERR_KEEP 8192

struct vm_launch;

struct vm_launch_events {
	/* The jail is up and the VMM exec'ed (e == NULL), or starting failed (e set;
	 * nothing is left running, but vm_launch_release is still due). */
	void (*started)(struct vm_launch *l, const struct err *e, void *ctx);
	/* The VMM exited and was reaped; status as from waitpid. */
	void (*exited)(struct vm_launch *l, int status, void *ctx);
};

/* Fills a jail configuration from a backend's plan and the VM's names (borrowing
 * both): no network, no extra fds, stdin/stdout on /dev/null. */
void vm_launch_config(const struct vm_launch_plan *plan, const struct jail_names *names,
		      struct jail_config *jc);

/* Starts the jailed VMM. cfg and everything it points to is borrowed until
 * `started` has run; its stderr_fd is set here (the launcher keeps the VMM's
 * stderr). Returns an owned handle (release with vm_launch_release). How the
 * VMM ended (a seccomp kill) is recorded in the audit log here, once. */
int vm_launch_start(uv_loop_t *loop, struct jail_config *cfg,
		    const struct vm_launch_events *ev, void *ctx, struct vm_launch **out,
		    struct err *e);
/* The VMM's host pid while it runs, else 0. */
pid_t vm_launch_pid(const struct vm_launch *l);
/* What the VMM wrote on stderr, newest bytes, NUL-terminated (borrowed). */
const char *vm_launch_stderr(struct vm_launch *l);
/* Sends SIGKILL if the VMM still runs; `exited` follows. */
void vm_launch_kill(struct vm_launch *l);
/* Kills the VMM if it runs, removes the jail (cgroups, netns, nft, directory)
 * on the thread pool, closes the handles and frees l; then done(ctx, e) with the
 * first cleanup error, if any. No event fires after this call. */
void vm_launch_release(struct vm_launch *l, void (*done)(void *ctx, const struct err *e),
		       void *ctx);

#endif
