/* The run log: one file per run, append-only (O_APPEND, 0600, never
 * rewritten), fsynced at run.end, GenAI field names, secrets redacted
 * wherever they hide, base URLs without credentials, the ring's drop count,
 * reading back (damaged lines skipped) and the ATIF export's structure. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/io.h"

static char dir[] = "/tmp/ironclaw-runlog-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char p[600];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.')
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

TestSuite(runlog, .init = setup, .fini = teardown);

static char *slurp(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	cr_assert_eq(io_read_file(path, 1 << 24, &text, &len), 0);
	return text;
}

static void write_sample(struct runlog *rl)
{
	struct runlog_start s = { .task = "add a line to notes.txt", .provider = "openai",
				  .model = "gpt-4o", .base_url = "https://user:sk-SECRETKEY1234@api.example.com/v1?key=sk-SECRETKEY1234",
				  .approval_mode = "ask", .max_steps = 50 };
	cr_assert_eq(runlog_run_start(rl, &s, NULL), 0);
	cr_assert_eq(runlog_vm(rl, "vm-1234", NULL), 0);
	struct runlog_model m = { .step = 1, .model = "gpt-4o", .request_bytes = 1200,
				  .response_bytes = 300, .input_tokens = 100, .output_tokens = 20,
				  .latency_ms = 250.5, .text = "I will edit it", .finish_reason = "tool_calls" };
	cr_assert_eq(runlog_model_request(rl, &m, NULL), 0);
	json_t *args = json_pack("{s:s}", "path", "notes.txt");
	struct runlog_tool t = { .step = 1, .call_id = "call_1", .name = "read_file", .arguments = args,
				 .classification = "green", .class_reason = "in the VM",
				 .decision = "not_needed", .status = "ok", .duration_ms = 12,
				 .result = "hello" };
	cr_assert_eq(runlog_tool_call(rl, &t, NULL), 0);
	struct runlog_tool t2 = { .step = 1, .call_id = "call_2", .name = "memory__create_entities",
				  .arguments = args, .classification = "red", .decision = "denied",
				  .decider = "ask", .decision_reason = "the user said no",
				  .effect_sha256 = "ab12", .status = "denied", .duration_ms = 3000 };
	cr_assert_eq(runlog_tool_call(rl, &t2, NULL), 0);
	json_decref(args);
	struct runlog_model m2 = { .step = 2, .model = "gpt-4o", .input_tokens = 150, .output_tokens = 10,
				   .request_bytes = -1, .response_bytes = -1, .text = "done" };
	cr_assert_eq(runlog_model_request(rl, &m2, NULL), 0);
	json_t *files = json_pack("[{s:s, s:s}]", "path", "notes.txt", "change", "modified +1 -0");
	cr_assert_eq(runlog_diff(rl, "1 file: 1 modified", files, "cd34", NULL), 0);
	json_t *sel = json_pack("[s]", "notes.txt");
	cr_assert_eq(runlog_changes_decision(rl, "approved", "ask", "approved by the user", "cd34", sel, NULL), 0);
	cr_assert_eq(runlog_applied(rl, sel, "ok", NULL), 0);
	json_decref(files);
	json_decref(sel);
	cr_assert_eq(runlog_run_end(rl, "ok", 0, 2, "added the line", NULL), 0);
}

Test(runlog, file_events_and_genai_names)
{
	struct runlog *rl;
	struct err e = { 0 };
	cr_assert_eq(runlog_open(dir, &rl, &e), 0, "%s", e.msg);
	cr_expect(runlog_id_valid(runlog_id(rl)), "%s", runlog_id(rl));
	struct stat st;
	cr_assert_eq(stat(runlog_path(rl), &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600, "the log is private");
	int fl = fcntl(*(int *)rl, F_GETFL); /* fd is the first member */
	cr_expect(fl & O_APPEND, "written with O_APPEND");
	write_sample(rl);
	char *path = strdup(runlog_path(rl));
	char *id = strdup(runlog_id(rl));
	runlog_close(rl);
	char *text = slurp(path);
	int lines = 0;
	for (char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	cr_expect_eq(lines, 10);
	cr_expect(strstr(text, "\"gen_ai.request.model\":\"gpt-4o\""));
	cr_expect(strstr(text, "\"gen_ai.tool.name\":\"read_file\""));
	cr_expect(strstr(text, "\"gen_ai.usage.input_tokens\":100"));
	cr_expect(strstr(text, "\"gen_ai.operation.name\":\"execute_tool\""));
	cr_expect(strstr(text, "\"gen_ai.provider.name\":\"openai\""));
	cr_expect(strstr(text, "\"ironclaw.classification\":\"red\""));
	cr_expect(strstr(text, "\"ironclaw.vm.id\":\"vm-1234\""));
	cr_expect(strstr(text, "\"url.full\":\"https://api.example.com/v1\""), "base_url without key: %s", text);
	cr_expect_null(strstr(text, "SECRETKEY"), "no credentials from the URL");
	cr_expect_null(strstr(text, "request.bytes\":-1"), "unknown numbers are left out");
	json_t *events;
	cr_assert_eq(runlog_load(dir, id, &events, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(json_array_size(events), 10);
	/* seq counts up from 1. */
	for (size_t i = 0; i < json_array_size(events); i++)
		cr_expect_eq(json_integer_value(json_object_get(json_array_get(events, i), "seq")),
			     (json_int_t)i + 1);
	json_decref(events);
	free(text);
	free(path);
	free(id);
}

Test(runlog, append_only_and_synced)
{
	struct runlog *rl;
	cr_assert_eq(runlog_open(dir, &rl, NULL), 0);
	cr_assert_eq(runlog_write(rl, "x.one", NULL, NULL), 0);
	/* Someone truncates and rewrites the file under us: our next line is
	 * appended at the end, never written at our old offset. */
	int fd = open(runlog_path(rl), O_WRONLY | O_TRUNC);
	cr_assert(fd >= 0);
	const char *other = "OTHER LINE IS LONGER THAN OURS BY FAR, FAR, FAR, FAR, FAR, FAR, FAR, FAR\n";
	cr_assert_eq(write(fd, other, strlen(other)), (ssize_t)strlen(other));
	close(fd);
	cr_assert_eq(runlog_write(rl, "x.two", NULL, NULL), 0);
	char *text = slurp(runlog_path(rl));
	cr_expect_eq(strncmp(text, "OTHER LINE", 10), 0, "%s", text);
	cr_expect(strstr(text, "FAR\n{"), "the new line starts right after the old end: %s", text);
	free(text);
	/* A second run never reuses a file. */
	struct runlog *rl2;
	cr_assert_eq(runlog_open(dir, &rl2, NULL), 0);
	cr_expect_str_neq(runlog_id(rl), runlog_id(rl2));
	cr_expect_eq(runlog_sync(rl, NULL), 0);
	runlog_close(rl2);
	runlog_close(rl);
}

Test(runlog, secrets_never_written)
{
	struct runlog *rl;
	cr_assert_eq(runlog_open(dir, &rl, NULL), 0);
	const char *key = "sk-live-0123456789abcdef";
	cr_assert_eq(runlog_add_secret(rl, key), 0);
	cr_expect_eq(runlog_add_secret(rl, "abc"), -EINVAL);
	/* In a plain string, inside a longer string, in a key, deep in arguments. */
	json_t *f = json_pack("{s:s, s:s, s:{s:[{s:s}]}, s:s}", "a", key, "b",
			      "error: 401 for key sk-live-0123456789abcdef, retry",
			      "gen_ai.tool.call.arguments", "deep", "token", key,
			      "sk-live-0123456789abcdef", "as a key");
	cr_assert_eq(runlog_write(rl, "leak.try", f, NULL), 0);
	struct runlog_model m = { .step = 1, .error = "Authorization: Bearer sk-live-0123456789abcdef",
				  .request_bytes = -1, .response_bytes = -1, .input_tokens = -1,
				  .output_tokens = -1 };
	cr_assert_eq(runlog_model_request(rl, &m, NULL), 0);
	char *text = slurp(runlog_path(rl));
	cr_expect_null(strstr(text, "0123456789abcdef"), "%s", text);
	cr_expect(strstr(text, "[REDACTED]"));
	cr_expect(strstr(text, "retry"), "the rest of the string stays");
	for (size_t i = 0; i < runlog_ring_count(rl); i++)
		cr_expect_null(strstr(runlog_ring_get(rl, i), "0123456789abcdef"), "the ring is redacted too");
	free(text);
	runlog_close(rl);
}

Test(runlog, long_strings_cut_and_huge_lines_replaced)
{
	struct runlog *rl;
	cr_assert_eq(runlog_open(dir, &rl, NULL), 0);
	char *big = malloc(100000);
	memset(big, 'x', 99999);
	big[99999] = 0;
	cr_assert_eq(runlog_write(rl, "big.string", json_pack("{s:s}", "s", big), NULL), 0);
	json_t *many = json_object();
	for (int i = 0; i < 40; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(many, k, json_string(big));
	}
	cr_assert_eq(runlog_write(rl, "big.line", many, NULL), 0);
	free(big);
	char *text = slurp(runlog_path(rl));
	cr_expect(strstr(text, "bytes cut]"), "a long string is cut with a note");
	cr_expect(strstr(text, "\"event\":\"log.replaced\""), "a huge line becomes a marker");
	cr_expect(strstr(text, "\"ironclaw.replaced_event\":\"big.line\""));
	char *nl = strchr(text, '\n');
	cr_expect(nl && (size_t)(nl - text) < RUNLOG_TEXT_MAX + 1000);
	free(text);
	runlog_close(rl);
}

Test(runlog, ring_counts_drops)
{
	struct runlog *rl;
	cr_assert_eq(runlog_open(dir, &rl, NULL), 0);
	for (int i = 0; i < RUNLOG_RING_MAX + 37; i++)
		cr_assert_eq(runlog_write(rl, "tick", json_pack("{s:i}", "i", i), NULL), 0);
	cr_expect_eq(runlog_ring_count(rl), RUNLOG_RING_MAX);
	cr_expect_eq(runlog_ring_dropped(rl), 37);
	cr_expect(strstr(runlog_ring_get(rl, 0), "\"i\":37"), "the oldest kept is the 38th: %s",
		  runlog_ring_get(rl, 0));
	cr_expect_null(runlog_ring_get(rl, RUNLOG_RING_MAX));
	runlog_close(rl);
}

Test(runlog, ids_never_become_paths)
{
	cr_expect_not(runlog_id_valid("../etc/passwd"));
	cr_expect_not(runlog_id_valid("a/b"));
	cr_expect_not(runlog_id_valid(""));
	cr_expect_not(runlog_id_valid("a.b"));
	cr_expect(runlog_id_valid("20250101T000000Z-0a1b2c3d"));
	json_t *ev;
	struct err e = { 0 };
	cr_expect_eq(runlog_load(dir, "../x", &ev, NULL, &e), -EINVAL);
	cr_expect_eq(runlog_load(dir, "20250101T000000Z-00000000", &ev, NULL, &e), -ENOENT);
}

Test(runlog, damaged_lines_skipped_and_listed)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/20240101T000000Z-00000001.jsonl", dir);
	const char *text = "{\"event\":\"run.start\",\"time\":\"2024-01-01T00:00:00Z\",\"ironclaw.task\":\"t\\u001b1\"}\n"
			   "not json\n[1]\n{\"event\":\"model.request\"}\n{\"event\":\"run.end\",\"ironclaw.run.status\":\"denied\"}\n";
	cr_assert_eq(io_write_file(p, text, strlen(text), 0600), 0);
	snprintf(p, sizeof(p), "%s/20240102T000000Z-00000002.jsonl", dir);
	const char *cut = "{\"event\":\"run.start\",\"time\":\"2024-01-02T00:00:00Z\"}\n{\"event\":\"run";
	cr_assert_eq(io_write_file(p, cut, strlen(cut), 0600), 0);
	snprintf(p, sizeof(p), "%s/not-a-run.txt", dir);
	cr_assert_eq(io_write_file(p, "x", 1, 0600), 0);
	json_t *ev;
	size_t skipped;
	cr_assert_eq(runlog_load(dir, "20240101T000000Z-00000001", &ev, &skipped, NULL), 0);
	cr_expect_eq(json_array_size(ev), 3);
	cr_expect_eq(skipped, 2);
	json_decref(ev);
	struct runlog_summary *runs;
	size_t n;
	cr_assert_eq(runlog_list(dir, &runs, &n, NULL), 0);
	cr_assert_eq(n, 2);
	cr_expect_str_eq(runs[0].id, "20240101T000000Z-00000001");
	cr_expect_str_eq(runs[0].status, "denied");
	cr_expect_eq(runs[0].steps, 1);
	cr_expect_null(strchr(runs[0].task, 0x1b), "no control characters in a summary");
	cr_expect_str_eq(runs[1].status, "unfinished", "a run cut short by a crash");
	free(runs);
	cr_assert_eq(runlog_list("/nonexistent/runs", &runs, &n, NULL), 0);
	cr_expect_eq(n, 0);
}

/* ATIF-v1.4's fields, per object (RFC 0001); Harbor rejects others. */
static void atif_only(const json_t *o, const char *const *allowed, const char *what)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			ok |= !strcmp(*a, k);
		cr_expect(ok, "%s has a field ATIF does not define: %s", what, k);
	}
}

Test(runlog, atif_structure)
{
	struct runlog *rl;
	cr_assert_eq(runlog_open(dir, &rl, NULL), 0);
	write_sample(rl);
	char *id = strdup(runlog_id(rl));
	runlog_close(rl);
	json_t *ev;
	cr_assert_eq(runlog_load(dir, id, &ev, NULL, NULL), 0);
	json_t *t = runlog_to_atif(ev, "0.1.0");
	json_decref(ev);
	cr_assert_not_null(t);
	static const char *const root[] = { "schema_version", "session_id", "agent", "steps", "notes",
					    "final_metrics", "extra", NULL };
	static const char *const agent[] = { "name", "version", "model_name", "extra", NULL };
	static const char *const step[] = { "step_id", "timestamp", "source", "model_name",
					    "reasoning_effort", "message", "reasoning_content",
					    "tool_calls", "observation", "metrics", "extra", NULL };
	static const char *const call[] = { "tool_call_id", "function_name", "arguments", NULL };
	static const char *const result[] = { "source_call_id", "content", "subagent_trajectory_ref", NULL };
	static const char *const metrics[] = { "prompt_tokens", "completion_tokens", "cached_tokens",
					       "cost_usd", "prompt_token_ids", "completion_token_ids",
					       "logprobs", "extra", NULL };
	static const char *const fm[] = { "total_prompt_tokens", "total_completion_tokens",
					  "total_cached_tokens", "total_cost_usd", "total_steps", "extra", NULL };
	atif_only(t, root, "trajectory");
	cr_expect_str_eq(json_string_value(json_object_get(t, "schema_version")), "ATIF-v1.4");
	cr_expect_str_eq(json_string_value(json_object_get(t, "session_id")), id);
	json_t *ag = json_object_get(t, "agent");
	atif_only(ag, agent, "agent");
	cr_expect(json_is_string(json_object_get(ag, "name")) && json_is_string(json_object_get(ag, "version")));
	json_t *steps = json_object_get(t, "steps");
	cr_assert(json_is_array(steps));
	cr_expect_eq(json_array_size(steps), 4, "user, two agent steps, one system step");
	size_t i;
	json_t *s;
	int approvals = 0;
	json_array_foreach(steps, i, s) {
		atif_only(s, step, "step");
		cr_expect_eq(json_integer_value(json_object_get(s, "step_id")), (json_int_t)i + 1,
			     "step ids are sequential from 1");
		const char *src = json_string_value(json_object_get(s, "source"));
		cr_assert(src && (!strcmp(src, "user") || !strcmp(src, "agent") || !strcmp(src, "system")));
		cr_expect(json_is_string(json_object_get(s, "message")), "message is required");
		if (strcmp(src, "agent")) {
			cr_expect_null(json_object_get(s, "tool_calls"), "only agent steps call tools");
			cr_expect_null(json_object_get(s, "metrics"));
			cr_expect_null(json_object_get(s, "model_name"));
		}
		if (json_object_get(s, "metrics"))
			atif_only(json_object_get(s, "metrics"), metrics, "metrics");
		json_t *calls = json_object_get(s, "tool_calls");
		size_t k;
		json_t *c;
		json_array_foreach(calls, k, c) {
			atif_only(c, call, "tool call");
			cr_expect(json_is_string(json_object_get(c, "tool_call_id")));
			cr_expect(json_is_string(json_object_get(c, "function_name")));
			cr_expect(json_is_object(json_object_get(c, "arguments")));
		}
		json_t *obs = json_object_get(s, "observation");
		json_t *r;
		json_array_foreach(json_object_get(obs, "results"), k, r) {
			atif_only(r, result, "observation result");
			const char *ref = json_string_value(json_object_get(r, "source_call_id"));
			int found = 0;
			size_t m;
			json_array_foreach(calls, m, c)
				found |= ref && !strcmp(ref, json_string_value(json_object_get(c, "tool_call_id")));
			cr_expect(found, "source_call_id %s names a call of this step", ref);
		}
		approvals += (int)json_array_size(json_object_get(json_object_get(s, "extra"), "approvals"));
	}
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(steps, 0), "message")),
			 "add a line to notes.txt");
	json_t *a1 = json_array_get(steps, 1);
	cr_expect_eq(json_array_size(json_object_get(a1, "tool_calls")), 2);
	cr_expect_eq(approvals, 2, "approvals are under extra");
	json_t *denied = json_array_get(json_object_get(json_object_get(a1, "observation"), "results"), 1);
	cr_expect(strstr(json_string_value(json_object_get(denied, "content")), "denied"),
		  "a denied call's observation says so");
	json_t *sys = json_array_get(steps, 3);
	cr_expect(json_object_get(json_object_get(sys, "extra"), "approval"), "the changes decision");
	json_t *f = json_object_get(t, "final_metrics");
	atif_only(f, fm, "final_metrics");
	cr_expect_eq(json_integer_value(json_object_get(f, "total_prompt_tokens")), 250);
	cr_expect_eq(json_integer_value(json_object_get(f, "total_steps")), 4);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(t, "extra"), "status")), "ok");
	json_decref(t);
	free(id);
}
