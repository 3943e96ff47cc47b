/* One agent run from start to teardown (see agent.h).
 *
 * Start: the run log, the policy and decider, the model client, then the MCP
 * servers and the sandbox (sandbox.h: a VM made here, or one of a running
 * daemon's), both at once; when both are ready the workspace is copied
 * in and the loop starts (step.c). Teardown, whatever ended the run (an answer,
 * a limit, a failure, the user's stop): stop asking, destroy the VM, close the
 * MCP servers, the model client and the decider, and only when every one of
 * them has let go, write run.end and call done. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sandbox.h"
#include "agent/internal.h"
#include "agent/prompt.h"
#include "agent/tools.h"
#include "core/clock.h"

static const char *status_word(enum agent_status s)
{
	switch (s) {
	case AGENT_OK: return "ok";
	case AGENT_MODEL_FAILED: return "model_error";
	case AGENT_DENIED: return "denied";
	case AGENT_LIMIT: return "limit";
	case AGENT_SANDBOX_FAILED: return "sandbox_error";
	default: return "error";
	}
}

static void run_closed_one(struct agent_run *r)
{
	if (--r->closing > 0)
		return;
	runlog_run_end(r->rl, status_word(r->res.status), (int)r->res.status, r->res.steps, r->res.answer, NULL);
	runlog_close(r->rl);
	json_object_set_new(r->res.summary, "status", json_string(status_word(r->res.status)));
	json_object_set_new(r->res.summary, "exit_code", json_integer(r->res.status));
	json_object_set_new(r->res.summary, "steps", json_integer(r->res.steps));
	json_object_set_new(r->res.summary, "run_id", json_string(r->res.run_id));
	json_object_set_new(r->res.summary, "answer", r->res.answer ? json_string(r->res.answer) : json_null());
	if (r->res.why[0])
		json_object_set_new(r->res.summary, "error", json_string(r->res.why));
	agent_changes_free(r);
	approval_policy_free(&r->policy);
	llm_conv_free(r->conv);
	free(r->tools);
	json_decref(r->tool_defs);
	free(r->last_sig);
	struct agent_result res = r->res;
	void (*done)(void *, struct agent_result *) = r->done;
	void *ctx = r->done_ctx;
	free(r);
	done(ctx, &res);
	free(res.answer);
	json_decref(res.summary);
}

static void run_on_sb_destroyed(struct agent_sandbox *sb, void *ctx)
{
	struct agent_run *r = ctx;
	(void)sb;
	r->sb = NULL;
	run_closed_one(r);
}

static void run_on_mcp_closed(void *ctx)
{
	run_closed_one(ctx);
}

static void run_on_llm_closed(void *ctx)
{
	run_closed_one(ctx);
}

static void run_on_deadline_closed(uv_handle_t *h)
{
	run_closed_one(h->data);
}

int agent_sandbox_step_ok(struct agent_run *r, const struct err *e)
{
	if (r->stopping)
		return 0;
	if (e) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "%s", e->msg);
		return 0;
	}
	return 1;
}

void agent_finish(struct agent_run *r, enum agent_status status, const char *why_fmt, ...)
{
	if (r->stopping)
		return;
	r->stopping = 1;
	r->res.status = status;
	va_list ap;
	va_start(ap, why_fmt);
	vsnprintf(r->res.why, sizeof(r->res.why), why_fmt, ap);
	va_end(ap);
	if (r->req) {
		llm_cancel(r->llm, r->req);
		r->req = NULL;
	}
	llm_reply_free(r->reply);
	r->reply = NULL;
	/* One count per thing that must let go, plus this function's own. */
	r->closing = 1;
	uv_timer_stop(&r->deadline);
	r->closing++;
	uv_close((uv_handle_t *)&r->deadline, run_on_deadline_closed);
	if (r->approval) {
		approval_close(r->approval);   /* denies anything pending */
		r->approval = NULL;
	}
	if (r->sb) {
		r->closing++;
		agent_sandbox_destroy(r->sb);
	}
	if (r->mcp) {
		r->closing++;
		agent_mcp_close(r->mcp, run_on_mcp_closed, r);
		r->mcp = NULL;
	}
	if (r->llm) {
		r->closing++;
		llm_client_close(r->llm, run_on_llm_closed, r);
		r->llm = NULL;
	}
	run_closed_one(r);
}

void agent_stop(struct agent_run *r, enum agent_status status, const char *why)
{
	if (r && !r->stopping)
		agent_finish(r, status, "%s", why);
}

static void run_on_deadline(uv_timer_t *t)
{
	struct agent_run *r = t->data;
	agent_finish(r, AGENT_LIMIT, "the run passed --timeout %u s", r->o->timeout_s);
}

static void run_free_on_close(uv_handle_t *h)
{
	free(h->data);
}

/* ---- start ---- */

static int run_collect_tools(struct agent_run *r, struct err *e)
{
	r->tool_defs = agent_vm_tools();
	json_t *mcp = agent_mcp_tools(r->mcp);
	size_t i;
	json_t *t;
	json_array_foreach(mcp, i, t)
		json_array_append(r->tool_defs, t);
	r->ntools = json_array_size(r->tool_defs);
	r->tools = calloc(r->ntools, sizeof(*r->tools));
	if (!r->tools)
		return err_set(e, -ENOMEM, "out of memory");
	json_array_foreach(r->tool_defs, i, t) {
		r->tools[i].name = json_string_value(json_object_get(t, "name"));
		r->tools[i].description = json_string_value(json_object_get(t, "description"));
		r->tools[i].input_schema = json_object_get(t, "input_schema");
	}
	char *system = agent_system_prompt(r->o->workspace != NULL, r->o->vm.net, (int)json_array_size(mcp));
	r->conv = llm_conv_new(system);
	free(system);
	if (!r->conv)
		return err_set(e, -ENOMEM, "out of memory");
	return llm_conv_add_user(r->conv, r->o->task, e);
}

static void run_begin_loop(struct agent_run *r)
{
	if (r->stopping || r->started_loop || !r->mcp_ready || !r->vm_ready)
		return;
	r->started_loop = 1;
	struct err e = { 0 };
	if (run_collect_tools(r, &e) < 0) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "%s", e.msg);
		return;
	}
	agent_step(r);
}

static void run_on_copied_in(void *ctx, const struct err *e)
{
	struct agent_run *r = ctx;
	if (!agent_sandbox_step_ok(r, e))
		return;
	r->copied_in = 1;
	agent_progress(r, "workspace copied in: %zu %s, %.1f MiB (%.1f s)", r->before.n,
		       r->before.n == 1 ? "entry" : "entries", (double)r->before.bytes / 1048576.0,
		       (clock_now_ms() - r->t0) / 1000.0);
	r->vm_ready = 1;
	run_begin_loop(r);
}

static void run_on_mkdir_done(void *ctx, struct vmcall_result *res)
{
	struct agent_run *r = ctx;
	if (r->stopping)
		return;
	if (res->e.code || res->exit_code) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "making /workspace in the sandbox failed: %s",
			     res->e.code ? res->e.msg : "mkdir failed");
		return;
	}
	r->vm_ready = 1;
	run_begin_loop(r);
}

static void run_on_sb_ready(struct agent_sandbox *sb, void *ctx)
{
	struct agent_run *r = ctx;
	if (r->stopping)
		return;
	runlog_vm(r->rl, sb->id, NULL);
	/* Where it came from: a warm pool VM, a snapshot restore or a cold boot,
	 * made here or by the daemon. */
	agent_progress(r, "sandbox %s ready: %s, %s (%.1f s)", sb->id, sb->made, sb->via,
		       sb->ready_ms / 1000.0);
	json_object_set_new(r->res.summary, "sandbox", json_pack("{s:s, s:s, s:s}", "id", sb->id,
				"made", sb->made, "via", sb->via));
	if (!r->o->workspace) {
		/* /workspace must exist for the tools even without a copy. */
		struct err e = { 0 };
		static char *argv[] = { "mkdir", "-p", "/workspace", NULL };
		struct vmcall_spec spec = { .argv = argv, .timeout_ms = 30000,   /* a host deadline too */
					    .out_cap = 4096, .err_cap = 4096 };
		if (agent_sandbox_exec(sb, &spec, run_on_mkdir_done, r, &e) < 0)
			agent_finish(r, AGENT_SANDBOX_FAILED, "%s", e.msg);
		return;
	}
	struct err e = { 0 };
	if (agent_sandbox_copy_in(sb, r->o->workspace, &r->po, &r->before, run_on_copied_in, r, &e) < 0)
		agent_finish(r, AGENT_SANDBOX_FAILED, "%s", e.msg);
}

static void run_on_sb_failed(struct agent_sandbox *sb, const struct err *e, void *ctx)
{
	struct agent_run *r = ctx;
	(void)sb;
	agent_finish(r, AGENT_SANDBOX_FAILED, "the sandbox failed: %s", e->msg);
}

static void run_on_mcp_ready(void *ctx, const struct err *e)
{
	struct agent_run *r = ctx;
	if (!agent_sandbox_step_ok(r, e))
		return;
	r->mcp_ready = 1;
	run_begin_loop(r);
}

static int run_open_log(struct agent_run *r, struct err *e)
{
	char *dir = r->o->runs_dir ? strdup(r->o->runs_dir) : runlog_dir_default();
	if (!dir)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(r->runs_dir, sizeof(r->runs_dir), "%s", dir);
	free(dir);
	int rc = runlog_open(r->runs_dir, &r->rl, e);
	if (rc < 0)
		return rc;
	snprintf(r->res.run_id, sizeof(r->res.run_id), "%s", runlog_id(r->rl));
	snprintf(r->undo_dir, sizeof(r->undo_dir), "%s/%s/undo", r->runs_dir, r->res.run_id);
	if (r->o->model.api_key && strlen(r->o->model.api_key) >= 4)
		runlog_add_secret(r->rl, r->o->model.api_key);
	const char *mode = approval_mode_resolved(r->approval) == APPROVAL_MODE_YES ? "yes" :
			   approval_mode_resolved(r->approval) == APPROVAL_MODE_ASK ? "ask" :
			   approval_mode_resolved(r->approval) == APPROVAL_MODE_APPROVER ? "approver" : "deny";
	struct runlog_start s = {
		.task = r->o->task, .provider = llm_provider_name(r->o->model.provider),
		.model = r->o->model.model, .base_url = r->o->model.base_url, .approval_mode = mode,
		.workspace = r->o->workspace,
		.max_steps = r->o->max_steps ? r->o->max_steps : AGENT_MAX_STEPS_DEFAULT,
	};
	return runlog_run_start(r->rl, &s, e);
}

int agent_run(uv_loop_t *loop, const struct agent_options *o,
	      void (*done)(void *ctx, struct agent_result *r), void *ctx, struct agent_run **out,
	      struct err *e)
{
	int rc;
	struct agent_run *r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(e, -ENOMEM, "out of memory");
	r->loop = loop;
	r->o = o;
	r->done = done;
	r->done_ctx = ctx;
	r->t0 = clock_now_ms();
	r->res.summary = json_object();
	r->po.excludes = o->excludes;
	r->po.n_excludes = o->n_excludes;
	uv_timer_init(loop, &r->deadline);
	r->deadline.data = r;
	if ((rc = approval_policy_init(&r->policy)) < 0) {
		err_set(e, rc, "out of memory");
		goto fail;
	}
	if (o->config_path && (rc = approval_policy_load(&r->policy, o->config_path, e)) < 0)
		goto fail;
	/* The config's "approval": {"promptTimeoutS"} is the deadline of the
	 * prompt and the approver, unless the caller set one itself. */
	struct approval_options ao = o->approval;
	if (!ao.timeout_ms)
		ao.timeout_ms = r->policy.timeout_ms;
	if ((rc = approval_new(loop, &ao, &r->approval, e)) < 0)
		goto fail;
	if ((rc = llm_client_new(loop, &o->model, &r->llm, e)) < 0)
		goto fail;
	if ((rc = run_open_log(r, e)) < 0)
		goto fail;
	if ((rc = agent_mcp_start(loop, o->config_path, o->mcp, o->n_mcp, o->mcp_all, run_on_mcp_ready, r,
				  &r->mcp, e)) < 0)
		goto fail;
	static const struct agent_sandbox_events ev = {
		.ready = run_on_sb_ready,
		.failed = run_on_sb_failed,
		.destroyed = run_on_sb_destroyed,
	};
	if (o->daemon_socket) {
		struct agent_sandbox_daemon_spec ds = {
			.socket = o->daemon_socket, .cpus = o->vm.cpus, .memory_mib = o->vm.memory_mib,
			.net = o->vm.net ? o->net_spec : NULL,
			.image = o->daemon_image,
			/* ttl_s 0: a short TTL that sandbox_daemon.c renews while the
			 * run lives, so a killed CLI's sandbox goes in minutes. */
		};
		rc = agent_sandbox_daemon_new(loop, &ds, &ev, r, &r->sb, e);
	} else {
		rc = agent_sandbox_vm_new(loop, &o->vm, &ev, r, &r->sb, e);
	}
	if (rc < 0) {
		struct err ce = *e;
		agent_finish(r, AGENT_SANDBOX_FAILED, "%s", ce.msg);
		if (out)
			*out = NULL;
		return 0;   /* done fires from the teardown */
	}
	if (o->timeout_s)
		uv_timer_start(&r->deadline, run_on_deadline, (uint64_t)o->timeout_s * 1000, 0);
	if (out)
		*out = r;
	return 0;
fail:
	if (r->llm)
		llm_client_close(r->llm, NULL, NULL);
	if (r->approval)
		approval_close(r->approval);
	runlog_close(r->rl);
	approval_policy_free(&r->policy);
	json_decref(r->res.summary);
	/* r is freed once the timer handle is closed: the handle lives in r. */
	uv_close((uv_handle_t *)&r->deadline, run_free_on_close);
	return rc;
}
