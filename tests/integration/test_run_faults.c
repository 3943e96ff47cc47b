/* `ironclaw run` when the model side misbehaves: a 429 then success, tool-call
 * arguments that are not JSON or (over Anthropic) fail the tool's schema (the
 * model gets a tool error and goes on), an unknown tool (same), a model that
 * never stops (--max-steps: exit 4), an endpoint that is down (exit 1, one
 * clear line) and a reply over the body cap (exit 1). Real binary, real VM,
 * aimock as the model. */
#include "test_run_util.h"

#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static struct rt t;

static void setup(void)
{
	rt_setup(&t, NULL);
}

static void teardown(void)
{
	rt_teardown(&t);
}

TestSuite(run_faults, .init = setup, .fini = teardown, .timeout = 240);

Test(run_faults, rate_limited_then_success)
{
	rt_mock(&t, NULL);
	struct run_result r = rt_run(&t, "openai", "rate limited: answer after a 429", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_assert_str_eq(r.out, "Answered after the 429.\n");
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	cr_assert_eq(aimock_journal_count(j, "/v1/chat/completions"), 2, "one 429, one retry");
	json_decref(j);
	harness_result_free(&r);
}

/* Bad JSON in a tool call: the model is told, calls again, and the run goes on
 * (the second write lands in the VM; deny keeps it off the host). OpenAI only:
 * aimock turns bad arguments into {} for Anthropic, whose tool_use input is an object. */
Test(run_faults, malformed_tool_arguments_go_back_as_a_tool_error)
{
	rt_mock(&t, NULL);
	struct run_result r = rt_run(&t, "openai", "broken json: write a file", "--approve", "deny", NULL);
	cr_assert_str_eq(r.out, "Recovered from the bad JSON.\n", "stderr:\n%s", r.err);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	const char *e1 = rt_tool_result(j, "c1"), *r2 = rt_tool_result(j, "c2");
	cr_assert(e1 && strstr(e1, "not a JSON object"), "the model got a tool error: %s", e1);
	cr_assert(r2, "the corrected call ran and its result reached the model");
	json_decref(j);
	cr_expect(strstr(r.err, "fixed.txt"), "the corrected write is on the card: %s", r.err);
	cr_expect_eq(r.exit_code, 3, "changes denied: exit %d", r.exit_code);
	harness_result_free(&r);
}

/* The same broken arguments over Anthropic, streamed and whole: aimock sends
 * them as an empty tool_use input, which fails write_file's schema, and that
 * tool error (not a crash, not a silent drop) is what the model gets back. */
Test(run_faults, anthropic_input_failing_the_schema_goes_back_as_a_tool_error)
{
	rt_mock(&t, NULL);
	for (int whole = 0; whole < 2; whole++) {
		struct run_result r = whole
			? rt_run(&t, "anthropic", "broken json over anthropic: write a file",
				 "--approve", "deny", "--no-stream", NULL)
			: rt_run(&t, "anthropic", "broken json over anthropic: write a file",
				 "--approve", "deny", NULL);
		cr_assert_str_eq(r.out, "Recovered from the empty input.\n", "whole %d; stderr:\n%s",
				 whole, r.err);
		json_t *j = aimock_journal(&t.mock, NULL, NULL);
		cr_assert(j, "%s", t.mock.why);
		const char *e1 = rt_tool_result(j, "c1"), *r2 = rt_tool_result(j, "c2");
		cr_assert(e1 && strstr(e1, "missing required argument 'path'"),
			  "the model got a tool error: %s", e1);
		cr_assert(r2, "the corrected call ran and its result reached the model");
		json_t *last = json_array_get(j, json_array_size(j) - 1);
		cr_assert(strstr(json_string_value(json_object_get(last, "path")), "/v1/messages"),
			  "the Anthropic endpoint was used");
		json_decref(j);
		cr_expect_eq(r.exit_code, 3, "changes denied: exit %d", r.exit_code);
		harness_result_free(&r);
	}
}

Test(run_faults, unknown_tool_goes_back_as_a_tool_error)
{
	rt_mock(&t, NULL);
	struct run_result r = rt_run(&t, "openai", "unknown tool: delete everything", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_assert_str_eq(r.out, "That tool does not exist.\n");
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	const char *e1 = rt_tool_result(j, "c1");
	cr_assert(e1 && strstr(e1, "unknown tool 'delete_everything'"), "%s", e1);
	json_decref(j);
	harness_result_free(&r);
}

Test(run_faults, max_steps_stops_the_run_with_4)
{
	rt_mock(&t, NULL);
	char *before = rt_tree(t.ws);
	struct run_result r = rt_run(&t, "openai", "loop forever", "--max-steps", "3", NULL);
	cr_assert_eq(r.exit_code, 4, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect_eq(r.out_len, 0, "no answer on stdout: %s", r.out);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert_eq(aimock_journal_count(j, NULL), 3, "exactly 3 model turns");
	json_decref(j);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "a stopped run applies nothing");
	free(after);
	free(before);
	harness_result_free(&r);
}

/* Nothing listens: exit 1 after the retries, one clear line, no VM left. */
Test(run_faults, endpoint_down_exits_1_with_one_line)
{
	/* A port that was free a moment ago: bind, read it, close. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
	close(s);
	snprintf(t.mock.url, sizeof(t.mock.url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	int vms = harness_count_vm_dirs();
	struct run_result r = rt_run(&t, "openai", "anyone there?", NULL);
	cr_assert_eq(r.exit_code, 1, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect_eq(r.out_len, 0);
	/* The last line says what failed, where. */
	const char *last = r.err + r.err_len;
	while (last > r.err && last[-1] == '\n')
		last--;
	while (last > r.err && last[-1] != '\n')
		last--;
	cr_expect(strstr(last, "127.0.0.1") && (strstr(last, "connect") || strstr(last, "Connect")),
		  "one clear line: %s", last);
	cr_expect_null(strstr(r.err, t.key), "no key in the error");
	/* This run's own VM, when stderr named it (other VMs may come and go on
	 * the machine meanwhile); else no more VM directories than before. */
	const char *id = strstr(r.err, "vm-");
	if (id && strspn(id + 3, "abcdefghijklmnopqrstuvwxyz0123456789") >= 8) {
		char dir[96];
		snprintf(dir, sizeof(dir), "/run/ironclaw/%.*s", (int)(3 + strspn(id + 3,
			 "abcdefghijklmnopqrstuvwxyz0123456789")), id);
		struct stat st;
		cr_expect_neq(lstat(dir, &st), 0, "the VM %s is gone", dir);
	} else {
		cr_expect_leq(harness_count_vm_dirs(), vms, "the VM is gone");
	}
	harness_result_free(&r);
}

/* A reply bigger than the client's 8 MiB body cap: a clear failure, exit 1. */
Test(run_faults, reply_over_the_cap_exits_1)
{
	char fx[256];
	snprintf(fx, sizeof(fx), "%s/huge.json", t.dir);
	FILE *f = fopen(fx, "w");
	cr_assert(f);
	fputs("{\"fixtures\":[{\"match\":{\"userMessage\":\"huge reply\"},\"response\":{\"content\":\"", f);
	for (int i = 0; i < 9 * 1024 * 16; i++)
		fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", f);
	fputs("\"}}]}\n", f);
	fclose(f);
	rt_mock(&t, fx);
	struct run_result r = rt_run(&t, "openai", "huge reply", "--no-stream", NULL);
	cr_assert_eq(r.exit_code, 1, "exit %d; stderr:\n%.2000s", r.exit_code, r.err);
	cr_expect_eq(r.out_len, 0, "no part of the reply on stdout");
	cr_expect_lt(r.err_len, 16384, "the error does not echo the reply");
	cr_expect(strstr(r.err, "MiB") || strstr(r.err, "large") || strstr(r.err, "cap"), "%s", r.err);
	harness_result_free(&r);
}
