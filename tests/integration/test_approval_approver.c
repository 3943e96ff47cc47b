/* The external approver (`--approver CMD`) as real processes: scripts that
 * approve, deny, hang (timeout -> deny, and the approver is killed), print
 * garbage, crash, exit non-zero, flood their stdout, answer for another
 * effect, or do not exist. The card they read is checked too. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "approval/approval.h"
#include "core/clock.h"
#include "core/io.h"

static char dir[] = "/tmp/ironclaw-approver-XXXXXX";

struct got {
	int fired;
	int approved;
	int scope;
	char decider[16];
	char reason[APPROVAL_REASON_MAX];
	unsigned char sel[4];
};

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(approver, .init = setup, .fini = teardown, .timeout = 120);

static char *script(const char *name, const char *body)
{
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	char *text = NULL;
	cr_assert(asprintf(&text, "#!/bin/sh\n%s\n", body) > 0);
	cr_assert_eq(io_write_file(p, text, strlen(text), 0755), 0);
	free(text);
	return p;
}

static struct approval *the_a;

static void on_decision(const struct approval_decision *d, void *ctx)
{
	struct got *g = ctx;
	g->fired++;
	g->approved = d->approved;
	g->scope = d->scope;
	snprintf(g->decider, sizeof(g->decider), "%s", d->decider);
	snprintf(g->reason, sizeof(g->reason), "%s", d->reason);
	for (size_t i = 0; d->selected && i < d->n_files && i < 4; i++)
		g->sel[i] = d->selected[i];
	approval_close(the_a);
}

/* Runs one decision with approver command line cmd. */
static void decide(const char *cmd, struct approval_card *card, unsigned timeout_ms, struct got *g)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval_options o = { .mode = APPROVAL_MODE_APPROVER, .approver = cmd,
				      .timeout_ms = timeout_ms };
	struct err e = { 0 };
	cr_assert_eq(approval_new(&loop, &o, &the_a, &e), 0, "%s", e.msg);
	cr_assert_eq(approval_card_seal(card), 0);
	memset(g, 0, sizeof(*g));
	cr_assert_eq(approval_decide(the_a, card, on_decision, g), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_expect_eq(g->fired, 1);
	cr_expect_eq(uv_loop_close(&loop), 0, "every handle closed, the approver reaped");
}

static json_t *args;
static struct approval_card card;

static void mkcard(void)
{
	json_decref(args);
	args = json_pack("{s:s}", "name", "alice");
	card = (struct approval_card){ .kind = APPROVAL_KIND_TOOL, .title = "memory__create_entities",
				       .tool = "memory__create_entities", .arguments = args,
				       .offer_tool_scope = 1, .reason = "mutating" };
}

Test(approver, approves_and_reads_the_card)
{
	mkcard();
	char *cardfile = NULL, *cmd = NULL;
	asprintf(&cardfile, "%s/card.json", dir);
	char *s = script("ok.sh", "cat > \"$1\"\necho '{\"decision\": \"approve\", \"reason\": \"ok by bot\", \"scope\": \"tool\"}'");
	asprintf(&cmd, "'%s' '%s'", s, cardfile);
	struct got g;
	decide(cmd, &card, 30000, &g);
	cr_expect_eq(g.approved, 1);
	cr_expect_eq(g.scope, APPROVAL_SCOPE_TOOL);
	cr_expect_str_eq(g.decider, "approver");
	cr_expect(strstr(g.reason, "ok by bot"), "%s", g.reason);
	/* The card arrived as ONE JSON object on one line. */
	char *text = NULL;
	size_t len = 0;
	cr_assert_eq(io_read_file(cardfile, 1 << 20, &text, &len), 0);
	cr_expect_eq(strchr(text, '\n'), text + len - 1, "one line");
	json_t *j = json_loads(text, 0, NULL);
	cr_assert(json_is_object(j), "%s", text);
	cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "tool_call");
	cr_expect_str_eq(json_string_value(json_object_get(j, "tool")), "memory__create_entities");
	cr_expect_str_eq(json_string_value(json_object_get(j, "effect_sha256")), card.effect_sha256);
	cr_expect(json_equal(json_object_get(j, "arguments"), args));
	json_decref(j);
	free(text);
	free(cardfile);
	free(cmd);
	free(s);
}

Test(approver, denies)
{
	mkcard();
	char *s = script("no.sh", "cat >/dev/null\necho '{\"decision\":\"deny\",\"reason\":\"change freeze\"}'");
	struct got g;
	decide(s, &card, 30000, &g);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "change freeze"), "%s", g.reason);
	free(s);
}

Test(approver, hangs_then_denied_and_killed)
{
	mkcard();
	char *pidfile = NULL, *cmd = NULL;
	asprintf(&pidfile, "%s/pid", dir);
	char *s = script("hang.sh", "echo $$ > \"$1\"\ncat >/dev/null\nsleep 1000\necho '{\"decision\":\"approve\"}'");
	asprintf(&cmd, "%s %s", s, pidfile);
	struct got g;
	double t0 = clock_now_ms();
	decide(cmd, &card, 1500, &g);
	double took = clock_now_ms() - t0;
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "no decision within"), "%s", g.reason);
	cr_expect(took >= 1400 && took < 60000, "took %.0f ms", took);
	char *text = NULL;
	size_t len;
	cr_assert_eq(io_read_file(pidfile, 64, &text, &len), 0);
	pid_t pid = atoi(text);
	free(text);
	/* decide() returned after the loop reaped it: the approver is gone. */
	cr_expect(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH, "approver %d still exists", pid);
	free(pidfile);
	free(cmd);
	free(s);
}

Test(approver, garbage_denies)
{
	mkcard();
	const char *bodies[] = {
		"echo 'yes please'",
		"echo '{\"decision\": \"approved\"}'",
		"echo '{\"decision\": \"approve\"} {\"decision\": \"approve\"}'",
		"echo '[\"approve\"]'",
		"echo '{\"decision\": \"approve\", \"decision\": \"deny\"}'",
		"echo '{\"decision\": \"approve\", \"reason\": 5}'",
		"echo '{\"decision\": \"approve\", \"scope\": \"forever\"}'",
		"true",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		char name[16];
		snprintf(name, sizeof(name), "g%zu.sh", i);
		char *s = script(name, bodies[i]);
		struct got g;
		decide(s, &card, 30000, &g);
		cr_expect_eq(g.approved, 0, "'%s' must deny", bodies[i]);
		cr_expect(strstr(g.reason, "approver"), "%s", g.reason);
		free(s);
	}
}

Test(approver, answer_for_another_effect_denies)
{
	mkcard();
	char *s = script("h.sh", "echo '{\"decision\":\"approve\",\"effect_sha256\":\"00ff\"}'");
	struct got g;
	decide(s, &card, 30000, &g);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "another effect"), "%s", g.reason);
	free(s);
	/* The right hash is accepted: the approver can echo the card's. */
	char *body = NULL;
	asprintf(&body, "echo '{\"decision\":\"approve\",\"effect_sha256\":\"%s\"}'", card.effect_sha256);
	s = script("h2.sh", body);
	decide(s, &card, 30000, &g);
	cr_expect_eq(g.approved, 1, "%s", g.reason);
	free(s);
	free(body);
}

Test(approver, crash_and_nonzero_exit_deny)
{
	mkcard();
	char *s = script("crash.sh", "echo '{\"decision\":\"approve\"}'\nkill -SEGV $$");
	struct got g;
	decide(s, &card, 30000, &g);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "signal 11"), "%s", g.reason);
	free(s);
	s = script("exit1.sh", "echo '{\"decision\":\"approve\"}'\nexit 1");
	decide(s, &card, 30000, &g);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "status 1"), "%s", g.reason);
	free(s);
	decide("/nonexistent/approver --flag", &card, 30000, &g);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "cannot start"), "%s", g.reason);
}

Test(approver, flood_is_capped)
{
	mkcard();
	char *s = script("flood.sh", "exec yes '{\"decision\":\"approve\"}'");
	struct got g;
	decide(s, &card, 30000, &g);
	cr_expect_eq(g.approved, 0);
	cr_expect(strstr(g.reason, "more than"), "%s", g.reason);
	free(s);
}

Test(approver, selects_files_of_a_changes_card)
{
	struct approval_file files[] = { { "a.txt", "created", 0 }, { "b.txt", "modified", 0 },
					 { "c.txt", "modified", 1 } };
	struct approval_card c = { .kind = APPROVAL_KIND_CHANGES, .title = "apply 3 files",
				   .diff = "diff", .diff_len = 4, .files = files, .n_files = 3 };
	char *s = script("sel.sh", "cat >/dev/null\necho '{\"decision\":\"approve\",\"files\":[\"b.txt\"]}'");
	struct got g;
	decide(s, &c, 30000, &g);
	cr_expect_eq(g.approved, 1, "%s", g.reason);
	cr_expect(!g.sel[0] && g.sel[1] && !g.sel[2]);
	free(s);
	/* No "files": all but the conflict. */
	s = script("all.sh", "echo '{\"decision\":\"approve\"}'");
	decide(s, &c, 30000, &g);
	cr_expect(g.sel[0] && g.sel[1] && !g.sel[2]);
	free(s);
	/* A conflict or a file not on the card: deny. */
	s = script("bad.sh", "echo '{\"decision\":\"approve\",\"files\":[\"c.txt\"]}'");
	decide(s, &c, 30000, &g);
	cr_expect_eq(g.approved, 0);
	free(s);
	s = script("bad2.sh", "echo '{\"decision\":\"approve\",\"files\":[\"../etc/passwd\"]}'");
	decide(s, &c, 30000, &g);
	cr_expect_eq(g.approved, 0);
	free(s);
	/* A changes card cannot be approved for "the rest of the run". */
	s = script("bad3.sh", "echo '{\"decision\":\"approve\",\"scope\":\"tool\"}'");
	decide(s, &c, 30000, &g);
	cr_expect_eq(g.approved, 0);
	free(s);
}

Test(approver, empty_command_is_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval *a = NULL;
	struct approval_options o = { .mode = APPROVAL_MODE_APPROVER, .approver = "  " };
	struct err e = { 0 };
	cr_expect_eq(approval_new(&loop, &o, &a, &e), -EINVAL);
	cr_expect(strstr(e.msg, "--approver"), "%s", e.msg);
	uv_loop_close(&loop);
}
