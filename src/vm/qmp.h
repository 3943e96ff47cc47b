/* An asynchronous QMP client on the caller's libuv loop.
 *
 * QMP is QEMU's control protocol: line-delimited JSON, a greeting, capability
 * negotiation, then commands answered in order (events interleaved). The peer is
 * our own QEMU, but QEMU runs a hostile guest, so its lines are capped and parsed
 * strictly and a stuck peer is bounded by a deadline per command. Commands may be
 * queued before the session is negotiated; they are sent once it is. */
#ifndef IRONCLAW_VM_QMP_H
#define IRONCLAW_VM_QMP_H

#include <jansson.h>
#include <uv.h>

#include "core/err.h"

#define QMP_LINE_MAX (64u * 1024)
#define QMP_TIMEOUT_MS 3000

struct qmp;

/* result borrowed (the "return" value) or NULL with e set. Called exactly once per
 * command, also when the session closes first (e->code -ECANCELED). */
typedef void (*qmp_reply_cb)(struct qmp *q, json_t *result, const struct err *e, void *ctx);

/* Starts connecting to the QMP socket at path. Returns an owned handle; free with
 * qmp_close. A connect failure shows as an error to the queued commands. */
int qmp_open(uv_loop_t *loop, const char *path, struct qmp **out, struct err *e);
/* Queues `{"execute": cmd, "arguments": args}`; args stolen (may be NULL). cb may be
 * NULL. Returns 0 or a negative errno. */
int qmp_execute(struct qmp *q, const char *cmd, json_t *args, qmp_reply_cb cb, void *ctx);
/* As qmp_execute, with fd (owned, closed once sent or on failure) passed to
 * QEMU in the same message (SCM_RIGHTS), as `getfd` expects. */
int qmp_execute_fd(struct qmp *q, const char *cmd, json_t *args, int fd, qmp_reply_cb cb,
		   void *ctx);
/* Every pending command gets -ECANCELED; memory is released once libuv closed the
 * handles. NULL is fine. */
void qmp_close(struct qmp *q);

#endif
