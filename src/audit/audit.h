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

#include <jansson.h>

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

/* ---- run logs: one append-only JSONL file per agent run (runlog*.c) ----
 *
 * Each line is one event: {"time": ISO-8601, "time_unix_ms": N, "seq": N,
 * "ironclaw.run.id": ID, "event": NAME, ...fields}. Field names follow the
 * OpenTelemetry GenAI semantic conventions where one exists
 * (gen_ai.request.model, gen_ai.tool.name, gen_ai.usage.input_tokens,
 * gen_ai.operation.name, ...) and are "ironclaw.*" otherwise; docs/approval.md
 * lists them. Every string of every event passes the redactor: a registered
 * secret never reaches the file or the ring, wherever it hides. Appends are
 * one write(2) each on an O_APPEND descriptor (a local file, never a wait on
 * anything untrusted); the file is fsynced at run.end, on runlog_sync() (call
 * it on failure paths) and at close. */

#define RUNLOG_RING_MAX 128              /* recent events kept in memory */
#define RUNLOG_RING_BYTES (4u << 20)     /* and at most this many bytes of them */
#define RUNLOG_LINE_MAX (256u << 10)     /* one event line, written or read */
#define RUNLOG_TEXT_MAX (16u << 10)      /* one string field: longer is cut, with a note */
#define RUNLOG_SECRETS_MAX 16
#define RUNLOG_FILE_MAX (64u << 20)      /* read back at most this much of one run */
#define RUNLOG_LIST_MAX 10000            /* runs listed */
#define RUNLOG_ID_MAX 48
#define RUNLOG_DIR_ROOT "/var/lib/ironclaw/runs"

struct runlog;

/* Where runs are kept: $IRONCLAW_RUNS_DIR, else RUNLOG_DIR_ROOT for root, else
 * $XDG_STATE_HOME/ironclaw/runs, else ~/.local/state/ironclaw/runs. Owned. */
char *runlog_dir_default(void);
/* 1 when id is one of ours: [0-9A-Za-z-], 1..RUNLOG_ID_MAX bytes (no path). */
int runlog_id_valid(const char *id);

/* Creates a new run (id = UTC time + 8 random hex digits) and its file
 * <dir>/<id>.jsonl (dir NULL: runlog_dir_default(); created 0700; the file
 * 0600, O_EXCL, O_NOFOLLOW). Returns 0 or a negative errno with e set. */
int runlog_open(const char *dir, struct runlog **out, struct err *e);
const char *runlog_id(const struct runlog *rl);  /* borrows */
const char *runlog_path(const struct runlog *rl);
/* Registers a string that must never be written (an API key, a token): any
 * occurrence in any string or key is replaced by "[REDACTED]". Copies it.
 * -EINVAL under 4 bytes (it would redact ordinary words), -E2BIG past
 * RUNLOG_SECRETS_MAX. */
int runlog_add_secret(struct runlog *rl, const char *secret);

/* Appends one event; fields (an object, may be NULL) is STOLEN. Strings are
 * cut at RUNLOG_TEXT_MAX and redacted; a line still over RUNLOG_LINE_MAX is
 * replaced by a marker event that says so. On a write failure the file is
 * fsynced and the error returned; the ring gets the event regardless. */
int runlog_write(struct runlog *rl, const char *event, json_t *fields, struct err *e);

/* Typed events for the agent. NULL strings and negative numbers are left out. */
struct runlog_start {
	const char *task, *provider, *model, *base_url; /* base_url: user, password and
							   query are stripped */
	const char *approval_mode, *workspace;
	int max_steps;
};
int runlog_run_start(struct runlog *rl, const struct runlog_start *s, struct err *e);

struct runlog_model {
	int step;                        /* 1-based agent step */
	const char *model, *response_model, *finish_reason;
	long long request_bytes, response_bytes, input_tokens, output_tokens;
	double latency_ms;
	const char *text;                /* the assistant's text, may be NULL */
	const char *error;               /* NULL on success */
};
int runlog_model_request(struct runlog *rl, const struct runlog_model *m, struct err *e);

struct runlog_tool {
	int step;
	const char *call_id, *name;
	const json_t *arguments;         /* borrowed (copied) */
	const char *classification;      /* "green" | "red" */
	const char *class_reason;
	const char *decision;            /* "approved" | "denied" | "not_needed" */
	const char *decider, *decision_reason, *scope, *effect_sha256;
	const char *status;              /* "ok" | "error" | "denied" | "timeout" */
	double duration_ms;
	const char *result;              /* what went back to the model, may be NULL */
};
int runlog_tool_call(struct runlog *rl, const struct runlog_tool *t, struct err *e);

/* The diff card's summary ("3 files: 2 modified, 1 created") and its files
 * ([{"path": ..., "change": ...}], borrowed/copied); sha256 of the diff. */
int runlog_diff(struct runlog *rl, const char *summary, const json_t *files, const char *sha256,
		struct err *e);
/* The decision on the changes card: selected files by path (borrowed/copied). */
int runlog_changes_decision(struct runlog *rl, const char *decision, const char *decider,
			    const char *reason, const char *sha256, const json_t *selected,
			    struct err *e);
/* What was applied (paths, borrowed/copied) and how it went ("ok", "rolled_back"). */
int runlog_applied(struct runlog *rl, const json_t *files, const char *status, struct err *e);
int runlog_vm(struct runlog *rl, const char *vm_id, struct err *e);
/* status: "ok" | "denied" | "limit" | "model_error" | "sandbox_error" | ...
 * Fsyncs the file. */
int runlog_run_end(struct runlog *rl, const char *status, int exit_code, int steps,
		   const char *answer, struct err *e);

int runlog_sync(struct runlog *rl, struct err *e);
/* Fsyncs, closes and frees (NULL is fine). */
void runlog_close(struct runlog *rl);

/* The in-memory ring of this run's recent events (redacted lines, oldest
 * first; i past the end: NULL) and how many were dropped from it. */
size_t runlog_ring_count(const struct runlog *rl);
const char *runlog_ring_get(const struct runlog *rl, size_t i);
uint64_t runlog_ring_dropped(const struct runlog *rl);

/* ---- reading runs back (runlog_read.c, runlog_atif.c) ---- */

struct runlog_summary {
	char id[RUNLOG_ID_MAX + 1];
	char started[32];          /* ISO-8601 of run.start, "" when absent */
	char task[256];            /* cut */
	char status[24];           /* run.end's, or "running" / "unfinished" */
	char model[96];
	int steps;                 /* model requests */
	int tool_calls, denied;
};

/* The runs in dir, oldest first (at most RUNLOG_LIST_MAX: the newest). *out is
 * owned (free()). A missing dir is an empty list. */
int runlog_list(const char *dir, struct runlog_summary **out, size_t *n, struct err *e);
/* Every event of run id (a JSON array, owned); lines that are not JSON objects
 * or are too long are skipped and counted in *skipped (may be NULL). */
int runlog_load(const char *dir, const char *id, json_t **events, size_t *skipped,
		struct err *e);
/* Summarizes loaded events (id is copied in). */
void runlog_summarize(const json_t *events, const char *id, struct runlog_summary *s);
/* The run as an ATIF trajectory (Harbor's Agent Trajectory Interchange Format,
 * ATIF-v1.4): a user step with the task, one agent step per model request
 * with its tool calls and their observations, a system step per workspace
 * decision; classifications and approvals go under each step's "extra".
 * Returns owned, or NULL on ENOMEM. */
json_t *runlog_to_atif(const json_t *events, const char *agent_version);

#endif
