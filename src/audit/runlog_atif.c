/* A run log as an ATIF trajectory (Harbor's Agent Trajectory Interchange
 * Format, RFC 0001, ATIF-v1.4), for the tools that read agent trajectories.
 *
 * The mapping: the task is step 1 (source "user"); every model request is an
 * agent step whose tool_calls are the tool.call events of that step and whose
 * observation holds what each call returned (or why it was denied), with
 * source_call_id pointing at the call; a workspace diff, its decision and
 * what was applied make a system step. ATIF has no field for approvals, so
 * classifications and decisions go under "extra" (the format's place for
 * custom data), as do the run's status, exit code, VM and approval mode at
 * the root. Only the fields the RFC defines are emitted outside "extra":
 * Harbor's validators reject unknown ones. */
#include "audit/audit.h"

#include <stdio.h>
#include <string.h>

static const char *atif_str(const json_t *ev, const char *key)
{
	return json_string_value(json_object_get(ev, key));
}

/* Copies ev[key] to o[as] when present. */
static void atif_copy(json_t *o, const char *as, const json_t *ev, const char *key)
{
	json_t *v = json_object_get(ev, key);
	if (v)
		json_object_set_new(o, as, json_deep_copy(v));
}

static json_t *atif_step(json_t *steps, const char *source, const json_t *ev, const char *msg)
{
	json_t *s = json_object();
	json_object_set_new(s, "step_id", json_integer((json_int_t)json_array_size(steps) + 1));
	if (atif_str(ev, "time"))
		json_object_set_new(s, "timestamp", json_string(atif_str(ev, "time")));
	json_object_set_new(s, "source", json_string(source));
	json_object_set_new(s, "message", json_string(msg ? msg : ""));
	json_array_append_new(steps, s);
	return s;
}

static json_t *atif_extra(json_t *step)
{
	json_t *x = json_object_get(step, "extra");
	if (!x) {
		x = json_object();
		json_object_set_new(step, "extra", x);
	}
	return x;
}

/* Adds a tool.call to its agent step: the call, its observation, and its
 * classification and decision under extra.approvals. */
static void atif_add_call(json_t *step, const json_t *ev, size_t nth)
{
	char idbuf[48];
	const char *id = atif_str(ev, "gen_ai.tool.call.id");
	if (!id || !*id) {
		snprintf(idbuf, sizeof(idbuf), "call_%lld_%zu",
			 (long long)json_integer_value(json_object_get(step, "step_id")), nth);
		id = idbuf;
	}
	json_t *calls = json_object_get(step, "tool_calls");
	if (!calls) {
		calls = json_array();
		json_object_set_new(step, "tool_calls", calls);
	}
	json_t *args = json_object_get(ev, "gen_ai.tool.call.arguments");
	json_array_append_new(calls, json_pack("{s:s, s:s, s:o}", "tool_call_id", id, "function_name",
					       atif_str(ev, "gen_ai.tool.name") ?
					       atif_str(ev, "gen_ai.tool.name") : "?", "arguments",
					       json_is_object(args) ? json_deep_copy(args) : json_object()));
	json_t *obs = json_object_get(step, "observation");
	if (!obs) {
		obs = json_pack("{s:[]}", "results");
		json_object_set_new(step, "observation", obs);
	}
	const char *result = atif_str(ev, "gen_ai.tool.call.result");
	const char *decision = atif_str(ev, "ironclaw.approval.decision");
	char denied[320];
	if (!result && decision && !strcmp(decision, "denied")) {
		snprintf(denied, sizeof(denied), "denied: %s", atif_str(ev, "ironclaw.approval.reason") ?
			 atif_str(ev, "ironclaw.approval.reason") : "not approved");
		result = denied;
	}
	json_array_append_new(json_object_get(obs, "results"),
			      json_pack("{s:s, s:s}", "source_call_id", id, "content",
					result ? result : ""));
	json_t *ap = json_object_get(atif_extra(step), "approvals");
	if (!ap) {
		ap = json_array();
		json_object_set_new(atif_extra(step), "approvals", ap);
	}
	json_t *a = json_pack("{s:s}", "tool_call_id", id);
	atif_copy(a, "classification", ev, "ironclaw.classification");
	atif_copy(a, "classification_reason", ev, "ironclaw.classification.reason");
	atif_copy(a, "decision", ev, "ironclaw.approval.decision");
	atif_copy(a, "decider", ev, "ironclaw.approval.decider");
	atif_copy(a, "reason", ev, "ironclaw.approval.reason");
	atif_copy(a, "scope", ev, "ironclaw.approval.scope");
	atif_copy(a, "effect_sha256", ev, "ironclaw.approval.effect_sha256");
	atif_copy(a, "status", ev, "ironclaw.tool.status");
	atif_copy(a, "duration_ms", ev, "ironclaw.duration_ms");
	json_array_append_new(ap, a);
}

static json_t *atif_agent_step(json_t *steps, const json_t *ev, const char *model)
{
	json_t *s = atif_step(steps, "agent", ev, atif_str(ev, "ironclaw.response.text"));
	const char *m = atif_str(ev, "gen_ai.response.model");
	m = m ? m : atif_str(ev, "gen_ai.request.model");
	m = m ? m : model;
	if (m)
		json_object_set_new(s, "model_name", json_string(m));
	json_t *metrics = json_object();
	atif_copy(metrics, "prompt_tokens", ev, "gen_ai.usage.input_tokens");
	atif_copy(metrics, "completion_tokens", ev, "gen_ai.usage.output_tokens");
	json_object_set_new(s, "metrics", metrics);
	json_t *x = atif_extra(s);
	atif_copy(x, "latency_ms", ev, "ironclaw.latency_ms");
	atif_copy(x, "request_bytes", ev, "ironclaw.request.bytes");
	atif_copy(x, "response_bytes", ev, "ironclaw.response.bytes");
	atif_copy(x, "finish_reasons", ev, "gen_ai.response.finish_reasons");
	atif_copy(x, "error", ev, "error.type");
	return s;
}

/* The agent step of tool calls logged as `step` (the last one with that
 * number), or the last agent step. */
static json_t *atif_find_step(json_t *steps, json_int_t want)
{
	json_t *last = NULL;
	for (size_t i = json_array_size(steps); i-- > 0;) {
		json_t *s = json_array_get(steps, i);
		if (strcmp(json_string_value(json_object_get(s, "source")), "agent"))
			continue;
		if (!last)
			last = s;
		if (json_integer_value(json_object_get(atif_extra(s), "ironclaw_step")) == want)
			return s;
	}
	return last;
}

static void atif_workspace(json_t *steps, json_t **sys, const json_t *ev, const char *name)
{
	if (!*sys || !strcmp(name, "workspace.diff")) {
		const char *sum = atif_str(ev, "ironclaw.diff.summary");
		char msg[320];
		snprintf(msg, sizeof(msg), "workspace changes%s%s", sum ? ": " : "", sum ? sum : "");
		*sys = atif_step(steps, "system", ev, msg);
	}
	json_t *x = atif_extra(*sys);
	json_t *copy = json_deep_copy(ev);
	json_object_del(copy, "ironclaw.run.id");
	json_object_set_new(x, !strcmp(name, "workspace.diff") ? "diff" :
			    !strcmp(name, "approval") ? "approval" : "applied", copy);
}

json_t *runlog_to_atif(const json_t *events, const char *agent_version)
{
	json_t *t = json_object(), *steps = json_array(), *root_extra = json_object();
	json_t *sys = NULL;
	const char *model = NULL, *id = NULL;
	long long in_tok = 0, out_tok = 0;
	int have_in = 0, have_out = 0;
	size_t i, nth = 0;
	json_t *ev;
	if (!t || !steps || !root_extra) {
		json_decref(t);
		json_decref(steps);
		json_decref(root_extra);
		return NULL;
	}
	json_array_foreach(events, i, ev) {
		const char *name = atif_str(ev, "event");
		if (!id)
			id = atif_str(ev, "ironclaw.run.id");
		if (!strcmp(name, "run.start")) {
			model = atif_str(ev, "gen_ai.request.model");
			atif_step(steps, "user", ev, atif_str(ev, "ironclaw.task"));
			atif_copy(root_extra, "provider", ev, "gen_ai.provider.name");
			atif_copy(root_extra, "base_url", ev, "url.full");
			atif_copy(root_extra, "approval_mode", ev, "ironclaw.approval.mode");
			atif_copy(root_extra, "approval_warning", ev, "ironclaw.approval.warning");
			atif_copy(root_extra, "workspace", ev, "ironclaw.workspace");
		} else if (!strcmp(name, "model.request")) {
			json_t *s = atif_agent_step(steps, ev, model);
			atif_copy(atif_extra(s), "ironclaw_step", ev, "ironclaw.step");
			json_t *v;
			if (json_is_integer(v = json_object_get(ev, "gen_ai.usage.input_tokens")))
				in_tok += json_integer_value(v), have_in = 1;
			if (json_is_integer(v = json_object_get(ev, "gen_ai.usage.output_tokens")))
				out_tok += json_integer_value(v), have_out = 1;
			nth = 0;
		} else if (!strcmp(name, "tool.call")) {
			json_t *s = atif_find_step(steps, json_integer_value(json_object_get(ev, "ironclaw.step")));
			if (!s) /* a call with no model request logged before it */
				s = atif_step(steps, "agent", ev, "");
			atif_add_call(s, ev, ++nth);
		} else if (!strcmp(name, "workspace.diff") || !strcmp(name, "approval") ||
			   !strcmp(name, "workspace.apply")) {
			atif_workspace(steps, &sys, ev, name);
		} else if (!strcmp(name, "vm.start")) {
			atif_copy(root_extra, "vm_id", ev, "ironclaw.vm.id");
		} else if (!strcmp(name, "run.end")) {
			atif_copy(root_extra, "status", ev, "ironclaw.run.status");
			atif_copy(root_extra, "exit_code", ev, "ironclaw.exit_code");
			atif_copy(root_extra, "answer", ev, "ironclaw.answer");
		}
	}
	json_object_set_new(t, "schema_version", json_string("ATIF-v1.4"));
	json_object_set_new(t, "session_id", json_string(id ? id : "unknown"));
	json_t *agent = json_pack("{s:s, s:s}", "name", "ironclaw", "version",
				  agent_version ? agent_version : "unknown");
	if (model)
		json_object_set_new(agent, "model_name", json_string(model));
	json_object_set_new(t, "agent", agent);
	json_object_set_new(t, "steps", steps);
	json_t *fm = json_pack("{s:I}", "total_steps", (json_int_t)json_array_size(steps));
	if (have_in)
		json_object_set_new(fm, "total_prompt_tokens", json_integer(in_tok));
	if (have_out)
		json_object_set_new(fm, "total_completion_tokens", json_integer(out_tok));
	json_object_set_new(t, "final_metrics", fm);
	json_object_set_new(t, "extra", root_extra);
	return t;
}
