/* The `ask` decider: the card and a question on the controlling terminal.
 *
 * It talks to /dev/tty, never to stdout or stderr: the agent's stdout is the
 * answer (often captured by a script) and a prompt there would be invisible,
 * so every risky action would be silently cancelled. The terminal is read
 * through libuv (uv_tty on our own descriptor) and a uv_timer bounds the wait:
 * no answer in time means deny. Typeahead is flushed before the question, so
 * a "y" typed for something else never answers this card.
 *
 * Answers: y / n (the default), a = this tool for the rest of the run (when
 * the card offers it), and for a changes card with several files the numbers
 * of the files to apply ("1,3" or "2-4"). Anything else is asked again, a few
 * times, then denied. */
#include "approval/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define TTY_LINE_MAX 512
#define TTY_TRIES_MAX 5

struct tty_ask {
	struct approval *a;
	uv_tty_t tty;
	uv_timer_t timer;
	int handles;
	int done;
	int tries;
	char line[TTY_LINE_MAX];
	size_t len;
	int overlong;                 /* the current line passed TTY_LINE_MAX */
	char rbuf[256];
	unsigned char *selected;      /* per file, for a changes card */
};

struct tty_write {
	uv_write_t req;
	char *text;
};

static void tty_on_closed(uv_handle_t *h)
{
	struct tty_ask *t = h->data;
	struct approval *a = t->a;
	if (--t->handles == 0) {
		free(t->selected);
		free(t);
	}
	approval_handle_closed(a);
}

static void tty_close(struct tty_ask *t)
{
	uv_timer_stop(&t->timer);
	uv_read_stop((uv_stream_t *)&t->tty);
	/* Cooked mode is what we found and what we leave. */
	uv_close((uv_handle_t *)&t->timer, tty_on_closed);
	uv_close((uv_handle_t *)&t->tty, tty_on_closed);
}

static void tty_on_written(uv_write_t *req, int status)
{
	(void)status; /* a terminal that went away shows up as a read error */
	struct tty_write *w = (struct tty_write *)req;
	free(w->text);
	free(w);
}

/* Queues text on the terminal; libuv keeps it until written, even past close. */
static void tty_say(struct tty_ask *t, const char *text)
{
	struct tty_write *w = calloc(1, sizeof(*w));
	if (!w || !(w->text = strdup(text))) {
		free(w);
		return;
	}
	uv_buf_t b = uv_buf_init(w->text, (unsigned)strlen(w->text));
	if (uv_write(&w->req, (uv_stream_t *)&t->tty, &b, 1, tty_on_written) < 0) {
		free(w->text);
		free(w);
	}
}

static void tty_end(struct tty_ask *t, struct approval_decision *d)
{
	t->done = 1;
	tty_say(t, d->approved ? "-> approved\n" : "-> denied\n");
	tty_close(t);
	approval_finish(t->a, d);
}

static void tty_deny(struct tty_ask *t, const char *why)
{
	struct approval_decision d;
	approval_deny_init(t->a, &d, "ask", "denied: %s", why);
	tty_end(t, &d);
}

static int tty_several(const struct approval_card *c)
{
	return c->kind == APPROVAL_KIND_CHANGES && c->n_files > 1;
}

static void tty_question(struct tty_ask *t)
{
	const struct approval_card *c = t->a->cur->card;
	if (c->kind == APPROVAL_KIND_TOOL)
		tty_say(t, c->offer_tool_scope ?
			"Approve? [y] this call, [a] this tool for the rest of the run, [N] no: " :
			"Approve this call? [y/N]: ");
	else if (tty_several(c))
		tty_say(t, "Apply? [y] all files, [N] none, or the numbers of the files to apply "
			   "(e.g. 1,3 or 2-4): ");
	else
		tty_say(t, "Apply these changes? [y/N]: ");
}

/* "1,3 4-6" -> selection. Returns 0, or -EINVAL with a message in why. */
static int tty_parse_numbers(const char *s, const struct approval_card *c, unsigned char *sel,
			     char *why, size_t whylen)
{
	memset(sel, 0, c->n_files);
	int any = 0;
	while (*s) {
		if (*s == ',' || *s == ' ') {
			s++;
			continue;
		}
		char *end;
		if (!isdigit((unsigned char)*s))
			goto bad;
		unsigned long lo = strtoul(s, &end, 10), hi = lo;
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				goto bad;
			hi = strtoul(end + 1, &end, 10);
		}
		if (lo < 1 || hi < lo || hi > c->n_files) {
			snprintf(why, whylen, "files are numbered 1 to %zu\n", c->n_files);
			return -EINVAL;
		}
		for (unsigned long i = lo; i <= hi; i++) {
			if (c->files[i - 1].conflict) {
				snprintf(why, whylen, "file %lu is a conflict and cannot be applied\n", i);
				return -EINVAL;
			}
			sel[i - 1] = 1;
			any = 1;
		}
		s = end;
	}
	if (any)
		return 0;
bad:
	snprintf(why, whylen, "not understood\n");
	return -EINVAL;
}

static void tty_answer(struct tty_ask *t, char *ans)
{
	const struct approval_card *c = t->a->cur->card;
	struct approval_decision d;
	char why[160] = "not understood\n";
	/* Trim and lowercase: "  Y \r" is "y". */
	while (isspace((unsigned char)*ans))
		ans++;
	size_t n = strlen(ans);
	while (n && isspace((unsigned char)ans[n - 1]))
		ans[--n] = 0;
	for (char *p = ans; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!*ans || !strcmp(ans, "n") || !strcmp(ans, "no")) {
		tty_deny(t, "the user said no");
		return;
	}
	memset(&d, 0, sizeof(d));
	d.decider = "ask";
	d.approved = 1;
	d.scope = APPROVAL_SCOPE_CALL;
	if (!strcmp(ans, "y") || !strcmp(ans, "yes")) {
		snprintf(d.reason, sizeof(d.reason), "approved by the user on the terminal");
		if (c->kind == APPROVAL_KIND_CHANGES) {
			size_t ok = 0;
			for (size_t i = 0; i < c->n_files; i++)
				ok += (t->selected[i] = !c->files[i].conflict);
			if (c->n_files && !ok) {
				tty_deny(t, "every file is a conflict: nothing to apply");
				return;
			}
			d.selected = t->selected;
		}
		tty_end(t, &d);
		return;
	}
	if (c->kind == APPROVAL_KIND_TOOL && c->offer_tool_scope &&
	    (!strcmp(ans, "a") || !strcmp(ans, "always"))) {
		d.scope = APPROVAL_SCOPE_TOOL;
		snprintf(d.reason, sizeof(d.reason), "approved by the user for the rest of the run");
		tty_end(t, &d);
		return;
	}
	if (tty_several(c) && tty_parse_numbers(ans, c, t->selected, why, sizeof(why)) == 0) {
		size_t k = 0;
		for (size_t i = 0; i < c->n_files; i++)
			k += t->selected[i];
		snprintf(d.reason, sizeof(d.reason), "approved by the user for %zu of %zu files", k,
			 c->n_files);
		d.selected = t->selected;
		tty_end(t, &d);
		return;
	}
	if (++t->tries >= TTY_TRIES_MAX) {
		tty_deny(t, "no usable answer");
		return;
	}
	tty_say(t, why);
	tty_question(t);
}

static void tty_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)hint;
	struct tty_ask *t = h->data;
	*b = uv_buf_init(t->rbuf, sizeof(t->rbuf));
}

static void tty_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct tty_ask *t = s->data;
	if (t->done || n == 0)
		return;
	if (n < 0) {
		tty_deny(t, "the terminal closed before an answer");
		return;
	}
	for (ssize_t i = 0; i < n && !t->done; i++) {
		char ch = b->base[i];
		if (ch == '\n' || ch == '\r') {
			/* A CR LF pair is one line: an empty one after CR is skipped. */
			if (ch == '\n' && i > 0 && b->base[i - 1] == '\r')
				continue;
			t->line[t->len] = 0;
			int over = t->overlong;
			t->len = 0;
			t->overlong = 0;
			if (over) {
				tty_say(t, "answer too long\n");
				tty_question(t);
			} else {
				tty_answer(t, t->line);
			}
		} else if (t->len + 1 < sizeof(t->line)) {
			t->line[t->len++] = ch;
		} else {
			t->overlong = 1;
		}
	}
}

static void tty_on_timeout(uv_timer_t *h)
{
	struct tty_ask *t = h->data;
	char why[96];
	unsigned s = t->a->timeout_ms / 1000;
	snprintf(why, sizeof(why), "no answer within %u s", s ? s : 1);
	tty_say(t, "\n");
	tty_deny(t, why);
}

static void tty_abort(struct approval *a)
{
	struct tty_ask *t = a->active;
	if (!t || t->done)
		return;
	t->done = 1;
	tty_say(t, "\n-> denied (the run is ending)\n");
	tty_close(t);
}

int approval_tty_start(struct approval *a, struct err *e)
{
	const struct approval_card *c = a->cur->card;
	int fd = open(a->tty_path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, -errno, "cannot open the terminal %s to ask: %s (hint: --approver CMD "
			       "or --approve deny for runs without a terminal)", a->tty_path,
			       strerror(errno));
	if (!isatty(fd)) {
		close(fd);
		return err_set(e, -ENOTTY, "%s is not a terminal", a->tty_path);
	}
	char *card = approval_card_render(c);
	struct tty_ask *t = calloc(1, sizeof(*t));
	if (t && c->n_files)
		t->selected = calloc(c->n_files, 1);
	if (!card || !t || (c->n_files && !t->selected)) {
		close(fd);
		free(card);
		if (t)
			free(t->selected);
		free(t);
		return err_set(e, -ENOMEM, "out of memory showing the card");
	}
	/* Typeahead from before the card was shown answers nothing. */
	tcflush(fd, TCIFLUSH);
	t->a = a;
	int rc = uv_tty_init(a->loop, &t->tty, fd, 1);
	if (rc < 0) {
		close(fd);
		free(card);
		free(t->selected);
		free(t);
		return err_set(e, -ENOTTY, "cannot use the terminal %s: %s", a->tty_path, uv_strerror(rc));
	}
	uv_timer_init(a->loop, &t->timer);
	t->tty.data = t->timer.data = t;
	t->handles = 2;
	a->handles_open += 2;
	a->active = t;
	a->abort_active = tty_abort;
	tty_say(t, card);
	free(card);
	tty_question(t);
	uv_read_start((uv_stream_t *)&t->tty, tty_alloc, tty_on_read);
	uv_timer_start(&t->timer, tty_on_timeout, a->timeout_ms, 0);
	return 0;
}
