/* The state of one run, shared by the agent's files (not for other subsystems):
 * run.c (start and teardown), step.c (the model and tool loop), changes.c (the
 * workspace's changes, their card, the decision and the apply), progress.c. */
#ifndef IRONCLAW_AGENT_INTERNAL_H
#define IRONCLAW_AGENT_INTERNAL_H

#include "agent/agent.h"
#include "agent/mcp_tools.h"
#include "audit/audit.h"
#include "workspace/workspace.h"

struct agent_run {
	uv_loop_t *loop;
	const struct agent_options *o;
	void (*done)(void *ctx, struct agent_result *r);
	void *done_ctx;
	struct agent_result res;
	double t0;

	struct runlog *rl;
	char runs_dir[4096];
	char undo_dir[4200];
	struct approval_policy policy;
	struct approval *approval;
	struct llm_client *llm;
	struct llm_req *req;
	struct llm_conv *conv;
	struct llm_tool *tools;
	size_t ntools;
	json_t *tool_defs;           /* owned: every tool offered, in order */
	struct agent_mcp *mcp;
	struct agent_sandbox *sb;
	uv_timer_t deadline;

	/* where the run is */
	int mcp_ready, vm_ready, started_loop;
	int stopping;                /* no new work: tearing down */
	int step;
	struct llm_reply *reply;     /* the assistant turn whose calls run now */
	size_t call_i;
	double call_t0;
	int denied_any;              /* a red action was denied */
	char *last_sig;              /* stuck detection: the previous call and result */
	int repeats;

	/* workspace */
	struct workspace_pack_options po;
	struct workspace_manifest before, after;
	int copied_in;
	char staging[4200];
	int have_staging;
	struct workspace_changes changes;
	int have_changes;
	char *card_text;
	struct approval_file *files;
	char **file_summaries;
	unsigned char *selected;
	struct approval_card changes_card;
	char card_title[300];
	uv_work_t work;
	int work_rc;
	struct err work_e;

	int progress_open;           /* a step's line is on a terminal, waiting for its end */

	/* teardown */
	int closing;                 /* handles and clients still closing */
	int finished;
};

/* run.c */
void agent_finish(struct agent_run *r, enum agent_status status, const char *why_fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The head of a sandbox-side completion: 0 when the run is already stopping,
 * or when e is set (the run is then finished as a sandbox failure with e's
 * message); 1 when the caller goes on. */
int agent_sandbox_step_ok(struct agent_run *r, const struct err *e);
/* step.c */
void agent_step(struct agent_run *r);
/* changes.c: after the final answer; ends with agent_finish. */
void agent_changes_start(struct agent_run *r);
void agent_changes_free(struct agent_run *r);
/* progress.c */
void agent_progress(struct agent_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* On a terminal: the start of a step's line, shown while the tool runs and
 * replaced in place by the next agent_progress. Elsewhere: nothing. */
void agent_progress_begin(struct agent_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A short, single-line, control-free rendering of a call's target. */
void agent_call_target(const char *name, json_t *args, char *out, size_t cap);

#endif
