/* `ironclaw runs` on run logs written by the real writer: the list, `show`
 * in text, json and atif, options before and after the command word, --help,
 * and the exit codes for a missing run (1) and bad usage (2). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/harness.h"

static char dir[] = "/tmp/ironclaw-runs-XXXXXX";
static char ids[3][RUNLOG_ID_MAX + 1];

static void write_run(int k, const char *task, const char *status, int denied)
{
	struct runlog *rl;
	struct err e = { 0 };
	cr_assert_eq(runlog_open(dir, &rl, &e), 0, "%s", e.msg);
	snprintf(ids[k], sizeof(ids[k]), "%s", runlog_id(rl));
	cr_assert_eq(runlog_add_secret(rl, "sk-test-SECRET-9999"), 0);
	struct runlog_start s = { .task = task, .provider = "anthropic", .model = "claude-x",
				  .base_url = "https://api.anthropic.com", .approval_mode = "ask" };
	runlog_run_start(rl, &s, NULL);
	struct runlog_model m = { .step = 1, .model = "claude-x", .request_bytes = 900,
				  .response_bytes = 200, .input_tokens = 50, .output_tokens = 5,
				  .latency_ms = 80, .text = "calling a tool", .error = NULL };
	runlog_model_request(rl, &m, NULL);
	json_t *args = json_pack("{s:s}", "key", "sk-test-SECRET-9999");
	struct runlog_tool t = { .step = 1, .call_id = "toolu_1", .name = "memory__create_entities",
				 .arguments = args, .classification = "red",
				 .decision = denied ? "denied" : "approved", .decider = "ask",
				 .decision_reason = denied ? "denied: the user said no" : "approved by the user",
				 .scope = "call", .effect_sha256 = "0123456789abcdef", .status = denied ? "denied" : "ok",
				 .duration_ms = 1000 };
	runlog_tool_call(rl, &t, NULL);
	json_decref(args);
	json_t *files = json_pack("[{s:s, s:s}]", "path", "notes.txt", "change", "modified +1 -0");
	runlog_diff(rl, "1 file changed", files, "feed", NULL);
	json_decref(files);
	runlog_run_end(rl, status, denied ? 3 : 0, 1, "done", NULL);
	runlog_close(rl);
	usleep(1000);
}

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	write_run(0, "add a line to notes.txt", "ok", 0);
	write_run(1, "a very long task that goes on and on, well past the column the list gives it", "denied", 1);
	write_run(2, "third", "limit", 0);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(runs_cli, .init = setup, .fini = teardown, .timeout = 120);

static void run(struct run_result *r, const char *a1, const char *a2, const char *a3,
		const char *a4, const char *a5, const char *a6, const char *a7)
{
	char *argv[] = { (char *)harness_ironclaw(), (char *)a1, (char *)a2, (char *)a3, (char *)a4,
			 (char *)a5, (char *)a6, (char *)a7, NULL };
	cr_assert_eq(harness_run(argv, NULL, 0, 60000, r), 0);
	cr_assert(!r->timed_out);
}

Test(runs_cli, list)
{
	struct run_result r;
	run(&r, "runs", "--dir", dir, NULL, NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 0, "%s", r.err);
	for (int k = 0; k < 3; k++)
		cr_expect(strstr(r.out, ids[k]), "%s listed: %s", ids[k], r.out);
	cr_expect(strstr(r.out, "ID") && strstr(r.out, "STATUS") && strstr(r.out, "STEPS"));
	cr_expect(strstr(r.out, "denied"));
	cr_expect(strstr(r.out, "a very long task that goes on and on, well past ..."),
		  "the task is cut: %s", r.out);
	cr_expect(strstr(r.out, ids[0]) < strstr(r.out, ids[2]), "oldest first");
	harness_result_free(&r);
	/* Options before the command word, and --json. */
	run(&r, "--dir", dir, "runs", "--json", NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 0, "%s", r.err);
	int lines = 0;
	for (char *p = r.out; (p = strchr(p, '\n')); p++)
		lines++;
	cr_expect_eq(lines, 3);
	json_t *o = json_loadb(r.out, strchr(r.out, '\n') - r.out, 0, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(o, "id")), ids[0]);
	cr_expect_eq(json_integer_value(json_object_get(o, "steps")), 1);
	json_decref(o);
	harness_result_free(&r);
}

Test(runs_cli, show_text_and_json)
{
	struct run_result r;
	run(&r, "runs", "show", ids[1], "--dir", dir, NULL, NULL);
	cr_expect_eq(r.exit_code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "task: a very long task"));
	cr_expect(strstr(r.out, "tool memory__create_entities  red  denied by ask"), "%s", r.out);
	cr_expect(strstr(r.out, "the user said no"));
	cr_expect(strstr(r.out, "diff: 1 file changed"));
	cr_expect(strstr(r.out, "notes.txt  modified +1 -0"));
	cr_expect(strstr(r.out, "status denied  exit 3"));
	cr_expect_null(strstr(r.out, "SECRET"), "the key was redacted when written");
	harness_result_free(&r);
	run(&r, "runs", "--format", "json", "show", ids[0], "--dir", dir);
	cr_expect_eq(r.exit_code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "\"gen_ai.tool.name\":\"memory__create_entities\""));
	harness_result_free(&r);
}

Test(runs_cli, show_atif)
{
	struct run_result r;
	run(&r, "runs", "show", ids[0], "--format", "atif", "--dir", dir);
	cr_expect_eq(r.exit_code, 0, "%s", r.err);
	json_error_t je;
	json_t *t = json_loads(r.out, 0, &je);
	cr_assert(json_is_object(t), "%s: %s", je.text, r.out);
	cr_expect_str_eq(json_string_value(json_object_get(t, "schema_version")), "ATIF-v1.4");
	cr_expect_str_eq(json_string_value(json_object_get(t, "session_id")), ids[0]);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(t, "agent"), "name")), "ironclaw");
	json_t *steps = json_object_get(t, "steps");
	cr_expect_eq(json_array_size(steps), 3);
	json_t *agent = json_array_get(steps, 1);
	cr_expect_str_eq(json_string_value(json_object_get(agent, "source")), "agent");
	json_t *call = json_array_get(json_object_get(agent, "tool_calls"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(call, "tool_call_id")), "toolu_1");
	json_t *ap = json_array_get(json_object_get(json_object_get(agent, "extra"), "approvals"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(ap, "decision")), "approved");
	cr_expect_str_eq(json_string_value(json_object_get(ap, "classification")), "red");
	json_decref(t);
	harness_result_free(&r);
}

Test(runs_cli, help_and_errors)
{
	struct run_result r;
	run(&r, "runs", "--help", NULL, NULL, NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 0);
	cr_expect(strstr(r.out, "--format"));
	cr_expect(strstr(r.out, "atif"));
	harness_result_free(&r);
	run(&r, "help", "runs", NULL, NULL, NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 0);
	cr_expect(strstr(r.out, "usage: ironclaw runs"));
	harness_result_free(&r);
	run(&r, "runs", "show", "20990101T000000Z-00000000", "--dir", dir, NULL, NULL);
	cr_expect_eq(r.exit_code, 1);
	cr_expect(strstr(r.err, "no run"), "%s", r.err);
	harness_result_free(&r);
	run(&r, "runs", "show", "../../etc/passwd", "--dir", dir, NULL, NULL);
	cr_expect_eq(r.exit_code, 1);
	cr_expect(strstr(r.err, "not a run id"), "%s", r.err);
	harness_result_free(&r);
	run(&r, "runs", "show", ids[0], "--format", "yaml", "--dir", dir);
	cr_expect_eq(r.exit_code, 2);
	harness_result_free(&r);
	run(&r, "runs", "--bogus", NULL, NULL, NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 2);
	harness_result_free(&r);
	run(&r, "runs", "show", NULL, NULL, NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 2);
	harness_result_free(&r);
	run(&r, "runs", "--dir", "/nonexistent/runs", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.exit_code, 0);
	cr_expect(strstr(r.out, "no runs"));
	harness_result_free(&r);
}
