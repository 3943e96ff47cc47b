/* The decider: one queue of approval requests, taken one at a time, answered
 * by the mode chosen at start (ask, deny, yes, an external approver).
 *
 * A request never completes inside approval_decide(): even an instant answer
 * (deny, yes, a remembered tool) goes through a zero timer, so callers never
 * see their callback re-enter them. An approval with scope "this tool for the
 * rest of the run" is remembered by tool name; a changes card is never
 * remembered, each apply is decided on its own diff. */
#include "approval/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void approval_pump(uv_timer_t *t);

enum approval_mode approval_mode_resolved(const struct approval *a)
{
	return a->mode;
}

static int approval_tty_usable(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	int ok = isatty(fd);
	close(fd);
	return ok;
}

int approval_new(uv_loop_t *loop, const struct approval_options *o, struct approval **out,
		 struct err *e)
{
	*out = NULL;
	struct approval *a = calloc(1, sizeof(*a));
	if (!a)
		return err_set(e, -ENOMEM, "approval: out of memory");
	a->loop = loop;
	a->mode = o->mode;
	a->quiet = o->quiet;
	a->timeout_ms = o->timeout_ms ? o->timeout_ms : APPROVAL_TIMEOUT_MS_DEFAULT;
	a->tty_path = strdup(o->tty_path ? o->tty_path : "/dev/tty");
	if (!a->tty_path) {
		free(a);
		return err_set(e, -ENOMEM, "approval: out of memory");
	}
	if (a->mode == APPROVAL_MODE_DEFAULT)
		a->mode = approval_tty_usable(a->tty_path) ? APPROVAL_MODE_ASK : APPROVAL_MODE_DENY;
	if (a->mode == APPROVAL_MODE_APPROVER) {
		a->argv = o->approver ? approval_argv_split(o->approver) : NULL;
		if (!a->argv) {
			free(a->tty_path);
			free(a);
			return err_set(e, -EINVAL, "--approver needs a command line (balanced quotes, at "
				       "most 64 words), e.g. --approver 'my-bot --team infra'");
		}
		struct sigaction old;
		if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			signal(SIGPIPE, SIG_IGN);
	}
	if (a->mode == APPROVAL_MODE_YES)
		fprintf(stderr, "ironclaw: WARNING: --approve yes: every red action (mutating MCP "
				"calls, applying changes to your files) will be APPROVED WITHOUT ASKING\n");
	uv_timer_init(loop, &a->kick);
	a->kick.data = a;
	a->handles_open = 1;
	*out = a;
	return 0;
}

static void approval_schedule(struct approval *a)
{
	if (!a->cur && a->head && !a->closing)
		uv_timer_start(&a->kick, approval_pump, 0, 0);
}

int approval_decide(struct approval *a, const struct approval_card *card, approval_cb cb,
		    void *ctx)
{
	if (a->closing)
		return -ESHUTDOWN;
	if (!card || !cb || strlen(card->effect_sha256) != 64)
		return -EINVAL;
	if (a->queued >= APPROVAL_QUEUE_MAX)
		return -EBUSY;
	struct approval_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->card = card;
	r->cb = cb;
	r->ctx = ctx;
	if (a->tail)
		a->tail->next = r;
	else
		a->head = r;
	a->tail = r;
	a->queued++;
	approval_schedule(a);
	return 0;
}

void approval_deny_init(struct approval *a, struct approval_decision *d, const char *decider,
			const char *fmt, ...)
{
	(void)a;
	memset(d, 0, sizeof(*d));
	d->decider = decider;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

static int approval_remember(struct approval *a, const char *tool)
{
	char **nv = realloc(a->remembered, (a->n_remembered + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	a->remembered = nv;
	if (!(nv[a->n_remembered] = strdup(tool)))
		return -ENOMEM;
	a->n_remembered++;
	return 0;
}

static int approval_is_remembered(const struct approval *a, const char *tool)
{
	for (size_t i = 0; i < a->n_remembered; i++)
		if (!strcmp(a->remembered[i], tool))
			return 1;
	return 0;
}

void approval_finish(struct approval *a, struct approval_decision *d)
{
	struct approval_req *r = a->cur;
	if (!r)
		return;
	a->cur = NULL;
	a->active = NULL;
	a->abort_active = NULL;
	const struct approval_card *c = r->card;
	memcpy(d->effect_sha256, c->effect_sha256, sizeof(d->effect_sha256));
	if (c->kind == APPROVAL_KIND_CHANGES) {
		d->scope = APPROVAL_SCOPE_CALL;
		d->n_files = c->n_files;
		if (!d->approved)
			d->selected = NULL;
	} else {
		d->selected = NULL;
		d->n_files = 0;
		if (!c->offer_tool_scope)
			d->scope = APPROVAL_SCOPE_CALL;
		if (d->approved && d->scope == APPROVAL_SCOPE_TOOL &&
		    approval_remember(a, c->tool) < 0)
			d->scope = APPROVAL_SCOPE_CALL; /* out of memory: ask again next time */
	}
	r->cb(d, r->ctx);
	free(r);
	approval_schedule(a);
}

/* Decisions that need no waiting: deny, yes, a remembered tool. */
static int approval_instant(struct approval *a, const struct approval_card *c)
{
	struct approval_decision d;
	unsigned char *sel = NULL;
	int remembered = c->kind == APPROVAL_KIND_TOOL && approval_is_remembered(a, c->tool);
	if (!remembered && a->mode != APPROVAL_MODE_YES && a->mode != APPROVAL_MODE_DENY)
		return 0;
	if (a->mode == APPROVAL_MODE_DENY && !remembered) {
		approval_deny_init(a, &d, "deny", "denied: no one to ask (--approve deny, or no "
				   "terminal; hint: run with a terminal, --approve ask or --approver CMD)");
		approval_finish(a, &d);
		return 1;
	}
	memset(&d, 0, sizeof(d));
	d.approved = 1;
	d.decider = remembered ? "remembered" : "yes";
	d.scope = remembered ? APPROVAL_SCOPE_TOOL : APPROVAL_SCOPE_CALL;
	snprintf(d.reason, sizeof(d.reason), "%s", remembered ?
		 "approved earlier for the rest of the run" : "approved without asking (--approve yes)");
	if (c->kind == APPROVAL_KIND_CHANGES && c->n_files) {
		sel = calloc(c->n_files, 1);
		if (!sel) {
			approval_deny_init(a, &d, d.decider, "denied: out of memory");
			approval_finish(a, &d);
			return 1;
		}
		for (size_t i = 0; i < c->n_files; i++)
			sel[i] = !c->files[i].conflict;
		d.selected = sel;
	}
	if (!remembered)
		fprintf(stderr, "ironclaw: APPROVED WITHOUT ASKING (--approve yes): %s [sha256 %.12s]\n",
			c->title ? c->title : c->kind == APPROVAL_KIND_TOOL ? c->tool : "changes",
			c->effect_sha256);
	approval_finish(a, &d);
	free(sel);
	return 1;
}

static void approval_pump(uv_timer_t *t)
{
	struct approval *a = t->data;
	while (!a->cur && a->head && !a->closing) {
		struct approval_req *r = a->head;
		a->head = r->next;
		if (!a->head)
			a->tail = NULL;
		a->queued--;
		a->cur = r;
		if (approval_instant(a, r->card))
			continue;
		struct err e = { 0 };
		int rc = a->mode == APPROVAL_MODE_ASK ? approval_tty_start(a, &e) :
			 approval_ext_start(a, &e);
		if (rc < 0) {
			struct approval_decision d;
			approval_deny_init(a, &d, a->mode == APPROVAL_MODE_ASK ? "ask" : "approver",
					   "denied: %s", e.msg);
			approval_finish(a, &d);
		}
		/* Else the decider calls approval_finish later, which schedules the rest. */
		break;
	}
}

void approval_handle_closed(struct approval *a)
{
	if (--a->handles_open > 0 || !a->closing)
		return;
	for (size_t i = 0; i < a->n_remembered; i++)
		free(a->remembered[i]);
	free(a->remembered);
	approval_argv_free(a->argv);
	free(a->tty_path);
	free(a);
}

static void approval_on_kick_closed(uv_handle_t *h)
{
	approval_handle_closed(h->data);
}

void approval_close(struct approval *a)
{
	if (!a || a->closing)
		return;
	a->closing = 1;
	struct approval_decision d;
	if (a->cur) {
		if (a->abort_active)
			a->abort_active(a);
		approval_deny_init(a, &d, a->mode == APPROVAL_MODE_ASK ? "ask" : "approver",
				   "denied: the run is ending");
		approval_finish(a, &d);
	}
	while (a->head) {
		a->cur = a->head;
		a->head = a->head->next;
		a->queued--;
		approval_deny_init(a, &d, "deny", "denied: the run is ending");
		approval_finish(a, &d);
	}
	a->tail = NULL;
	uv_close((uv_handle_t *)&a->kick, approval_on_kick_closed);
}

/* ---- the approver's command line ---- */

#define ARGV_WORDS_MAX 64
#define ARGV_LINE_MAX 4096

void approval_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

char **approval_argv_split(const char *line)
{
	size_t len = strnlen(line, ARGV_LINE_MAX + 1);
	if (len > ARGV_LINE_MAX)
		return NULL;
	char **argv = calloc(ARGV_WORDS_MAX + 1, sizeof(*argv));
	char *word = malloc(len + 1);
	size_t n = 0;
	const char *p = line;
	if (!argv || !word)
		goto fail;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		size_t w = 0;
		char quote = 0;
		for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
			if (quote && *p == quote) {
				quote = 0;
			} else if (!quote && (*p == '\'' || *p == '"')) {
				quote = *p;
			} else if (*p == '\\' && quote != '\'' && p[1]) {
				word[w++] = *++p;
			} else {
				word[w++] = *p;
			}
		}
		if (quote || n == ARGV_WORDS_MAX)
			goto fail;
		word[w] = 0;
		if (!(argv[n++] = strdup(word)))
			goto fail;
	}
	free(word);
	if (!n) {
		free(argv);
		return NULL;
	}
	return argv;
fail:
	free(word);
	approval_argv_free(argv);
	return NULL;
}
