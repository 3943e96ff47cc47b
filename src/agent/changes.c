/* The end of a run: copy the VM's /workspace out, compare it with what went in,
 * show the diff card, ask (applying is always red), apply the approved files
 * all or nothing, and keep the originals for `ironclaw undo`. The blocking file
 * work (compare, apply) runs on the thread pool. A denied or failed apply leaves
 * the host's workspace byte for byte as it was. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/copy.h"
#include "agent/internal.h"
#include "agent/sandbox.h"

void agent_changes_free(struct agent_run *r)
{
	/* Before the changes: their count says how many summaries there are. */
	if (r->file_summaries)
		for (size_t i = 0; i < r->changes.n; i++)
			free(r->file_summaries[i]);
	free(r->file_summaries);
	r->file_summaries = NULL;
	if (r->have_changes)
		workspace_changes_free(&r->changes);
	r->have_changes = 0;
	if (r->have_staging)
		workspace_remove_tree(r->staging);
	r->have_staging = 0;
	workspace_manifest_free(&r->after);
	workspace_manifest_free(&r->before);
	free(r->card_text);
	r->card_text = NULL;
	free(r->files);
	r->files = NULL;
	free(r->selected);
	r->selected = NULL;
}

/* The run finished its task: exit 0, or 3 when a red action was denied on the way. */
static void changes_done(struct agent_run *r)
{
	if (r->denied_any)
		agent_finish(r, AGENT_DENIED, "a red action was denied during the run");
	else
		agent_finish(r, AGENT_OK, "%s", "");
}

static const char *changes_kind(const struct workspace_change *c)
{
	return c->kind == WORKSPACE_CREATED ? "created" : c->kind == WORKSPACE_DELETED ? "deleted" : "modified";
}

static json_t *changes_paths(struct agent_run *r, const unsigned char *selected)
{
	json_t *a = json_array();
	for (size_t i = 0; i < r->changes.n; i++)
		if (!selected || selected[i])
			json_array_append_new(a, json_pack("{s:s,s:s}", "path", r->changes.v[i].path, "change",
							   changes_kind(&r->changes.v[i])));
	return a;
}

static void changes_apply_job(uv_work_t *w)
{
	struct agent_run *r = w->data;
	/* <runs>/<id>/undo: workspace_apply makes the last level, the run's own here. */
	char run_dir[sizeof(r->undo_dir)];
	snprintf(run_dir, sizeof(run_dir), "%s/%s", r->runs_dir, r->res.run_id);
	if (mkdir(run_dir, 0700) < 0 && errno != EEXIST) {
		r->work_rc = err_set(&r->work_e, -errno, "creating %s: %s", run_dir, strerror(errno));
		return;
	}
	struct workspace_apply_options ao = { .selected = r->selected, .undo_dir = r->undo_dir };
	r->work_rc = workspace_apply(&r->changes, &ao, &r->work_e);
}

static void changes_after_apply(uv_work_t *w, int status)
{
	struct agent_run *r = w->data;
	(void)status;
	json_t *paths = changes_paths(r, r->selected);
	if (r->work_rc < 0) {
		runlog_applied(r->rl, paths, "rolled_back", NULL);
		json_decref(paths);
		agent_finish(r, r->work_rc == -EBUSY ? AGENT_DENIED : AGENT_SANDBOX_FAILED,
			     "nothing was applied: %s", r->work_e.msg);
		return;
	}
	runlog_applied(r->rl, paths, "ok", NULL);
	json_object_set_new(r->res.summary, "applied", paths);
	agent_progress(r, "applied %d change%s to %s (undo: ironclaw undo %s)", r->work_rc,
		       r->work_rc == 1 ? "" : "s", r->o->workspace, r->res.run_id);
	changes_done(r);
}

static void changes_on_decision(const struct approval_decision *d, void *ctx)
{
	struct agent_run *r = ctx;
	if (r->stopping)
		return;
	json_t *sel = d->selected ? changes_paths(r, d->selected) : json_array();
	runlog_changes_decision(r->rl, d->approved ? "approved" : "denied", d->decider, d->reason,
				d->effect_sha256, sel, NULL);
	json_decref(sel);
	json_object_set_new(r->res.summary, "decision", json_string(d->approved ? "approved" : "denied"));
	size_t n_sel = 0;
	for (size_t i = 0; d->selected && i < d->n_files; i++)
		n_sel += d->selected[i] != 0;
	if (!d->approved || !n_sel) {
		agent_progress(r, "the changes were not applied (%s); %s is unchanged",
			       d->reason[0] ? d->reason : d->decider, r->o->workspace);
		agent_finish(r, AGENT_DENIED, "the changes were denied: %s", d->reason[0] ? d->reason : d->decider);
		return;
	}
	r->selected = malloc(r->changes.n);
	if (!r->selected) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "out of memory");
		return;
	}
	memcpy(r->selected, d->selected, r->changes.n);
	r->work.data = r;
	if (uv_queue_work(r->loop, &r->work, changes_apply_job, changes_after_apply) < 0)
		agent_finish(r, AGENT_SANDBOX_FAILED, "applying: no thread pool");
}

static void changes_ask(struct agent_run *r)
{
	char summary[256];
	workspace_card_summary(&r->changes, summary, sizeof(summary));
	r->card_text = workspace_card_text(&r->changes);
	r->files = calloc(r->changes.n, sizeof(*r->files));
	r->file_summaries = calloc(r->changes.n, sizeof(*r->file_summaries));
	if (!r->card_text || !r->files || !r->file_summaries) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "out of memory");
		return;
	}
	for (size_t i = 0; i < r->changes.n; i++) {
		const struct workspace_change *c = &r->changes.v[i];
		const char *k = changes_kind(c);
		if (c->binary || (!c->added && !c->deleted))
			r->file_summaries[i] = strdup(k);
		else if (asprintf(&r->file_summaries[i], "%s +%ld -%ld", k, c->added, c->deleted) < 0)
			r->file_summaries[i] = NULL;
		r->files[i] = (struct approval_file){ .path = c->path, .summary = r->file_summaries[i],
						      .conflict = c->conflict };
	}
	char hex[65];
	workspace_hex(r->changes.effect, hex);
	json_t *files = changes_paths(r, NULL);
	runlog_diff(r->rl, summary, files, hex, NULL);
	json_t *card = workspace_card_json(&r->changes);
	if (card)
		json_object_set_new(r->res.summary, "changes", card);
	json_decref(files);
	struct approval_class_result cls;
	approval_classify_changes(&cls);
	snprintf(r->card_title, sizeof(r->card_title), "apply to %s: %s", r->o->workspace, summary);
	r->changes_card = (struct approval_card){
		.kind = APPROVAL_KIND_CHANGES, .title = r->card_title, .reason = cls.reason,
		.diff = r->card_text, .diff_len = strlen(r->card_text),
		.files = r->files, .n_files = r->changes.n,
	};
	enum approval_mode mode = approval_mode_resolved(r->approval);
	if (mode != APPROVAL_MODE_ASK && !r->o->json && r->o->progress)
		/* No prompt will show it: the card still goes where the user looks. */
		fprintf(r->o->progress, "%s\n", r->card_text);
	if (approval_card_seal(&r->changes_card) < 0 ||
	    approval_decide(r->approval, &r->changes_card, changes_on_decision, r) < 0)
		agent_finish(r, AGENT_SANDBOX_FAILED, "asking for approval of the changes failed");
}

static void changes_compute_job(uv_work_t *w)
{
	struct agent_run *r = w->data;
	r->work_rc = workspace_changes_compute(r->o->workspace, &r->before, r->staging, &r->after,
					       &r->changes, &r->work_e);
}

static void changes_after_compute(uv_work_t *w, int status)
{
	struct agent_run *r = w->data;
	(void)status;
	if (r->stopping)
		return;
	if (r->work_rc < 0) {
		agent_finish(r, AGENT_SANDBOX_FAILED, "comparing the workspace: %s", r->work_e.msg);
		return;
	}
	r->have_changes = 1;
	if (r->changes.n == 0) {
		agent_progress(r, "no changes to the workspace");
		json_object_set_new(r->res.summary, "decision", json_string("none"));
		changes_done(r);
		return;
	}
	changes_ask(r);
}

static void changes_on_copied_out(void *ctx, const struct err *e)
{
	struct agent_run *r = ctx;
	if (!agent_sandbox_step_ok(r, e))
		return;
	r->work.data = r;
	if (uv_queue_work(r->loop, &r->work, changes_compute_job, changes_after_compute) < 0)
		agent_finish(r, AGENT_SANDBOX_FAILED, "comparing the workspace: no thread pool");
}

void agent_changes_start(struct agent_run *r)
{
	if (!r->o->workspace || !r->copied_in) {
		changes_done(r);
		return;
	}
	snprintf(r->staging, sizeof(r->staging), "%s/%s.staging", r->runs_dir, r->res.run_id);
	r->have_staging = 1;
	struct err e = { 0 };
	/* Against the copy-in manifest: files the run left alone are not staged. */
	if (agent_sandbox_copy_out(r->sb, r->staging, &r->before, &r->after,
				   changes_on_copied_out, r, &e) < 0)
		agent_finish(r, AGENT_SANDBOX_FAILED, "%s", e.msg);
}
