/* Connecting to a Unix socket that a VMM creates a moment after it starts.
 *
 * Connecting an AF_UNIX stream socket never blocks (it succeeds or fails at
 * once), so each attempt is one non-blocking connect(); while the socket does not
 * exist yet or refuses, a timer tries again shortly, until a deadline. */
#ifndef IRONCLAW_VM_UNIX_CONNECT_H
#define IRONCLAW_VM_UNIX_CONNECT_H

#include <uv.h>

#include "core/err.h"

struct unix_connect;

/* done gets an owned, connected, non-blocking, close-on-exec fd, or -1 and e,
 * exactly once unless unix_connect_cancel comes first. */
typedef void (*unix_connect_cb)(void *ctx, int fd, const struct err *e);

int unix_connect_start(uv_loop_t *loop, const char *path, unsigned deadline_ms,
		       unix_connect_cb done, void *ctx, struct unix_connect **out,
		       struct err *e);
/* Stops trying; done is not called. NULL or a finished attempt is fine. */
void unix_connect_cancel(struct unix_connect *uc);

#endif
