/* Who decides on `ironclaw run`'s changes card: a person at a REAL
 * pseudo-terminal (forkpty makes it the child's controlling terminal, so the
 * run opens the real /dev/tty under the default mode), or an external
 * approver (--approver CMD, a script written here) that approves, denies,
 * hangs, or prints garbage. The prompt timeout comes from the config's
 * "approval": {"promptTimeoutS": 2}, so "no answer" takes seconds. */
#include "test_run_util.h"
#include "integration/lib/pty.h"

#include <signal.h>
#include <sys/wait.h>

#define MULTI "multi-step: add a line to notes"

static struct rt t;

static void setup(void)
{
	rt_setup(&t, "{\"approval\": {\"promptTimeoutS\": 2}}\n");
	rt_mock(&t, NULL);
}

static void teardown(void)
{
	rt_teardown(&t);
}

TestSuite(run_approval, .init = setup, .fini = teardown, .timeout = 240);

struct pty {
	struct pty_child c;
	char out[160];
	char base[160];
};

static void pty_child_run(void *arg)
{
	struct pty *p = arg;
	execl(harness_ironclaw(), harness_ironclaw(), "run", "--workspace", t.ws, "--base-url", p->base,
	      "--model", "m", MULTI, (char *)NULL);
}

static void pty_start(struct pty *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->out, sizeof(p->out), "%s/pty-out", t.dir);
	int ofd = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(ofd >= 0);
	snprintf(p->base, sizeof(p->base), "%s/v1", t.mock.url);
	int rc = pty_child_start(&p->c, ofd, pty_child_run, p);
	cr_assert_eq(rc, 0, "forkpty: %s", strerror(-rc));
	close(ofd);
}

static int pty_await(struct pty *p, const char *want, unsigned timeout_ms)
{
	return pty_child_await(&p->c, want, timeout_ms);
}

/* Drains the terminal until the child exits; returns its exit code. */
static int pty_finish(struct pty *p)
{
	int st = 0;
	cr_assert_eq(pty_child_wait(&p->c, 120000, &st), 0, "ironclaw run did not finish; screen:\n%s",
		     p->c.screen.data);
	cr_assert(WIFEXITED(st), "status %d", st);
	return WEXITSTATUS(st);
}

static void pty_card_shown(struct pty *p)
{
	cr_assert(pty_await(p, "Apply these changes? [y/N]", 120000), "the question appears on the terminal:\n%s",
		  p->c.screen.data);
	const char *s = (char *)p->c.screen.data;
	cr_expect(strstr(s, "M notes.txt"), "the card is on the terminal:\n%s", s);
	cr_expect(strstr(s, "+world"), "with the diff:\n%s", s);
}

static void stdout_is(struct pty *p, const char *want)
{
	char *o = rt_read(p->out);
	cr_assert(o);
	cr_expect_str_eq(o, want, "stdout holds the answer only, the card is on the terminal");
	free(o);
}

Test(run_approval, tty_yes_applies)
{
	struct pty p;
	pty_start(&p);
	pty_card_shown(&p);
	cr_assert_eq(pty_child_say(&p.c, "y\n"), 0);
	int code = pty_finish(&p);
	cr_assert_eq(code, 0, "exit %d; screen:\n%s", code, p.c.screen.data);
	char *n = rt_readf(t.ws, "notes.txt");
	cr_assert_str_eq(n, "hello\nworld\n");
	free(n);
	stdout_is(&p, "Added the line 'world' to notes.txt.\n");
	pty_child_free(&p.c);
}

Test(run_approval, tty_no_denies)
{
	char *before = rt_tree(t.ws);
	struct pty p;
	pty_start(&p);
	pty_card_shown(&p);
	cr_assert_eq(pty_child_say(&p.c, "n\n"), 0);
	int code = pty_finish(&p);
	cr_assert_eq(code, 3, "exit %d; screen:\n%s", code, p.c.screen.data);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "denied: unchanged byte for byte");
	free(after);
	free(before);
	stdout_is(&p, "Added the line 'world' to notes.txt.\n");
	pty_child_free(&p.c);
}

Test(run_approval, tty_no_answer_denies_after_the_timeout)
{
	char *before = rt_tree(t.ws);
	struct pty p;
	pty_start(&p);
	pty_card_shown(&p);
	double asked = harness_now_ms();
	int code = pty_finish(&p);
	double waited = harness_now_ms() - asked;
	cr_assert_eq(code, 3, "exit %d; screen:\n%s", code, p.c.screen.data);
	cr_expect_gt(waited, 1000, "it waited for the 2 s prompt timeout (%.0f ms)", waited);
	cr_expect_lt(waited, 60000, "and not much longer (%.0f ms)", waited);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "no answer: unchanged byte for byte");
	free(after);
	free(before);
	pty_child_free(&p.c);
}

/* ---- external approvers ---- */

static struct run_result approver_run(const char *script)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/approver.sh", t.dir);
	rt_write(path, script, 0755);
	return rt_run(&t, "openai", MULTI, "--approver", path, NULL);
}

Test(run_approval, approver_approves)
{
	/* It also checks what it was given: one JSON object naming the file. */
	struct run_result r = approver_run("#!/bin/sh\nread -r card\ncase \"$card\" in\n"
					   "  *notes.txt*) echo '{\"decision\": \"approve\", \"reason\": \"lgtm\"}' ;;\n"
					   "  *) echo '{\"decision\": \"deny\"}' ;;\nesac\n");
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	char *n = rt_readf(t.ws, "notes.txt");
	cr_assert_str_eq(n, "hello\nworld\n");
	free(n);
	harness_result_free(&r);
}

static void approver_denies(const char *script, const char *why)
{
	char *before = rt_tree(t.ws);
	struct run_result r = approver_run(script);
	cr_assert_eq(r.exit_code, 3, "%s: exit %d; stderr:\n%s", why, r.exit_code, r.err);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "%s: unchanged byte for byte", why);
	free(after);
	free(before);
	harness_result_free(&r);
}

Test(run_approval, approver_denies)
{
	approver_denies("#!/bin/sh\ncat >/dev/null\necho '{\"decision\": \"deny\", \"reason\": \"no\"}'\n", "deny");
}

Test(run_approval, approver_that_hangs_is_a_deny)
{
	double t0 = harness_now_ms();
	approver_denies("#!/bin/sh\ncat >/dev/null\nsleep 600\n", "hang");
	cr_expect_lt(harness_now_ms() - t0, 120000, "the 2 s timeout ended it");
}

Test(run_approval, approver_garbage_is_a_deny)
{
	approver_denies("#!/bin/sh\ncat >/dev/null\necho 'sure, go ahead!'\n", "garbage");
}
