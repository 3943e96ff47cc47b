/* The agent: `ironclaw run "task"` (DESIGN.md §2).
 *
 * One run = one fresh micro-VM, destroyed at the end whatever happens. The loop
 * runs on the host, on the caller's libuv loop: ask the model (in-VM tools +
 * MCP tools) → classify each tool call (approval/) → red calls need a decision
 * → run it (in the VM, or through the MCP client) → the result, or the error,
 * goes back to the model, every time → until a final answer or a limit. Then
 * the VM's /workspace is copied out, compared with what was copied in, shown as
 * a diff card, and applied to the host only if approved (workspace/). Every
 * step is in the run log (audit/runlog). */
#ifndef IRONCLAW_AGENT_AGENT_H
#define IRONCLAW_AGENT_AGENT_H

#include <jansson.h>
#include <stdio.h>
#include <uv.h>

#include "approval/approval.h"
#include "core/err.h"
#include "llm/llm.h"
#include "vm/vm.h"

#define AGENT_MAX_STEPS_DEFAULT 50
#define AGENT_RESULT_MAX (32u * 1024)       /* of one tool result, for the model */
#define AGENT_STUCK_REPEATS 4
#define AGENT_MCP_MAX 16
#define AGENT_EXCLUDES_MAX 64

/* Exit statuses of `ironclaw run` (documented in its --help). */
enum agent_status {
	AGENT_OK = 0,             /* finished; approved changes applied, or none */
	AGENT_MODEL_FAILED = 1,   /* the endpoint failed after retries, or unusable replies */
	AGENT_USAGE = 2,
	AGENT_DENIED = 3,         /* a red action or the changes were denied: nothing reached the host */
	AGENT_LIMIT = 4,          /* steps, time, or stuck */
	AGENT_SANDBOX_FAILED = 125,
};

struct agent_options {
	const char *task;
	const char *workspace;          /* host directory; NULL: no workspace copy */
	struct llm_config model;        /* strings borrowed */
	int max_steps;                  /* 0: AGENT_MAX_STEPS_DEFAULT */
	unsigned timeout_s;             /* total wall time; 0: none */
	unsigned tool_timeout_s;        /* default run_command timeout; 0: 120 */
	struct approval_options approval;
	const char *config_path;        /* MCP servers and the "approval" section; may be NULL */
	const char *const *mcp;         /* server names; NULL with mcp_all: every configured one */
	size_t n_mcp;
	int mcp_all;
	const char *const *excludes;
	size_t n_excludes;
	struct vm_options vm;           /* cpus, memory, --net */
	/* A running `ironclaw serve` to take the sandbox from (vm's cpus and
	 * memory_mib, and net_spec, are asked of it; its other fields are for
	 * an in-process VM only); NULL: a VM made in this process. */
	const char *daemon_socket;
	const char *daemon_image;       /* an image name or id in the daemon's store; NULL: default */
	const char *net_spec;           /* --net as given ("allow=..."), for the daemon */
	const char *runs_dir;           /* NULL: the default */
	int json;                       /* one JSON object on stdout at the end */
	FILE *progress;                 /* stderr */
};

struct agent_result {
	enum agent_status status;
	char *answer;                   /* owned, may be NULL */
	int steps;
	char run_id[64];
	char why[ERR_MSG_MAX];          /* one line when status is not AGENT_OK */
	json_t *summary;                /* owned: the --json object */
};

struct agent_run;

/* Runs one task on loop; done fires exactly once, after the VM is gone and
 * every handle of the run is closed (the result is freed after done returns).
 * o and everything it points to is borrowed until done. Returns < 0 (and done
 * never fires) only when the options are unusable. */
int agent_run(uv_loop_t *loop, const struct agent_options *o,
	      void (*done)(void *ctx, struct agent_result *r), void *ctx, struct agent_run **out,
	      struct err *e);

/* Stops a run (Ctrl-C): nothing more is asked or applied, the VM is destroyed,
 * done fires with status (AGENT_DENIED for a user's stop). */
void agent_stop(struct agent_run *r, enum agent_status status, const char *why);

#endif
