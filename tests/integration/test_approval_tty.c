/* The `ask` prompt through a REAL pseudo-terminal: a child made with forkpty
 * has the pty as its controlling terminal, so the code under test opens the
 * real /dev/tty. Its stdout goes to a file, which must stay empty: the card
 * and the question appear on the terminal only. The test plays the user on
 * the pty's master side: it waits for the question (an event: the bytes on
 * the master), answers y, n, a, or file numbers, or nothing at all. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "approval/approval.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/io.h"
#include "integration/lib/pty.h"

struct child_result {
	int fired;
	int approved;
	int scope;
	char decider[16];
	char reason[APPROVAL_REASON_MAX];
	unsigned char sel[8];
	int fired2, approved2;  /* a second call of the same tool */
	char decider2[16];
};

static struct child_result res;
static int second_call;

static void on_second(const struct approval_decision *d, void *ctx)
{
	(void)ctx;
	res.fired2 = 1;
	res.approved2 = d->approved;
	snprintf(res.decider2, sizeof(res.decider2), "%s", d->decider);
}

static struct approval_card *second_card;
static struct approval *the_approval;
static void on_second_done(const struct approval_decision *d, void *ctx);

static void on_decision(const struct approval_decision *d, void *ctx)
{
	(void)ctx;
	res.fired++;
	res.approved = d->approved;
	res.scope = d->scope;
	snprintf(res.decider, sizeof(res.decider), "%s", d->decider);
	snprintf(res.reason, sizeof(res.reason), "%s", d->reason);
	for (size_t i = 0; d->selected && i < d->n_files && i < 8; i++)
		res.sel[i] = d->selected[i];
	if (second_call && approval_decide(the_approval, second_card, on_second_done, NULL) < 0)
		res.fired2 = -1;
	else if (!second_call)
		approval_close(the_approval);
}

static void on_second_done(const struct approval_decision *d, void *ctx)
{
	on_second(d, ctx);
	approval_close(the_approval);
}

/* In the child: decide one card on /dev/tty, write the result to res_fd. */
static void child_decide(struct approval_card *card, unsigned timeout_ms, int res_fd)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct approval_options o = { .mode = APPROVAL_MODE_ASK, .timeout_ms = timeout_ms };
	struct err e = { 0 };
	if (approval_new(&loop, &o, &the_approval, &e) < 0)
		_exit(3);
	if (approval_card_seal(card) < 0 || approval_decide(the_approval, card, on_decision, NULL) < 0)
		_exit(4);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		_exit(5);
	if (write(res_fd, &res, sizeof(res)) != sizeof(res))
		_exit(6);
	_exit(0);
}

struct pty_run {
	struct pty_child c;
	int res_pipe[2];
	char out_path[64];
	struct approval_card *card;
	unsigned timeout_ms;
};

static void pty_child_decide(void *arg)
{
	struct pty_run *p = arg;
	close(p->res_pipe[0]);
	child_decide(p->card, p->timeout_ms, p->res_pipe[1]);
}

static void pty_start(struct pty_run *p, struct approval_card *card, unsigned timeout_ms)
{
	memset(p, 0, sizeof(*p));
	p->card = card;
	p->timeout_ms = timeout_ms;
	snprintf(p->out_path, sizeof(p->out_path), "/tmp/ironclaw-tty-out-XXXXXX");
	int ofd = mkstemp(p->out_path);
	cr_assert(ofd >= 0);
	cr_assert_eq(pipe(p->res_pipe), 0);
	int rc = pty_child_start(&p->c, ofd, pty_child_decide, p);
	cr_assert_eq(rc, 0, "forkpty: %s", strerror(-rc));
	close(ofd);
	close(p->res_pipe[1]);
}

static int pty_await(struct pty_run *p, const char *want, unsigned timeout_ms)
{
	return pty_child_await(&p->c, want, timeout_ms);
}

static void pty_say(struct pty_run *p, const char *s)
{
	cr_assert_eq(pty_child_say(&p->c, s), 0);
}

static void pty_finish(struct pty_run *p, struct child_result *r)
{
	int st = 0;
	cr_assert_eq(pty_child_wait(&p->c, 30000, &st), 0, "the child did not finish");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	cr_assert_eq(read(p->res_pipe[0], r, sizeof(*r)), (ssize_t)sizeof(*r));
	close(p->res_pipe[0]);
	char *out = NULL;
	size_t len = 0;
	cr_assert_eq(io_read_file(p->out_path, 1 << 20, &out, &len), 0);
	cr_expect_eq(len, 0, "nothing on stdout, the prompt is on the terminal: '%s'", out);
	free(out);
	unlink(p->out_path);
}

static json_t *args;
static struct approval_card tool_card;

static void setup_tool(void)
{
	args = json_pack("{s:[{s:s, s:s}]}", "entities", "name", "alice", "entityType", "person");
	tool_card = (struct approval_card){ .kind = APPROVAL_KIND_TOOL, .title = "memory__create_entities",
					    .tool = "memory__create_entities", .arguments = args,
					    .offer_tool_scope = 1,
					    .reason = "memory__create_entities: the name has the mutating word \"create\"" };
}

TestSuite(approval_tty, .init = setup_tool, .timeout = 120);

Test(approval_tty, yes_approves_this_call)
{
	struct pty_run p;
	struct child_result r;
	pty_start(&p, &tool_card, 60000);
	cr_assert(pty_await(&p, "[N] no: ", 30000), "the question appears on the terminal: %s", p.c.screen.data);
	cr_expect(strstr((char *)p.c.screen.data, "\"entityType\": \"person\""), "arguments are pretty-printed");
	cr_expect(strstr((char *)p.c.screen.data, "effect sha256: "), "the hash is on the card");
	pty_say(&p, "y\n");
	pty_finish(&p, &r);
	cr_expect_eq(r.fired, 1);
	cr_expect_eq(r.approved, 1);
	cr_expect_eq(r.scope, APPROVAL_SCOPE_CALL);
	cr_expect_str_eq(r.decider, "ask");
	pty_child_free(&p.c);
}

Test(approval_tty, no_denies)
{
	struct pty_run p;
	struct child_result r;
	pty_start(&p, &tool_card, 60000);
	cr_assert(pty_await(&p, "[N] no: ", 30000));
	pty_say(&p, "n\n");
	pty_finish(&p, &r);
	cr_expect_eq(r.fired, 1);
	cr_expect_eq(r.approved, 0);
	cr_expect(strstr(r.reason, "said no"), "%s", r.reason);
	pty_child_free(&p.c);
}

Test(approval_tty, gibberish_is_asked_again)
{
	struct pty_run p;
	struct child_result r;
	pty_start(&p, &tool_card, 60000);
	cr_assert(pty_await(&p, "[N] no: ", 30000));
	pty_say(&p, "sure thing\n");
	cr_assert(pty_await(&p, "not understood", 30000));
	pty_say(&p, "Y\n");
	pty_finish(&p, &r);
	cr_expect_eq(r.approved, 1);
	pty_child_free(&p.c);
}

Test(approval_tty, always_approves_the_tool_for_the_run)
{
	struct pty_run p;
	struct child_result r;
	/* The second call of the same tool, with other arguments, must not ask. */
	json_t *args2 = json_pack("{s:[]}", "entities");
	struct approval_card c2 = tool_card;
	c2.arguments = args2;
	approval_card_seal(&c2);
	second_card = &c2;
	second_call = 1;
	pty_start(&p, &tool_card, 60000);
	cr_assert(pty_await(&p, "[N] no: ", 30000));
	pty_say(&p, "a\n");
	pty_finish(&p, &r);
	cr_expect_eq(r.approved, 1);
	cr_expect_eq(r.scope, APPROVAL_SCOPE_TOOL);
	cr_expect_eq(r.fired2, 1);
	cr_expect_eq(r.approved2, 1);
	cr_expect_str_eq(r.decider2, "remembered");
	/* Only one question was asked. */
	const char *s = (char *)p.c.screen.data, *q = strstr(s, "[N] no: ");
	cr_expect(q && !strstr(q + 1, "[N] no: "), "%s", s);
	json_decref(args2);
	pty_child_free(&p.c);
}

Test(approval_tty, no_answer_denies_after_the_timeout)
{
	struct pty_run p;
	struct child_result r;
	double t0 = clock_now_ms();
	pty_start(&p, &tool_card, 1500);
	cr_assert(pty_await(&p, "[N] no: ", 30000));
	cr_assert(pty_await(&p, "-> denied", 60000), "the prompt gives up by itself");
	pty_finish(&p, &r);
	cr_expect_eq(r.approved, 0);
	cr_expect(strstr(r.reason, "no answer within"), "%s", r.reason);
	cr_expect(clock_now_ms() - t0 >= 1400, "not before the timeout");
	pty_child_free(&p.c);
}

Test(approval_tty, per_file_selection)
{
	struct approval_file files[] = {
		{ "notes.txt", "modified +1 -0", 0 },
		{ "old.txt", "deleted", 0 },
		{ "conf.ini", "modified +2 -2", 1 },
		{ "new.txt", "created", 0 },
	};
	const char *diff = "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1,2 @@\n hello\n+world\n";
	struct approval_card c = { .kind = APPROVAL_KIND_CHANGES, .title = "apply 4 files",
				   .diff = diff, .diff_len = strlen(diff), .files = files, .n_files = 4,
				   .reason = "applying workspace changes to the host is always red" };
	struct pty_run p;
	struct child_result r;
	pty_start(&p, &c, 60000);
	cr_assert(pty_await(&p, "(e.g. 1,3 or 2-4): ", 30000), "%s", p.c.screen.data);
	cr_expect(strstr((char *)p.c.screen.data, "+world"), "the diff is on the card");
	cr_expect(strstr((char *)p.c.screen.data, "3. conf.ini  modified +2 -2  CONFLICT"));
	/* A conflict cannot be chosen: asked again. */
	pty_say(&p, "3\n");
	cr_assert(pty_await(&p, "file 3 is a conflict", 30000));
	pty_say(&p, "1, 4\n");
	pty_finish(&p, &r);
	cr_expect_eq(r.approved, 1);
	cr_expect(r.sel[0] && !r.sel[1] && !r.sel[2] && r.sel[3], "%d %d %d %d", r.sel[0], r.sel[1],
		  r.sel[2], r.sel[3]);
	cr_expect(strstr(r.reason, "2 of 4"), "%s", r.reason);
	pty_child_free(&p.c);
}

Test(approval_tty, typeahead_does_not_answer)
{
	/* A "y" already waiting on the terminal before the card was shown is
	 * flushed; only an answer typed after the question counts. */
	struct pty_run p;
	struct child_result r;
	pty_start(&p, &tool_card, 3000);
	/* Typed at once, while the child is still starting up. */
	pty_say(&p, "y\n");
	cr_assert(pty_await(&p, "[N] no: ", 30000));
	cr_assert(pty_await(&p, "-> ", 60000));
	pty_finish(&p, &r);
	cr_expect_eq(r.approved, 0, "the early y was flushed: %s", p.c.screen.data);
	cr_expect(strstr(r.reason, "no answer within"), "%s", r.reason);
	pty_child_free(&p.c);
}
