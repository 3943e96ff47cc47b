/* The launcher: the one way a VMM process is started, watched and removed, for
 * every VM and for the accelerator probe alike.
 *
 * jail_spawn and jail_destroy block (clone, namespace and cgroup setup, netlink,
 * reaping), so they run on the libuv thread pool; everything else is on the
 * loop: a pidfd tells when the VMM exits, its stderr is kept (the newest bytes)
 * for error reports. The pool's threads live as long as the process, which
 * matters: the VMM's parent-death signal follows the thread that cloned it.
 *
 * Who actually does the root work is a launcher (struct vm_launcher): the
 * in-process one (jail_spawn and jail_destroy on this process's thread pool,
 * the default and what the CLI uses), or `ironclaw serve`'s privileged parent,
 * asked over a socketpair (src/serve/priv.h), so that the process driving the
 * VMs needs no root. Everything that needs root about a VM goes through the
 * launcher: its directory, its address slot, its scratch disk, spawning,
 * killing, removal, and the sockets and log in its directory. */
#ifndef IRONCLAW_VM_LAUNCH_H
#define IRONCLAW_VM_LAUNCH_H

#include <stdint.h>
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

/* Starts the jailed VMM through the current launcher. cfg and everything it
 * points to is borrowed until `started` has run; its stderr_fd is set here (the
 * launcher keeps the VMM's stderr) unless the caller set one (>= 0, borrowed:
 * the privileged parent passes on the one it received). Returns an owned
 * handle (release with vm_launch_release). How the VMM ended (a seccomp kill)
 * is recorded in the audit log once, by the process that reaped it. */
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

/* The VM's id (borrowed, for launchers). */
const char *vm_launch_id(const struct vm_launch *l);

/* ---- launchers ---- */

struct vm_launcher {
	const char *name;
	/* Starts cfg's VMM, its stderr on cfg->stderr_fd (borrowed until the
	 * launcher answers). Completes with vm_launch_spawned, on the loop, never
	 * before returning 0. */
	int (*spawn)(struct vm_launch *l, const struct jail_config *cfg, struct err *e);
	/* SIGKILL to the running VMM; its exit follows with vm_launch_exited. */
	void (*kill)(struct vm_launch *l);
	/* After a successful spawn: kill, reap and remove the jail; completes with
	 * vm_launch_destroyed, on the loop. */
	void (*destroy)(struct vm_launch *l);

	/* Short, synchronous, root-only work on a VM's resources (jail.h has the
	 * semantics; each answers in well under a millisecond). */
	int (*prepare_dir)(const struct jail_names *n, struct err *e);
	int (*net_reserve)(struct jail_names *n, struct jail_net_addr *out, struct err *e);
	int (*discard)(const struct jail_names *n, struct err *e);
	/* Creates path (in the VM's directory) as a sparse file of `bytes`, owned
	 * by the VM's uid. */
	int (*scratch_create)(const struct jail_names *n, const char *path, uint64_t bytes,
			      struct err *e);
	/* One non-blocking connect() to a socket in a VM's directory: an owned,
	 * connected, non-blocking, close-on-exec fd, or -errno (-ENOENT and
	 * -ECONNREFUSED while the VMM has not made it yet). */
	int (*connect)(const char *path);
	/* Opens a file in a VM's directory read-only (the console log): fd or -errno. */
	int (*open_read)(const char *path);
};

/* The in-process launcher (the default). */
extern const struct vm_launcher vm_launcher_inproc;
/* The launcher every later VM uses (borrowed, static); call before any VM exists. */
void vm_launcher_use(const struct vm_launcher *ops);
const struct vm_launcher *vm_launcher_get(void);

/* Completions, called by launchers on the loop thread, once each:
 * spawned after spawn (e NULL: running as pid), exited when the VMM has been
 * reaped (status as from waitpid), destroyed after destroy (e: the first
 * cleanup error, if any). */
void vm_launch_spawned(struct vm_launch *l, pid_t pid, const struct err *e);
void vm_launch_exited(struct vm_launch *l, int status);
void vm_launch_destroyed(struct vm_launch *l, const struct err *e);

#endif
