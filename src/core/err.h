/* Error values with a human message chain.
 *
 * Functions return 0 or a negative errno. Paths that end in front of a user also
 * fill a struct err: the innermost failure sets the message, and each caller may
 * prefix its own context, so the final line reads "starting VM: opening kernel:
 * No such file (hint: run `make image`)". The buffer is fixed-size: building an
 * error never allocates and never fails. */
#ifndef IRONCLAW_CORE_ERR_H
#define IRONCLAW_CORE_ERR_H

#include <stddef.h>

#define ERR_MSG_MAX 1024

struct err {
	int code;               /* negative errno, 0 when no error was recorded */
	char msg[ERR_MSG_MAX];
};

/* Records a failure and returns `code` (a negative errno) so callers can write
 * `return err_set(e, -ENOENT, "...")`. `e` may be NULL. */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes context to an existing message ("ctx: old"). Returns e->code. */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears the error. */
void err_clear(struct err *e);

#endif
