/* Security events: a bounded in-memory ring and an append-only JSONL log.
 *
 * The ring has a fixed capacity; pushing into a full ring drops the oldest
 * event and counts the drop, so a flood of events costs bounded memory and the
 * loss is visible. Every event pushed through audit_record() is also appended
 * to the log (size-capped: past the cap the file is rotated to <path>.1), so a
 * later `ironclaw audit` can load the log back into a ring. */
#ifndef IRONCLAW_AUDIT_AUDIT_H
#define IRONCLAW_AUDIT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define AUDIT_RING_MAX 256             /* largest ring capacity */
#define AUDIT_LOG_DEFAULT "/var/lib/ironclaw/audit.jsonl"
#define AUDIT_LOG_MAX_BYTES (4u << 20) /* rotate past this */
#define AUDIT_LINE_MAX 2048            /* longer log lines are skipped on load */

struct audit_event {
	int64_t time;          /* unix seconds */
	char kind[24];         /* "seccomp" */
	char vm_id[64];
	int pid;               /* host pid of the process concerned */
	long syscall;          /* -1 when unknown */
	char syscall_name[32]; /* "" when unknown */
	char detail[160];
};

struct audit_ring {
	struct audit_event ev[AUDIT_RING_MAX];
	size_t cap;            /* <= AUDIT_RING_MAX */
	size_t start, count;
	uint64_t dropped;
};

/* cap is clamped to 1..AUDIT_RING_MAX. */
void audit_ring_init(struct audit_ring *r, size_t cap);
void audit_ring_push(struct audit_ring *r, const struct audit_event *ev);
/* i = 0 is the oldest kept event; NULL past the end. Borrows. */
const struct audit_event *audit_ring_get(const struct audit_ring *r, size_t i);

/* The process-wide ring (capacity AUDIT_RING_MAX), guarded by a mutex in
 * audit_record(). Borrows. */
struct audit_ring *audit_ring_global(void);

/* The log path: $IRONCLAW_AUDIT_LOG or AUDIT_LOG_DEFAULT. */
const char *audit_log_path(void);

/* Pushes ev to the global ring and appends it to the log. Returns 0 or the
 * log's negative errno (the ring always gets the event). */
int audit_record(const struct audit_event *ev, struct err *e);

int audit_log_append(const char *path, const struct audit_event *ev, struct err *e);
/* Loads every valid line of the log (and its rotated .1 first) into r. */
int audit_log_load(const char *path, struct audit_ring *r, struct err *e);

#endif
