/* The approval cliff without a terminal: the one classifier's table (in-VM
 * tools, read-only MCP tools by name AND annotations, unknown tools, policy
 * globs overriding hostile annotations both ways), the config section, the
 * card's effect hash and rendering, the deny / yes / remembered deciders on a
 * real loop, and the approver's argv split. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "approval/approval.h"

static struct approval_policy pol;

static void setup(void)
{
	cr_assert_eq(approval_policy_init(&pol), 0);
}

static void teardown(void)
{
	approval_policy_free(&pol);
}

TestSuite(approval_classify, .init = setup, .fini = teardown);

/* A tools/list entry as a server would send it. */
static json_t *tool(const char *name, const char *annotations)
{
	json_t *t = json_pack("{s:s}", "name", name);
	if (annotations)
		json_object_set_new(t, "annotations", json_loads(annotations, 0, NULL));
	return t;
}

static enum approval_class cls(const char *name, json_t *desc)
{
	struct approval_class_result r;
	approval_classify_tool(&pol, name, desc, &r);
	cr_assert(r.reason[0], "every classification has a reason (%s)", name);
	cr_assert_null(strchr(r.reason, '\n'), "the reason is one line");
	json_decref(desc);
	return r.cls;
}

#define RO "{\"readOnlyHint\": true, \"destructiveHint\": false}"

Test(approval_classify, table)
{
	struct { const char *name; const char *tool; const char *ann; enum approval_class want; } t[] = {
		/* In-VM tools: green, no listing needed. */
		{ "run_command", NULL, NULL, APPROVAL_GREEN },
		{ "read_file", NULL, NULL, APPROVAL_GREEN },
		{ "write_file", NULL, NULL, APPROVAL_GREEN },
		{ "edit_file", NULL, NULL, APPROVAL_GREEN },
		{ "list_dir", NULL, NULL, APPROVAL_GREEN },
		/* Read-only by name and annotations. */
		{ "memory__read_graph", "read_graph", RO, APPROVAL_GREEN },
		{ "memory__search_nodes", "search_nodes", RO, APPROVAL_GREEN },
		{ "fs__readFile", "readFile", "{\"readOnlyHint\": true}", APPROVAL_GREEN },
		{ "fs__list-directory", "list-directory", RO, APPROVAL_GREEN },
		/* Name says read-only, annotations missing or say otherwise: red. */
		{ "memory__read_graph", "read_graph", NULL, APPROVAL_RED },
		{ "memory__read_graph", "read_graph", "{\"readOnlyHint\": false}", APPROVAL_RED },
		{ "memory__read_graph", "read_graph", "{\"readOnlyHint\": \"true\"}", APPROVAL_RED },
		{ "memory__read_graph", "read_graph", "{\"readOnlyHint\": true, \"destructiveHint\": true}", APPROVAL_RED },
		/* Annotations say read-only, the name does not: red. */
		{ "memory__create_entities", "create_entities", RO, APPROVAL_RED },
		{ "memory__delete_entities", "delete_entities", RO, APPROVAL_RED },
		{ "x__get_or_create", "get_or_create", RO, APPROVAL_RED },
		{ "x__readAndDelete", "readAndDelete", RO, APPROVAL_RED },
		{ "x__reader", "reader", RO, APPROVAL_RED },
		/* Unknown: not in the VM, not listed, or the listing is of another tool. */
		{ "rm_rf", NULL, NULL, APPROVAL_RED },
		{ "memory__read_graph", NULL, NULL, APPROVAL_RED },
		{ "memory__read_graph", "read_other", RO, APPROVAL_RED },
		{ "__read_graph", "read_graph", RO, APPROVAL_RED },
		{ "memory__", "", RO, APPROVAL_RED },
		{ "", NULL, NULL, APPROVAL_RED },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_eq(cls(t[i].name, t[i].tool ? tool(t[i].tool, t[i].ann) : NULL), t[i].want,
			     "row %zu: %s (%s)", i, t[i].name, t[i].ann ? t[i].ann : "no annotations");
	cr_expect_eq(cls(NULL, NULL), APPROVAL_RED);
}

Test(approval_classify, policy_overrides_hostile_annotations_both_ways)
{
	json_t *sec = json_loads("{\"red\": [\"evil__*\", \"run_command\"], "
				 "\"green\": [\"memory__create_entities\", \"evil__read_all\"]}", 0, NULL);
	struct err e = { 0 };
	cr_assert_eq(approval_policy_from_json(&pol, sec, &e), 0, "%s", e.msg);
	json_decref(sec);
	/* A server lying that its tool is read-only: the user's red glob wins. */
	cr_expect_eq(cls("evil__read_secrets", tool("read_secrets", RO)), APPROVAL_RED);
	/* Red beats green for the same name. */
	cr_expect_eq(cls("evil__read_all", tool("read_all", RO)), APPROVAL_RED);
	/* A server marking a harmless tool destructive: the user's green glob wins. */
	cr_expect_eq(cls("memory__create_entities",
			 tool("create_entities", "{\"readOnlyHint\": false, \"destructiveHint\": true}")),
		     APPROVAL_GREEN);
	/* Policy may make an in-VM tool red. */
	cr_expect_eq(cls("run_command", NULL), APPROVAL_RED);
	/* A green glob does not make an unknown tool green. */
	cr_expect_eq(cls("memory__create_entities", NULL), APPROVAL_RED);
	struct approval_class_result r;
	json_t *d = tool("read_secrets", RO);
	approval_classify_tool(&pol, "evil__read_secrets", d, &r);
	json_decref(d);
	cr_expect(strstr(r.reason, "evil__*"), "the reason names the glob: %s", r.reason);
}

Test(approval_classify, changes_always_red)
{
	json_t *sec = json_loads("{\"green\": [\"*\"]}", 0, NULL);
	cr_assert_eq(approval_policy_from_json(&pol, sec, NULL), 0);
	json_decref(sec);
	struct approval_class_result r;
	approval_classify_changes(&r);
	cr_expect_eq(r.cls, APPROVAL_RED);
	cr_expect(strlen(r.reason) > 0);
}

Test(approval_classify, reason_cannot_carry_terminal_controls)
{
	struct approval_class_result r;
	json_t *d = tool("\x1b[2Jdelete", RO);
	approval_classify_tool(&pol, "x__\x1b[2Jdelete", d, &r);
	json_decref(d);
	cr_expect_eq(r.cls, APPROVAL_RED);
	cr_expect_null(strchr(r.reason, 0x1b), "%s", r.reason);
}

Test(approval_classify, config_is_strict)
{
	struct err e = { 0 };
	json_t *bad = json_loads("{\"gren\": [\"a\"]}", 0, NULL);
	cr_expect_eq(approval_policy_from_json(&pol, bad, &e), -EINVAL);
	cr_expect(strstr(e.msg, "gren"), "%s", e.msg);
	json_decref(bad);
	bad = json_loads("{\"red\": \"a\"}", 0, NULL);
	cr_expect_eq(approval_policy_from_json(&pol, bad, &e), -EINVAL);
	json_decref(bad);
	bad = json_loads("{\"red\": [1]}", 0, NULL);
	cr_expect_eq(approval_policy_from_json(&pol, bad, &e), -EINVAL);
	json_decref(bad);
	bad = json_loads("{\"promptTimeoutS\": 0}", 0, NULL);
	cr_expect_eq(approval_policy_from_json(&pol, bad, &e), -EINVAL);
	json_decref(bad);
}

Test(approval_classify, config_file)
{
	char path[] = "/tmp/ironclaw-approval-cfg-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "{\"mcpServers\": {}, \"approval\": {\"green\": [\"memory__create_*\"], "
			   "\"readOnlyWords\": [\"peek\"], \"promptTimeoutS\": 7}}";
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct err e = { 0 };
	cr_assert_eq(approval_policy_load(&pol, path, &e), 0, "%s", e.msg);
	unlink(path);
	cr_expect_eq(pol.timeout_ms, 7000);
	cr_expect_eq(cls("memory__create_entities", tool("create_entities", NULL)), APPROVAL_GREEN);
	/* readOnlyWords replaced the defaults. */
	cr_expect_eq(cls("m__peek_at", tool("peek_at", RO)), APPROVAL_GREEN);
	cr_expect_eq(cls("m__read_graph", tool("read_graph", RO)), APPROVAL_RED);
	/* No file: defaults, no error. */
	cr_expect_eq(approval_policy_load(&pol, "/nonexistent/ironclaw.json", &e), 0);
}

/* ---- cards ---- */

Test(approval_card, tool_hash_is_canonical_and_tied_to_the_effect)
{
	json_t *a1 = json_loads("{\"b\": 1, \"a\": [\"x\", {\"d\": 2, \"c\": 3}]}", 0, NULL);
	json_t *a2 = json_loads("{\"a\": [\"x\", {\"c\": 3, \"d\": 2}], \"b\": 1}", 0, NULL);
	json_t *a3 = json_loads("{\"a\": [\"x\", {\"c\": 3, \"d\": 2}], \"b\": 2}", 0, NULL);
	struct approval_card c1 = { .kind = APPROVAL_KIND_TOOL, .tool = "m__t", .arguments = a1 };
	struct approval_card c2 = c1, c3 = c1, c4 = c1;
	c2.arguments = a2;
	c3.arguments = a3;
	c4.tool = "m__u";
	cr_assert_eq(approval_card_seal(&c1), 0);
	cr_assert_eq(approval_card_seal(&c2), 0);
	cr_assert_eq(approval_card_seal(&c3), 0);
	cr_assert_eq(approval_card_seal(&c4), 0);
	cr_expect_str_eq(c1.effect_sha256, c2.effect_sha256, "key order does not change the effect");
	cr_expect_str_neq(c1.effect_sha256, c3.effect_sha256, "another argument is another effect");
	cr_expect_str_neq(c1.effect_sha256, c4.effect_sha256, "another tool is another effect");
	/* The hash is SHA-256 of exactly the canonical text. */
	const char *canon = "{\"arguments\":{\"a\":[\"x\",{\"c\":3,\"d\":2}],\"b\":1},\"name\":\"m__t\"}";
	char want[65];
	approval_sha256_hex(canon, strlen(canon), want);
	cr_expect_str_eq(c1.effect_sha256, want);
	/* Known vector: SHA-256("abc"). */
	approval_sha256_hex("abc", 3, want);
	cr_expect_str_eq(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	json_decref(a1);
	json_decref(a2);
	json_decref(a3);
	struct approval_card bad = { .kind = APPROVAL_KIND_TOOL };
	cr_expect_eq(approval_card_seal(&bad), -EINVAL);
}

Test(approval_card, changes_render_escapes_and_lists_files)
{
	const char *diff = "--- a/x\n+++ b/x\n+hello \x1b[2J\xc2\x9b""31m world\n";
	struct approval_file files[] = {
		{ "x", "modified +1 -0", 0 },
		{ "y", "created", 1 },
	};
	struct approval_card c = { .kind = APPROVAL_KIND_CHANGES, .title = "apply 2 files",
				   .diff = diff, .diff_len = strlen(diff), .files = files, .n_files = 2 };
	cr_assert_eq(approval_card_seal(&c), 0);
	char want[65];
	approval_sha256_hex(diff, strlen(diff), want);
	cr_expect_str_eq(c.effect_sha256, want, "a changes card is tied to its diff bytes");
	char *text = approval_card_render(&c);
	cr_assert_not_null(text);
	cr_expect_null(strchr(text, 0x1b), "no ESC reaches the terminal");
	cr_expect_null(strstr(text, "\xc2\x9b"), "no C1 CSI reaches the terminal");
	cr_expect(strstr(text, "\\x1b[2J"), "the escape is shown, visibly");
	cr_expect(strstr(text, "1. x  modified +1 -0"), "%s", text);
	cr_expect(strstr(text, "2. y  created  CONFLICT"), "%s", text);
	cr_expect(strstr(text, c.effect_sha256));
	free(text);
	json_t *j = approval_card_to_json(&c);
	cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "workspace_changes");
	cr_expect_str_eq(json_string_value(json_object_get(j, "effect_sha256")), c.effect_sha256);
	cr_expect(json_is_true(json_object_get(json_array_get(json_object_get(j, "files"), 1), "conflict")));
	json_decref(j);
}

Test(approval_card, tool_render_pretty_prints_arguments)
{
	json_t *args = json_loads("{\"entities\": [{\"name\": \"n\"}]}", 0, NULL);
	struct approval_card c = { .kind = APPROVAL_KIND_TOOL, .title = "memory__create_entities",
				   .tool = "memory__create_entities", .arguments = args,
				   .offer_tool_scope = 1, .reason = "mutating" };
	cr_assert_eq(approval_card_seal(&c), 0);
	char *text = approval_card_render(&c);
	cr_expect(strstr(text, "\"entities\": [\n"), "%s", text);
	cr_expect(strstr(text, "a = this tool for the rest of the run"));
	free(text);
	json_t *j = approval_card_to_json(&c);
	cr_expect_eq(json_array_size(json_object_get(j, "scopes")), 2);
	cr_expect(json_equal(json_object_get(j, "arguments"), args));
	json_decref(j);
	json_decref(args);
}

/* ---- deciders that need no terminal ---- */

struct got {
	int fired;
	int approved;
	enum approval_scope scope;
	char decider[16];
	char reason[APPROVAL_REASON_MAX];
	char sha[65];
	unsigned char sel[4];
};

static void on_decision(const struct approval_decision *d, void *ctx)
{
	struct got *g = ctx;
	g->fired++;
	g->approved = d->approved;
	g->scope = d->scope;
	snprintf(g->decider, sizeof(g->decider), "%s", d->decider);
	snprintf(g->reason, sizeof(g->reason), "%s", d->reason);
	memcpy(g->sha, d->effect_sha256, 65);
	for (size_t i = 0; d->selected && i < d->n_files && i < 4; i++)
		g->sel[i] = d->selected[i];
}

TestSuite(approval_decide);

Test(approval_decide, deny_mode_denies_after_the_call_returns)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval *a;
	struct approval_options o = { .mode = APPROVAL_MODE_DENY };
	cr_assert_eq(approval_new(&loop, &o, &a, NULL), 0);
	struct approval_card c = { .kind = APPROVAL_KIND_TOOL, .tool = "m__t" };
	struct got g = { 0 };
	cr_expect_eq(approval_decide(a, &c, on_decision, &g), -EINVAL, "an unsealed card is refused");
	approval_card_seal(&c);
	cr_assert_eq(approval_decide(a, &c, on_decision, &g), 0);
	cr_expect_eq(g.fired, 0, "never inside the call");
	uv_run(&loop, UV_RUN_NOWAIT);
	cr_expect_eq(g.fired, 1);
	cr_expect_eq(g.approved, 0);
	cr_expect_str_eq(g.decider, "deny");
	cr_expect_str_eq(g.sha, c.effect_sha256);
	approval_close(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&loop), 0, "every handle was closed");
}

Test(approval_decide, default_without_a_terminal_is_deny)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval *a;
	struct approval_options o = { .mode = APPROVAL_MODE_DEFAULT, .tty_path = "/nonexistent/tty" };
	cr_assert_eq(approval_new(&loop, &o, &a, NULL), 0);
	cr_expect_eq(approval_mode_resolved(a), APPROVAL_MODE_DENY);
	approval_close(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	/* A regular file is not a terminal either. */
	uv_loop_init(&loop);
	o.tty_path = "/etc/hostname";
	cr_assert_eq(approval_new(&loop, &o, &a, NULL), 0);
	cr_expect_eq(approval_mode_resolved(a), APPROVAL_MODE_DENY);
	approval_close(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
}

Test(approval_decide, ask_without_a_terminal_denies_with_a_reason)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval *a;
	struct approval_options o = { .mode = APPROVAL_MODE_ASK, .tty_path = "/nonexistent/tty" };
	cr_assert_eq(approval_new(&loop, &o, &a, NULL), 0);
	struct approval_card c = { .kind = APPROVAL_KIND_TOOL, .tool = "m__t" };
	approval_card_seal(&c);
	struct got g = { 0 };
	cr_assert_eq(approval_decide(a, &c, on_decision, &g), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	cr_expect_eq(g.fired, 1);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "/nonexistent/tty"), "%s", g.reason);
	approval_close(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
}

Test(approval_decide, yes_approves_everything_but_conflicts, .init = cr_redirect_stderr)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval *a;
	struct approval_options o = { .mode = APPROVAL_MODE_YES };
	cr_assert_eq(approval_new(&loop, &o, &a, NULL), 0);
	struct approval_file files[] = { { "a", NULL, 0 }, { "b", NULL, 1 }, { "c", NULL, 0 } };
	struct approval_card c = { .kind = APPROVAL_KIND_CHANGES, .title = "apply 3 files",
				   .diff = "d", .diff_len = 1, .files = files, .n_files = 3 };
	approval_card_seal(&c);
	struct got g = { 0 };
	cr_assert_eq(approval_decide(a, &c, on_decision, &g), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	cr_expect_eq(g.approved, 1);
	cr_expect_str_eq(g.decider, "yes");
	cr_expect(g.sel[0] && !g.sel[1] && g.sel[2], "a conflict is never selected");
	approval_close(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	fflush(stderr);
	cr_expect_stderr_neq_str("", "--approve yes says so on stderr");
}

Test(approval_decide, close_denies_what_is_queued)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval *a;
	struct approval_options o = { .mode = APPROVAL_MODE_DENY };
	cr_assert_eq(approval_new(&loop, &o, &a, NULL), 0);
	struct approval_card c = { .kind = APPROVAL_KIND_TOOL, .tool = "m__t" };
	approval_card_seal(&c);
	struct got g1 = { 0 }, g2 = { 0 };
	cr_assert_eq(approval_decide(a, &c, on_decision, &g1), 0);
	cr_assert_eq(approval_decide(a, &c, on_decision, &g2), 0);
	approval_close(a);
	cr_expect_eq(g1.fired + g2.fired, 2);
	cr_expect(strstr(g2.reason, "ending"), "%s", g2.reason);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&loop), 0);
}

Test(approval_argv, split)
{
	char **v = approval_argv_split("  bot --team 'infra ops' \"a\\\"b\" c\\ d  ");
	cr_assert_not_null(v);
	cr_expect_str_eq(v[0], "bot");
	cr_expect_str_eq(v[1], "--team");
	cr_expect_str_eq(v[2], "infra ops");
	cr_expect_str_eq(v[3], "a\"b");
	cr_expect_str_eq(v[4], "c d");
	cr_expect_null(v[5]);
	approval_argv_free(v);
	cr_expect_null(approval_argv_split("   "));
	cr_expect_null(approval_argv_split("bot 'unbalanced"));
	v = approval_argv_split("echo $HOME `id` ;rm");
	cr_expect_str_eq(v[1], "$HOME", "no expansion");
	cr_expect_str_eq(v[3], ";rm");
	approval_argv_free(v);
}
