/* Tasks in Harbor's layout (tests/data/harbor/: instruction.md, tests/test.sh,
 * solution/solve.sh) run through `ironclaw run` end to end: the task's
 * directory is the workspace and its instruction.md, verbatim, is the task.
 *
 * The oracle: a scripted model (tests/peers/aimock/harbor.json) runs
 * solution/solve.sh through run_command, then the verifier in the VM, and
 * answers only when the verifier's exit status reached it as 0 (the fixture is
 * gated on that result: a verifier failing in the VM leaves aimock with no
 * fixture and the run fails). With --approve yes the changes reach the host,
 * where the verifier, untouched, passes as well.
 *
 * The nop: a model that answers at once (harbor-nop.json). Nothing changes,
 * and the verifier fails on the host: the tasks are not solved by doing nothing. */
#include "test_run_util.h"

static struct rt t;

static void teardown(void)
{
	rt_teardown(&t);
}

/* The test's workspace holds exactly the task; returns its instruction. */
static char *harbor_setup(const char *task, const char *fixtures)
{
	rt_setup(&t, NULL);
	char src[600], cmd[1400];
	snprintf(src, sizeof(src), "%s/tests/data/harbor/%s", harness_root(), task);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", t.ws, src, t.ws);
	cr_assert_eq(system(cmd), 0, "copying %s", src);
	rt_mock(&t, fixtures);
	char *instr = rt_readf(t.ws, "instruction.md");
	cr_assert(instr, "%s has no instruction.md", src);
	return instr;
}

/* Runs the task's verifier on the host workspace, from another directory;
 * returns its exit status. The verifier must be the one shipped with the task. */
static int harbor_verify_on_host(const char *task)
{
	char shipped[600];
	snprintf(shipped, sizeof(shipped), "%s/tests/data/harbor/%s/tests/test.sh", harness_root(), task);
	char *want = rt_read(shipped), *have = rt_readf(t.ws, "tests/test.sh");
	cr_assert(want && have, "tests/test.sh missing");
	cr_assert_str_eq(have, want, "the verifier in the workspace was not changed");
	free(want);
	free(have);
	char path[300];
	snprintf(path, sizeof(path), "%s/tests/test.sh", t.ws);
	char *argv[] = { "/bin/sh", path, NULL };
	struct run_result v;
	cr_assert_eq(harness_run(argv, "", 0, 60000, &v), 0);
	cr_assert_not(v.timed_out);
	int code = v.exit_code;
	cr_log_info("host verifier of %s: exit %d, %s", task, code, v.out);
	harness_result_free(&v);
	return code;
}

static void oracle(const char *task)
{
	char *instr = harbor_setup(task, "harbor.json");
	/* As shipped, the task fails its verifier: the oracle has work to do. */
	cr_assert_neq(harbor_verify_on_host(task), 0, "%s passes before anything ran", task);
	struct run_result r = rt_run(&t, "openai", instr, "--approve", "yes", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect(strstr(r.out, "the verifier passes in the sandbox"), "the answer: %s", r.out);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	cr_assert_eq(aimock_journal_count(j, "/v1/chat/completions"), 3, "three model requests:\n%s", r.err);
	const char *solve = rt_tool_result(j, "h1"), *verify = rt_tool_result(j, "h2");
	cr_assert(solve && strstr(solve, "oracle-applied"), "solve.sh in the VM: %s", solve);
	cr_assert(verify && strstr(verify, "verifier: pass") && strstr(verify, "verifier-exit=0"),
		  "the verifier in the VM: %s", verify);
	/* The task went verbatim as the first user message. */
	json_t *msgs = json_object_get(json_object_get(json_array_get(j, 0), "body"), "messages");
	int verbatim = 0;
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m) {
		const char *c = json_string_value(json_object_get(m, "content"));
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role && !strcmp(role, "user") && c && !strcmp(c, instr))
			verbatim = 1;
	}
	cr_expect(verbatim, "instruction.md verbatim as the user message");
	json_decref(j);
	cr_assert_eq(harbor_verify_on_host(task), 0, "the applied result passes on the host; stderr:\n%s", r.err);
	harness_result_free(&r);
	free(instr);
}

static void nop(const char *task)
{
	char *instr = harbor_setup(task, "harbor-nop.json");
	char *before = rt_tree(t.ws);
	struct run_result r = rt_run(&t, "openai", instr, "--approve", "yes", NULL);
	cr_assert_eq(r.exit_code, 0, "a run without changes finishes: exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect_str_eq(r.out, "Nothing to do.\n");
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	cr_assert_eq(aimock_journal_count(j, NULL), 1, "one model request, no tool call");
	json_decref(j);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "nop: the workspace is unchanged");
	free(after);
	free(before);
	cr_assert_neq(harbor_verify_on_host(task), 0, "the nop run fails the verifier");
	harness_result_free(&r);
	free(instr);
}

TestSuite(harbor, .fini = teardown, .timeout = 240);

Test(harbor, fix_sum_oracle_passes) { oracle("fix-sum"); }
Test(harbor, fix_sum_nop_fails) { nop("fix-sum"); }
Test(harbor, write_config_oracle_passes) { oracle("write-config"); }
Test(harbor, write_config_nop_fails) { nop("write-config"); }
Test(harbor, make_greeter_oracle_passes) { oracle("make-greeter"); }
Test(harbor, make_greeter_nop_fails) { nop("make-greeter"); }
