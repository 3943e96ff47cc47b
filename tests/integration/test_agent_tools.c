/* The in-VM tools (src/agent/tools.c) against a real guest: each tool's result
 * text, the schema checks, and the confinement to /workspace (a symlink that
 * points out, `..`, absolute paths), run through agent_vm_tool_call exactly as
 * the agent loop calls them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sandbox.h"
#include "agent/tools.h"
#include "integration/lib/vmrun.h"

struct tt {
	uv_loop_t loop;
	struct agent_sandbox *sb;
	int ready;
	char why[1024];
	/* the call in flight */
	int done;
	struct agent_tool_result res;
	char text[70000];
};

static struct tt T;

static void tt_ready(struct agent_sandbox *sb, void *ctx)
{
	(void)sb;
	((struct tt *)ctx)->ready = 1;
	uv_stop(&((struct tt *)ctx)->loop);
}

static void tt_failed(struct agent_sandbox *sb, const struct err *e, void *ctx)
{
	struct tt *t = ctx;
	snprintf(t->why, sizeof(t->why), "%s", e->msg);
	agent_sandbox_destroy(sb);
}

static void tt_destroyed(struct agent_sandbox *sb, void *ctx)
{
	(void)sb;
	((struct tt *)ctx)->sb = NULL;
}

static void tt_mkdir_done(void *ctx, struct vmcall_result *r)
{
	cr_assert_eq(r->exit_code, 0, "%s", r->e.msg);
	((struct tt *)ctx)->done = 1;
}

/* The in-process sandbox, as `ironclaw run --no-daemon` makes it. */
static void tt_setup(void)
{
	static const struct agent_sandbox_events ev = { .ready = tt_ready, .failed = tt_failed,
							.destroyed = tt_destroyed };
	vmrun_use_checkout_image();
	memset(&T, 0, sizeof(T));
	uv_loop_init(&T.loop);
	static struct vm_options o;
	struct err e = { 0 };
	cr_assert_eq(agent_sandbox_vm_new(&T.loop, &o, &ev, &T, &T.sb, &e), 0, "%s", e.msg);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	cr_assert(T.ready, "the VM did not come up: %s", T.why);
	/* The agent makes /workspace before the first tool runs; so does this. */
	static char *argv[] = { "mkdir", "-p", "/workspace", NULL };
	struct vmcall_spec spec = { .argv = argv, .timeout_ms = 30000, .out_cap = 4096, .err_cap = 4096 };
	T.done = 0;
	cr_assert_eq(agent_sandbox_exec(T.sb, &spec, tt_mkdir_done, &T, &e), 0, "%s", e.msg);
	while (!T.done)
		uv_run(&T.loop, UV_RUN_ONCE);
}

static void tt_teardown(void)
{
	if (T.sb)
		agent_sandbox_destroy(T.sb);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	uv_loop_close(&T.loop);
}

static void tt_done(void *ctx, struct agent_tool_result *r)
{
	struct tt *t = ctx;
	t->done = 1;
	t->res = *r;
	snprintf(t->text, sizeof(t->text), "%s", r->text ? r->text : "");
	t->res.text = t->text;
	uv_stop(&t->loop);
}

/* Runs one call (args as JSON text) and returns its result text. */
static const char *call(const char *tool, const char *args_json)
{
	json_t *args = json_loads(args_json, 0, NULL);
	cr_assert(args, "bad test JSON: %s", args_json);
	T.done = 0;
	agent_vm_tool_call(T.sb, tool, args, 0, tt_done, &T);
	while (!T.done)
		uv_run(&T.loop, UV_RUN_ONCE);
	json_decref(args);
	return T.text;
}

TestSuite(agent_tools, .init = tt_setup, .fini = tt_teardown, .timeout = 120);

Test(agent_tools, the_tools_do_what_their_names_say)
{
	call("run_command", "{\"command\":\"mkdir -p /workspace && cd /workspace && printf 'a\\\\nb\\\\nc\\\\n' > f.txt\"}");
	cr_assert_not(T.res.is_error, "%s", T.text);
	const char *t = call("read_file", "{\"path\":\"f.txt\"}");
	cr_assert_not(T.res.is_error, "%s", t);
	cr_assert(strstr(t, "     1\ta\n     2\tb\n     3\tc\n"), "read_file: %s", t);
	t = call("read_file", "{\"path\":\"f.txt\",\"offset\":2,\"limit\":1}");
	cr_assert(strstr(t, "     2\tb\n") && !strstr(t, "\ta\n") && strstr(t, "offset 3"), "slice: %s", t);
	t = call("write_file", "{\"path\":\"sub/dir/new.txt\",\"content\":\"x y z\"}");
	cr_assert_not(T.res.is_error, "%s", t);
	t = call("run_command", "{\"command\":\"cat sub/dir/new.txt; echo; echo err >&2; exit 7\"}");
	cr_assert(strstr(t, "exit code 7") && strstr(t, "<stdout>\nx y z\n</stdout>") && strstr(t, "<stderr>\nerr\n"),
		  "run_command: %s", t);
	cr_assert_eq(T.res.exit_code, 7);
	t = call("edit_file", "{\"path\":\"f.txt\",\"old_string\":\"b\\n\",\"new_string\":\"B\\nB2\\n\"}");
	cr_assert_not(T.res.is_error, "%s", t);
	t = call("run_command", "{\"command\":\"cat f.txt\"}");
	cr_assert(strstr(t, "a\nB\nB2\nc\n"), "after edit: %s", t);
	t = call("list_dir", "{\"path\":\".\"}");
	cr_assert(strstr(t, "f.txt") && strstr(t, "sub"), "list_dir: %s", t);
}

Test(agent_tools, edit_needs_an_exact_unique_match)
{
	call("write_file", "{\"path\":\"g.txt\",\"content\":\"x\\nx\\n\"}");
	const char *t = call("edit_file", "{\"path\":\"g.txt\",\"old_string\":\"x\",\"new_string\":\"y\"}");
	cr_assert(T.res.is_error && strstr(t, "occurs 2 times"), "%s", t);
	t = call("edit_file", "{\"path\":\"g.txt\",\"old_string\":\"zz\",\"new_string\":\"y\"}");
	cr_assert(T.res.is_error && strstr(t, "not found"), "%s", t);
	t = call("edit_file", "{\"path\":\"g.txt\",\"old_string\":\"x\",\"new_string\":\"y\",\"replace_all\":true}");
	cr_assert(!T.res.is_error && strstr(t, "2 occurrences"), "%s", t);
}

Test(agent_tools, schema_violations_are_tool_errors)
{
	const char *t = call("read_file", "{}");
	cr_assert(T.res.is_error && strstr(t, "missing required argument 'path'"), "%s", t);
	t = call("run_command", "{\"command\":5}");
	cr_assert(T.res.is_error && strstr(t, "must be a string"), "%s", t);
	t = call("list_dir", "{\"path\":\".\",\"extra\":1}");
	cr_assert(T.res.is_error && strstr(t, "unknown argument"), "%s", t);
	t = call("run_command", "{\"command\":\"true\",\"timeout_s\":601}");
	cr_assert(T.res.is_error, "%s", t);
	t = call("no_such_tool", "{}");
	cr_assert(T.res.is_error && strstr(t, "unknown tool"), "%s", t);
}

Test(agent_tools, paths_stay_inside_the_workspace)
{
	const char *t = call("read_file", "{\"path\":\"/etc/passwd\"}");
	cr_assert(T.res.is_error && strstr(t, "absolute"), "%s", t);
	t = call("read_file", "{\"path\":\"a/../../etc/passwd\"}");
	cr_assert(T.res.is_error && strstr(t, ".."), "%s", t);
	/* Links made inside the VM that point out of /workspace. */
	call("run_command", "{\"command\":\"mkdir -p /workspace && cd /workspace && ln -sf /etc etc-link && ln -sf /etc/hostname host-link\"}");
	t = call("read_file", "{\"path\":\"host-link\"}");
	cr_assert(T.res.is_error && strstr(t, "outside /workspace"), "through a file link: %s", t);
	t = call("write_file", "{\"path\":\"etc-link/pwned\",\"content\":\"x\"}");
	cr_assert(T.res.is_error && strstr(t, "outside /workspace"), "through a dir link: %s", t);
	t = call("run_command", "{\"command\":\"test -e /etc/pwned && echo WRITTEN || echo absent\"}");
	cr_assert(strstr(t, "absent"), "the write went through the link: %s", t);
	t = call("list_dir", "{\"path\":\"etc-link\"}");
	cr_assert(T.res.is_error && strstr(t, "outside /workspace"), "%s", t);
}

Test(agent_tools, binary_and_long_output)
{
	call("run_command", "{\"command\":\"mkdir -p /workspace && printf 'a\\\\000b' > /workspace/bin.dat\"}");
	const char *t = call("read_file", "{\"path\":\"bin.dat\"}");
	cr_assert(!T.res.is_error && strstr(t, "binary file (3 bytes)"), "%s", t);
	t = call("run_command", "{\"command\":\"seq 1 100000\"}");
	cr_assert(strstr(t, "bytes cut") && strstr(t, "\n1\n2\n") && strstr(t, "100000\n</stdout>"),
		  "head and tail with a note: %.300s", t);
	cr_assert_lt(strlen(t), AGENT_OUTPUT_CAP * 2 + 1024);
}

Test(agent_tools, a_missing_workspace_is_the_models_error_not_the_sandboxs)
{
	call("run_command", "{\"command\":\"rm -rf /workspace\"}");
	const char *t = call("run_command", "{\"command\":\"true\"}");
	cr_assert(T.res.is_error && !T.res.fatal && strstr(t, "could not start"), "%s", t);
}

Test(agent_tools, a_command_past_its_timeout_is_killed)
{
	const char *t = call("run_command", "{\"command\":\"sleep 30\",\"timeout_s\":1}");
	cr_assert(strstr(t, "killed after the 1 s timeout"), "%s", t);
}
