/* The reasoning loop: ask the model, run its tool calls one by one (classify,
 * decide, dispatch), give every result or error back, ask again; stop on a final
 * answer or a limit. Nothing from the model is trusted: arguments that are not
 * JSON, an unknown tool, a schema violation all become tool errors it can
 * correct, and repeating the same call with the same result four times in a
 * row stops the run as stuck. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/internal.h"
#include "agent/tools.h"
#include "core/clock.h"

static void step_next_call(struct agent_run *r);

/* Keeps the head and the tail of a long result, with a visible note. */
static char *step_truncate(const char *text)
{
	size_t n = strlen(text);
	if (n <= AGENT_RESULT_MAX)
		return strdup(text);
	size_t keep = AGENT_RESULT_MAX / 2;
	char *out = NULL;
	if (asprintf(&out, "%.*s\n[... %zu bytes cut from the middle ...]\n%s", (int)keep, text,
		     n - 2 * keep, text + n - keep) < 0)
		return NULL;
	return out;
}

static int step_stuck(struct agent_run *r, const struct llm_tool_call *c, const char *result)
{
	char *args = c->arguments ? json_dumps(c->arguments, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	char *sig = NULL;
	if (asprintf(&sig, "%s\n%s\n%s", c->name, args ? args : c->raw_arguments ? c->raw_arguments : "",
		     result) < 0)
		sig = NULL;
	free(args);
	if (!sig)
		return 0;
	if (r->last_sig && !strcmp(r->last_sig, sig)) {
		r->repeats++;
		free(sig);
	} else {
		free(r->last_sig);
		r->last_sig = sig;
		r->repeats = 1;
	}
	return r->repeats >= AGENT_STUCK_REPEATS;
}

/* One result goes back to the model (always), into the log, onto the screen. */
static void step_deliver(struct agent_run *r, const char *status, int is_error, const char *text,
			 const struct approval_class_result *cls, const struct approval_decision *d)
{
	struct llm_tool_call *c = &r->reply->calls[r->call_i];
	char *body = step_truncate(text ? text : "");
	struct err e = { 0 };
	if (!body || llm_conv_add_tool_result(r->conv, c->id, body, is_error, &e) < 0) {
		free(body);
		agent_finish(r, AGENT_SANDBOX_FAILED, "keeping the tool result: out of memory");
		return;
	}
	double ms = clock_now_ms() - r->call_t0;
	char target[64];
	agent_call_target(c->name, c->arguments, target, sizeof(target));
	if (ms < 1000)
		agent_progress(r, "[%d] %s %s: %s (%.0f ms)", r->step, c->name, target, status, ms);
	else
		agent_progress(r, "[%d] %s %s: %s (%.1f s)", r->step, c->name, target, status, ms / 1000.0);
	struct runlog_tool t = {
		.step = r->step, .call_id = c->id, .name = c->name, .arguments = c->arguments,
		.classification = cls ? (cls->cls == APPROVAL_RED ? "red" : "green") : NULL,
		.class_reason = cls ? cls->reason : NULL,
		.decision = d ? (d->approved ? "approved" : "denied") : cls ? "not_needed" : NULL,
		.decider = d ? d->decider : NULL, .decision_reason = d ? d->reason : NULL,
		.scope = d ? (d->scope == APPROVAL_SCOPE_TOOL ? "tool" : "call") : NULL,
		.effect_sha256 = d ? d->effect_sha256 : NULL,
		.status = status, .duration_ms = ms, .result = body,
	};
	runlog_tool_call(r->rl, &t, NULL);
	int stuck = step_stuck(r, c, body);
	free(body);
	if (stuck) {
		agent_finish(r, AGENT_LIMIT, "stuck: the model repeated %s with the same result %d times in a row",
			     c->name, AGENT_STUCK_REPEATS);
		return;
	}
	r->call_i++;
	step_next_call(r);
}

/* What a pending call needs to be delivered: its class and decision. */
struct step_call {
	struct agent_run *r;
	struct approval_class_result cls;
	struct approval_decision dec;
	int decided;
	struct approval_card card;
};

static struct step_call *step_call_new(struct agent_run *r)
{
	struct step_call *sc = calloc(1, sizeof(*sc));
	if (sc)
		sc->r = r;
	return sc;
}

static void step_on_vm_tool(void *ctx, struct agent_tool_result *res)
{
	struct step_call *sc = ctx;
	struct agent_run *r = sc->r;
	if (r->stopping) {
		free(sc);
		return;
	}
	if (res->fatal) {
		free(sc);
		agent_finish(r, AGENT_SANDBOX_FAILED, "%s", res->text);
		return;
	}
	step_deliver(r, res->is_error ? "error" : "ok", res->is_error, res->text, &sc->cls, NULL);
	free(sc);
}

static void step_on_mcp_result(void *ctx, int is_error, const char *text)
{
	struct step_call *sc = ctx;
	struct agent_run *r = sc->r;
	if (!r->stopping)
		step_deliver(r, is_error ? "error" : "ok", is_error, text, &sc->cls, sc->decided ? &sc->dec : NULL);
	free(sc);
}

static void step_dispatch(struct step_call *sc)
{
	struct agent_run *r = sc->r;
	struct llm_tool_call *c = &r->reply->calls[r->call_i];
	char target[64];
	agent_call_target(c->name, c->arguments, target, sizeof(target));
	agent_progress_begin(r, "[%d] %s %s: running...", r->step, c->name, target);
	if (agent_is_vm_tool(c->name))
		agent_vm_tool_call(r->sb, c->name, c->arguments, r->o->tool_timeout_s, step_on_vm_tool, sc);
	else
		agent_mcp_call(r->mcp, c->name, c->arguments, step_on_mcp_result, sc);
}

static void step_on_decision(const struct approval_decision *d, void *ctx)
{
	struct step_call *sc = ctx;
	struct agent_run *r = sc->r;
	if (r->stopping) {
		free(sc);
		return;
	}
	sc->dec = *d;
	sc->dec.selected = NULL;
	sc->decided = 1;
	if (!d->approved) {
		r->denied_any = 1;
		char msg[APPROVAL_REASON_MAX + 128];
		snprintf(msg, sizeof(msg), "the user denied this call (%s); it did not run. Do not retry it unchanged.",
			 d->reason[0] ? d->reason : d->decider);
		step_deliver(r, "denied", 1, msg, &sc->cls, &sc->dec);
		free(sc);
		return;
	}
	step_dispatch(sc);
}

static void step_next_call(struct agent_run *r)
{
	if (r->stopping)
		return;
	if (r->call_i >= r->reply->ncalls) {
		llm_reply_free(r->reply);
		r->reply = NULL;
		agent_step(r);
		return;
	}
	struct llm_tool_call *c = &r->reply->calls[r->call_i];
	r->call_t0 = clock_now_ms();
	char msg[600];
	if (c->error) {
		snprintf(msg, sizeof(msg), "%.64s: the arguments are not a JSON object (%.400s); call it again with valid JSON",
			 c->name, c->error);
		step_deliver(r, "bad arguments", 1, msg, NULL, NULL);
		return;
	}
	const json_t *entry = agent_mcp_tool_entry(r->mcp, c->name);
	if (!agent_is_vm_tool(c->name) && !entry) {
		snprintf(msg, sizeof(msg), "unknown tool '%.100s'; use one of the tools you were given", c->name);
		step_deliver(r, "unknown tool", 1, msg, NULL, NULL);
		return;
	}
	struct step_call *sc = step_call_new(r);
	if (!sc) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "out of memory");
		return;
	}
	approval_classify_tool(&r->policy, c->name, entry, &sc->cls);
	if (sc->cls.cls == APPROVAL_GREEN) {
		step_dispatch(sc);
		return;
	}
	sc->card = (struct approval_card){
		.kind = APPROVAL_KIND_TOOL, .title = c->name, .reason = sc->cls.reason, .tool = c->name,
		.arguments = c->arguments, .offer_tool_scope = 1,
	};
	if (approval_card_seal(&sc->card) < 0 || approval_decide(r->approval, &sc->card, step_on_decision, sc) < 0) {
		free(sc);
		agent_finish(r, AGENT_SANDBOX_FAILED, "asking for approval of %s failed", c->name);
	}
}

static void step_on_reply(void *ctx, struct llm_reply *reply, const struct llm_failure *fail)
{
	struct agent_run *r = ctx;
	r->req = NULL;
	struct runlog_model m = { .step = r->step, .model = r->o->model.model };
	if (fail) {
		m.latency_ms = fail->stats.latency_ms;
		m.request_bytes = (long long)fail->stats.request_bytes;
		m.error = fail->e.msg;
		runlog_model_request(r->rl, &m, NULL);
		agent_finish(r, AGENT_MODEL_FAILED, "the model failed: %s", fail->e.msg);
		return;
	}
	m.response_model = reply->model;
	m.finish_reason = reply->stop_raw;
	m.request_bytes = (long long)reply->stats.request_bytes;
	m.response_bytes = (long long)reply->stats.response_bytes;
	m.input_tokens = reply->input_tokens;
	m.output_tokens = reply->output_tokens;
	m.latency_ms = reply->stats.latency_ms;
	m.text = reply->text;
	runlog_model_request(r->rl, &m, NULL);
	struct err e = { 0 };
	if (llm_conv_add_assistant(r->conv, reply->text, reply->calls, reply->ncalls, &e) < 0) {
		llm_reply_free(reply);
		agent_finish(r, AGENT_SANDBOX_FAILED, "keeping the conversation: %s", e.msg);
		return;
	}
	if (reply->ncalls == 0) {
		free(r->res.answer);
		r->res.answer = reply->text ? strdup(reply->text) : strdup("");
		llm_reply_free(reply);
		agent_progress(r, "[%d] the model answered; reviewing the workspace", r->step);
		agent_changes_start(r);
		return;
	}
	r->reply = reply;
	r->call_i = 0;
	step_next_call(r);
}

void agent_step(struct agent_run *r)
{
	if (r->stopping)
		return;
	int max = r->o->max_steps ? r->o->max_steps : AGENT_MAX_STEPS_DEFAULT;
	if (r->step >= max) {
		agent_finish(r, AGENT_LIMIT, "the run reached --max-steps %d without a final answer", max);
		return;
	}
	r->step++;
	r->res.steps = r->step;
	struct err e = { 0 };
	if (llm_request(r->llm, r->conv, r->tools, r->ntools, step_on_reply, r, &r->req, &e) < 0)
		agent_finish(r, AGENT_MODEL_FAILED, "asking the model: %s", e.msg);
}
