/* Shared between the approval cliff's files (not for other subsystems): the
 * decider object, one request, and the two deciders that wait on something
 * (the terminal prompt and the external approver). */
#ifndef IRONCLAW_APPROVAL_INTERNAL_H
#define IRONCLAW_APPROVAL_INTERNAL_H

#include "approval/approval.h"

struct approval_req {
	struct approval_req *next;
	const struct approval_card *card; /* borrowed until cb fires */
	approval_cb cb;
	void *ctx;
};

struct approval {
	uv_loop_t *loop;
	enum approval_mode mode;
	char **argv;               /* approver command, owned */
	unsigned timeout_ms;
	char *tty_path;            /* owned */
	int quiet;
	struct approval_req *head, *tail;
	size_t queued;
	struct approval_req *cur;  /* being decided */
	void *active;              /* the waiting decider's state (tty.c / external.c) */
	void (*abort_active)(struct approval *a);
	char **remembered;         /* tools approved for the rest of the run, owned */
	size_t n_remembered;
	uv_timer_t kick;           /* defers the next decision out of the caller's stack */
	int handles_open;          /* kick + every decider handle; a is freed at 0 */
	int closing;
};

/* A decider reports the current request's decision (exactly once); the
 * decision is completed here (hash, decider name) and handed to the caller.
 * d->selected may point into the decider's state: it is used only during
 * this call. */
void approval_finish(struct approval *a, struct approval_decision *d);
/* Fills d as a denial of the current request with a reason. */
void approval_deny_init(struct approval *a, struct approval_decision *d, const char *decider,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A decider's handle was closed: counts down and frees a when it was the last
 * one after approval_close(). */
void approval_handle_closed(struct approval *a);

/* The prompt on the terminal. Returns 0 (it will call approval_finish), or a
 * negative errno with a reason in e (nothing was started). */
int approval_tty_start(struct approval *a, struct err *e);
/* The external approver, likewise. */
int approval_ext_start(struct approval *a, struct err *e);

#endif
