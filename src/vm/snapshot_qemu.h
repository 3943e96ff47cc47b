/* Saving and restoring a QEMU VM's state through a file descriptor, over QMP.
 *
 * The VMM is jailed and its seccomp filter kills it on fork, so neither
 * `migrate exec:` nor a path it would open itself is used: the host opens the
 * state file and hands QEMU the descriptor with `getfd` (SCM_RIGHTS on the QMP
 * socket), then `migrate fd:NAME` (save) or `migrate-incoming fd:NAME` into a
 * QEMU started with `-incoming defer` (load). Completion of a save is polled
 * with `query-migrate` on a loop timer; nothing waits. */
#ifndef IRONCLAW_VM_SNAPSHOT_QEMU_H
#define IRONCLAW_VM_SNAPSHOT_QEMU_H

#include <uv.h>

#include "vm/backend.h"
#include "vm/qmp.h"

/* A whole save may take this long before it is abandoned (TCG, big guests). */
#define QEMU_SNAP_SAVE_TIMEOUT_MS 120000
/* The QMP socket may appear a moment after the channel's: retried this long. */
#define QEMU_SNAP_QMP_RETRY_MS 3000

struct qemu_snap;

/* Pauses the guest and streams its state into a new file at path (created
 * O_EXCL, mode 0600). *qmpp is the backend's QMP session (opened or reopened
 * here from qmp_path; both must outlive the operation or qemu_snap_cancel). The
 * guest stays paused afterwards. done runs once, unless cancelled first. */
int qemu_snap_save(uv_loop_t *loop, struct qmp **qmpp, const char *qmp_path, const char *path,
		   vm_backend_cb done, void *ctx, struct qemu_snap **out, struct err *e);
/* Feeds the state file at path to a QEMU started with `-incoming defer` and
 * asks it to run once loaded. done means QEMU took the stream; the guest's
 * answer over its channel is what says the restore worked (a stream QEMU
 * refuses makes it exit, with its reason on stderr). */
int qemu_snap_load(uv_loop_t *loop, struct qmp **qmpp, const char *qmp_path, const char *path,
		   vm_backend_cb done, void *ctx, struct qemu_snap **out, struct err *e);
/* done never runs after this; the operation's memory goes once its QMP
 * commands are answered or cancelled. NULL is fine. */
void qemu_snap_cancel(struct qemu_snap *s);

#endif
