/* `ironclaw run` end to end: the real binary, a real VM per run, aimock as the
 * model (tests/peers/aimock/run-tests.json). The multi-step fixtures are gated
 * on toolCallId + toolResultContains, so a tool result that did not reach the
 * model makes aimock answer with an error and the run fail; the journal is
 * read as well. Then the approval cliff on the workspace changes: approve
 * (the file changes exactly as the card showed), deny (the tree is unchanged
 * byte for byte), a host edit during the run (a conflict, not overwritten),
 * undo, and --json. */
#include "test_run_util.h"

#include <sys/wait.h>

#define MULTI "multi-step: add a line to notes"

static struct rt t;

static void setup(void)
{
	rt_setup(&t, NULL);
	rt_mock(&t, NULL);
}

static void teardown(void)
{
	rt_teardown(&t);
}

TestSuite(run, .init = setup, .fini = teardown, .timeout = 240);

/* The four steps ran, every result reached the model, the answer is stdout. */
static void multi_step(const char *provider, int stream)
{
	char *before = rt_tree(t.ws);
	struct run_result r = stream ? rt_run(&t, provider, MULTI, "--approve", "deny", NULL)
				     : rt_run(&t, provider, MULTI, "--approve", "deny", "--no-stream", NULL);
	/* --approve deny: the run itself succeeds, the edit stays in the VM. */
	cr_assert_eq(r.exit_code, 3, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect_str_eq(r.out, "Added the line 'world' to notes.txt.\n", "stdout is the answer: '%s'", r.out);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	const char *path = !strcmp(provider, "anthropic") ? "/v1/messages" : "/v1/chat/completions";
	cr_assert_eq(aimock_journal_count(j, path), 5, "five model requests:\n%s", r.err);
	cr_assert_eq(aimock_journal_count(j, NULL), 5);
	json_t *body = json_object_get(json_array_get(j, 0), "body");
	cr_expect_eq(json_is_true(json_object_get(body, "stream")), stream, "stream flag as asked");
	const char *r1 = rt_tool_result(j, "c1"), *r2 = rt_tool_result(j, "c2");
	const char *r3 = rt_tool_result(j, "c3"), *r4 = rt_tool_result(j, "c4");
	cr_assert(r1 && strstr(r1, "hello") && strstr(r1, "step-one-ok"), "run_command result: %s", r1);
	cr_assert(r2 && strstr(r2, "hello"), "read_file result: %s", r2);
	cr_assert(r3 && strstr(r3, "replaced 1 occurrence"), "edit_file result: %s", r3);
	cr_assert(r4 && strstr(r4, "exit code 0") && strstr(r4, "1"), "grep result: %s", r4);
	/* The task went verbatim as the first user message. */
	char *dump = json_dumps(json_object_get(json_array_get(j, 0), "body"), 0);
	cr_expect(strstr(dump, "\"" MULTI "\""), "task verbatim: %.400s", dump);
	free(dump);
	json_decref(j);
	/* Progress went to stderr, one line per step. */
	cr_expect(strstr(r.err, "[1] run_command"), "%s", r.err);
	cr_expect(strstr(r.err, "[3] edit_file notes.txt"), "%s", r.err);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "denied: the workspace is unchanged");
	free(before);
	free(after);
	harness_result_free(&r);
}

Test(run, openai_stream) { multi_step("openai", 1); }
Test(run, openai_no_stream) { multi_step("openai", 0); }
Test(run, anthropic_stream) { multi_step("anthropic", 1); }
Test(run, anthropic_no_stream) { multi_step("anthropic", 0); }

/* --approve yes: the file changes exactly as the card showed, and only it;
 * undo puts it back. */
Test(run, approve_applies_what_the_card_showed_then_undo)
{
	char *before = rt_tree(t.ws);
	struct run_result r = rt_run(&t, "openai", MULTI, "--approve", "yes", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect(strstr(r.err, "APPROVED WITHOUT ASKING"), "yes says so loudly: %s", r.err);
	/* The card: one modified file, the unified diff of exactly that change. */
	cr_assert(strstr(r.err, "1 file changed, +1 -0"), "%s", r.err);
	cr_assert(strstr(r.err, "M notes.txt"), "%s", r.err);
	cr_assert(strstr(r.err, "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1,2 @@\n hello\n+world\n"), "%s", r.err);
	char *now = rt_readf(t.ws, "notes.txt");
	cr_assert_str_eq(now, "hello\nworld\n");
	free(now);
	/* Nothing else moved: same tree once notes.txt is put back by hand. */
	char id[128];
	rt_run_id(&t, id, sizeof(id));
	cr_expect(strstr(r.err, id), "the undo hint names the run: %s", r.err);
	char *logs = rt_runlogs(&t);
	cr_expect(strstr(logs, "approved"), "the decision is in the run log");
	free(logs);
	char *undo[] = { (char *)harness_ironclaw(), "undo", id, NULL };
	struct run_result u;
	cr_assert_eq(harness_run(undo, "", 0, 60000, &u), 0);
	cr_assert_eq(u.exit_code, 0, "undo: %s", u.err);
	now = rt_readf(t.ws, "notes.txt");
	cr_assert_str_eq(now, "hello\n", "undo restores");
	free(now);
	char *after = rt_tree(t.ws);
	/* Content and modes back; mtimes of notes.txt and the root differ. */
	char *a = strstr(after, "notes.txt mode="), *b = strstr(before, "notes.txt mode=");
	cr_assert(a && b);
	cr_expect_eq(strncmp(a, b, strstr(b, " mtime") - b), 0);
	free(after);
	free(before);
	harness_result_free(&u);
	harness_result_free(&r);
}

/* Deny, and the default without a terminal (deny): exit 3, the tree byte for
 * byte as it was. setsid: no controlling terminal even when the tests run in one. */
Test(run, default_without_a_terminal_denies)
{
	char *before = rt_tree(t.ws);
	char base[160];
	snprintf(base, sizeof(base), "%s/v1", t.mock.url);
	char *argv[] = { "/usr/bin/setsid", "-w", (char *)harness_ironclaw(), "run", "--workspace", t.ws,
			 "--base-url", base, "--model", "m", MULTI, NULL };
	struct run_result r;
	cr_assert_eq(harness_run(argv, "", 0, RT_RUN_MS, &r), 0);
	cr_assert_eq(r.exit_code, 3, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect(strstr(r.err, "denied"), "%s", r.err);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "denied: the workspace is unchanged byte for byte");
	free(after);
	free(before);
	harness_result_free(&r);
}

/* A host file edited while the run works is a conflict: never overwritten. */
Test(run, host_edit_during_the_run_is_not_overwritten)
{
	pid_t pid = rt_spawn(&t, "openai", "conflict: append slowly", "--approve", "yes", NULL);
	/* The event: copy-in is done (the hashes are taken) and the command runs. */
	char errp[160];
	snprintf(errp, sizeof(errp), "%s/err", t.dir);
	double until = harness_now_ms() + 120000;
	char *err = NULL;
	while (harness_now_ms() < until) {
		free(err);
		err = rt_read(errp);
		if (err && strstr(err, "workspace copied in"))
			break;
		usleep(20000);
	}
	cr_assert(err && strstr(err, "workspace copied in"), "%s", err);
	rt_writef(t.ws, "notes.txt", "hello\nedited by the user\n", 0644);
	int st = harness_wait(pid, RT_RUN_MS, NULL);
	cr_assert_geq(st, 0, "the run did not end");
	free(err);
	err = rt_read(errp);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 3, "a conflict: nothing reached the files, exit 3: %d\n%s", st, err);
	cr_expect(strstr(err, "conflict"), "the card says so: %s", err);
	char *now = rt_readf(t.ws, "notes.txt");
	cr_assert_str_eq(now, "hello\nedited by the user\n", "the user's edit survives");
	free(now);
	free(err);
}

/* --json: one JSON object on stdout, nothing else there. */
Test(run, json_prints_one_object)
{
	struct run_result r = rt_run(&t, "openai", MULTI, "--approve", "yes", "--json", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	json_error_t je;
	json_t *o = json_loads(r.out, 0, &je);
	cr_assert(json_is_object(o), "stdout is one JSON object: %s (%s)", r.out, je.text);
	cr_expect_str_eq(json_string_value(json_object_get(o, "answer")), "Added the line 'world' to notes.txt.");
	cr_expect_eq(json_integer_value(json_object_get(o, "steps")), 5);
	cr_expect_str_eq(json_string_value(json_object_get(o, "decision")), "approved");
	cr_expect(json_string_value(json_object_get(o, "run_id")), "run_id");
	cr_expect(json_string_value(json_object_get(o, "status")), "status");
	char *ch = json_dumps(json_object_get(o, "changes"), 0);
	cr_expect(ch && strstr(ch, "notes.txt"), "changes: %s", ch);
	free(ch);
	json_decref(o);
	harness_result_free(&r);
}
