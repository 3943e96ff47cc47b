/* `ironclaw runs`: the record of past agent runs.
 *
 *   ironclaw runs [--dir DIR] [--json]                  the list, oldest first
 *   ironclaw runs show ID [--format text|json|atif]     one run
 *
 * It reads the append-only run logs (src/audit/runlog*.c). Everything shown
 * came, at some remove, from a model or a guest, so text output goes through
 * a filter that keeps control characters off the terminal. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/commands.h"

#define RUNS_TASK_COLS 48

const struct option cmd_runs_options[] = {
	{ "dir", required_argument, NULL, 'd' },
	{ "runs-dir", required_argument, NULL, 'd' },   /* as `run` and `undo` spell it */
	{ "json", no_argument, NULL, 'j' },
	{ "format", required_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
const char cmd_runs_shortopts[] = "+:d:f:jh";

static void runs_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw runs [--dir DIR] [--json]\n"
		"       ironclaw runs show ID [--dir DIR] [--format text|json|atif]\n\n"
		"Lists the agent runs recorded by `ironclaw run`, or shows one: its steps, each\n"
		"tool call with its classification (green/red) and approval decision, the diff\n"
		"summary and what was applied.\n\n"
		"  --dir DIR       where the run logs are (default: $IRONCLAW_RUNS_DIR, else\n"
		"                  %s for root, else $XDG_STATE_HOME/ironclaw/runs,\n"
		"                  else ~/.local/state/ironclaw/runs)\n"
		"  --json          the list as one JSON object per line\n"
		"  --format FMT    for `show`: text (default), json (the log's events, one per\n"
		"                  line), or atif (an ATIF-v1.4 trajectory, Harbor's format;\n"
		"                  approvals are under \"extra\")\n\n"
		"exit status: 0 shown, 1 the run or the directory could not be read, 2 usage\n",
		RUNLOG_DIR_ROOT);
}

/* Prints s with control characters shown as '?', at most max bytes (0: all),
 * not cutting a UTF-8 sequence. */
static void runs_put(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	int cut = max && n > max;
	if (cut) {
		n = max;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++)
		putchar((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
	if (cut)
		fputs("...", stdout);
}

static const char *runs_s(const json_t *ev, const char *k)
{
	const char *s = json_string_value(json_object_get(ev, k));
	return s ? s : "";
}

static int runs_list(const char *dir, int json)
{
	struct runlog_summary *runs = NULL;
	size_t n = 0;
	struct err e = { 0 };
	if (runlog_list(dir, &runs, &n, &e) < 0) {
		fprintf(stderr, "ironclaw runs: %s\n", e.msg);
		return 1;
	}
	if (!json && !n)
		printf("no runs in %s\n", dir);
	else if (!json)
		printf("%-26s %-24s %-12s %5s  %s\n", "ID", "STARTED", "STATUS", "STEPS", "TASK");
	for (size_t i = 0; i < n; i++) {
		const struct runlog_summary *r = &runs[i];
		if (json) {
			json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "id", r->id,
					      "started", r->started, "task", r->task, "status", r->status,
					      "model", r->model, "steps", r->steps, "tool_calls",
					      r->tool_calls, "denied", r->denied);
			if (o) {
				json_dumpf(o, stdout, JSON_COMPACT);
				putchar('\n');
				json_decref(o);
			}
			continue;
		}
		printf("%-26s %-24s %-12s %5d  ", r->id, r->started[0] ? r->started : "-", r->status,
		       r->steps);
		runs_put(r->task, RUNS_TASK_COLS);
		putchar('\n');
	}
	free(runs);
	return 0;
}

static void runs_show_tool(const json_t *ev)
{
	printf("    tool ");
	runs_put(runs_s(ev, "gen_ai.tool.name"), 80);
	printf("  %s", runs_s(ev, "ironclaw.classification"));
	const char *d = runs_s(ev, "ironclaw.approval.decision");
	if (*d && strcmp(d, "not_needed")) {
		printf("  %s by %s", d, runs_s(ev, "ironclaw.approval.decider"));
		const char *sc = runs_s(ev, "ironclaw.approval.scope");
		if (*sc)
			printf(" (scope %s)", sc);
	}
	printf("  %s  %.0f ms\n", runs_s(ev, "ironclaw.tool.status"),
	       json_number_value(json_object_get(ev, "ironclaw.duration_ms")));
	const char *why = runs_s(ev, "ironclaw.approval.reason");
	if (*why && strcmp(d, "not_needed")) {
		printf("      ");
		runs_put(why, 200);
		putchar('\n');
	}
}

static void runs_show_files(const json_t *files)
{
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		printf("    ");
		runs_put(json_is_string(f) ? json_string_value(f) : runs_s(f, "path"), 200);
		if (!json_is_string(f) && *runs_s(f, "change")) {
			printf("  ");
			runs_put(runs_s(f, "change"), 80);
		}
		putchar('\n');
	}
}

static void runs_show_text(const json_t *events, const char *id)
{
	size_t i;
	json_t *ev;
	printf("run %s\n", id);
	json_array_foreach(events, i, ev) {
		const char *name = runs_s(ev, "event");
		if (!strcmp(name, "run.start")) {
			printf("started %s  model ", runs_s(ev, "time"));
			runs_put(runs_s(ev, "gen_ai.request.model"), 80);
			printf("  provider ");
			runs_put(runs_s(ev, "gen_ai.provider.name"), 40);
			printf("  approve %s\ntask: ", runs_s(ev, "ironclaw.approval.mode"));
			runs_put(runs_s(ev, "ironclaw.task"), 2000);
			putchar('\n');
			if (*runs_s(ev, "ironclaw.approval.warning"))
				printf("WARNING: %s\n", runs_s(ev, "ironclaw.approval.warning"));
		} else if (!strcmp(name, "vm.start")) {
			printf("vm %s\n", runs_s(ev, "ironclaw.vm.id"));
		} else if (!strcmp(name, "model.request")) {
			printf("  step %lld  %.0f ms  %lld B out, %lld B in",
			       (long long)json_integer_value(json_object_get(ev, "ironclaw.step")),
			       json_number_value(json_object_get(ev, "ironclaw.latency_ms")),
			       (long long)json_integer_value(json_object_get(ev, "ironclaw.request.bytes")),
			       (long long)json_integer_value(json_object_get(ev, "ironclaw.response.bytes")));
			if (json_object_get(ev, "gen_ai.usage.input_tokens"))
				printf("  tokens %lld/%lld",
				       (long long)json_integer_value(json_object_get(ev, "gen_ai.usage.input_tokens")),
				       (long long)json_integer_value(json_object_get(ev, "gen_ai.usage.output_tokens")));
			if (*runs_s(ev, "error.type"))
				printf("  error: %s", runs_s(ev, "error.type"));
			putchar('\n');
		} else if (!strcmp(name, "tool.call")) {
			runs_show_tool(ev);
		} else if (!strcmp(name, "workspace.diff")) {
			printf("diff: ");
			runs_put(runs_s(ev, "ironclaw.diff.summary"), 400);
			printf("  (sha256 %.12s)\n", runs_s(ev, "ironclaw.diff.sha256"));
			runs_show_files(json_object_get(ev, "ironclaw.diff.files"));
		} else if (!strcmp(name, "approval")) {
			printf("changes %s by %s: ", runs_s(ev, "ironclaw.approval.decision"),
			       runs_s(ev, "ironclaw.approval.decider"));
			runs_put(runs_s(ev, "ironclaw.approval.reason"), 200);
			printf("  (sha256 %.12s)\n", runs_s(ev, "ironclaw.approval.effect_sha256"));
		} else if (!strcmp(name, "workspace.apply")) {
			printf("applied: %s\n", runs_s(ev, "ironclaw.applied.status"));
			runs_show_files(json_object_get(ev, "ironclaw.applied.files"));
		} else if (!strcmp(name, "run.end")) {
			printf("ended %s  status %s  exit %lld  steps %lld\n", runs_s(ev, "time"),
			       runs_s(ev, "ironclaw.run.status"),
			       (long long)json_integer_value(json_object_get(ev, "ironclaw.exit_code")),
			       (long long)json_integer_value(json_object_get(ev, "ironclaw.steps")));
		}
	}
}

static int runs_show(const char *dir, const char *id, const char *format)
{
	json_t *events = NULL;
	size_t skipped = 0;
	struct err e = { 0 };
	if (runlog_load(dir, id, &events, &skipped, &e) < 0) {
		fprintf(stderr, "ironclaw runs show: %s\n", e.msg);
		return 1;
	}
	int rc = 0;
	if (!strcmp(format, "atif")) {
		json_t *t = runlog_to_atif(events, IRONCLAW_VERSION);
		if (!t || json_dumpf(t, stdout, JSON_INDENT(2)) < 0) {
			fprintf(stderr, "ironclaw runs show: cannot write the trajectory\n");
			rc = 1;
		} else {
			putchar('\n');
		}
		json_decref(t);
	} else if (!strcmp(format, "json")) {
		size_t i;
		json_t *ev;
		json_array_foreach(events, i, ev) {
			json_dumpf(ev, stdout, JSON_COMPACT);
			putchar('\n');
		}
	} else {
		runs_show_text(events, id);
	}
	if (skipped)
		fprintf(stderr, "ironclaw runs show: %zu damaged line%s skipped\n", skipped,
			skipped == 1 ? "" : "s");
	json_decref(events);
	return rc;
}

int cmd_runs(int argc, char **argv)
{
	const char *dir_opt = NULL, *format = "text";
	int json = 0, c;
	opterr = 0;
	optind = 1;
	/* "+" in shortopts stops at the first word, so parse in rounds: options,
	 * a word, options... (options may come after `show ID`). */
	char *words[3];
	int nw = 0;
	while (optind < argc) {
		c = getopt_long(argc, argv, cmd_runs_shortopts, cmd_runs_options, NULL);
		if (c == -1) {
			if (nw == 3) {
				fprintf(stderr, "ironclaw runs: too many words (hint: `ironclaw runs show ID`)\n");
				return 2;
			}
			words[nw++] = argv[optind++];
			continue;
		}
		switch (c) {
		case 'd':
			dir_opt = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'f':
			format = optarg;
			break;
		case 'h':
			runs_usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "ironclaw runs: %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "ironclaw runs: unknown option '%s' (hint: ironclaw runs --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (strcmp(format, "text") && strcmp(format, "json") && strcmp(format, "atif")) {
		fprintf(stderr, "ironclaw runs: --format is text, json or atif, not '%s'\n", format);
		return 2;
	}
	char *dir = dir_opt ? strdup(dir_opt) : runlog_dir_default();
	if (!dir) {
		fprintf(stderr, "ironclaw runs: out of memory\n");
		return 1;
	}
	int rc;
	if (nw == 0) {
		rc = runs_list(dir, json);
	} else if (!strcmp(words[0], "show") && nw == 2) {
		rc = runs_show(dir, words[1], format);
	} else if (!strcmp(words[0], "show")) {
		fprintf(stderr, "ironclaw runs show: needs one run id (hint: `ironclaw runs` lists them)\n");
		rc = 2;
	} else {
		fprintf(stderr, "ironclaw runs: unknown word '%s' (hint: `ironclaw runs show ID`)\n",
			words[0]);
		rc = 2;
	}
	free(dir);
	return rc;
}
