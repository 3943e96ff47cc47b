/* The external approver (`--approver CMD`), for CI bots and teams.
 *
 * The command is started with uv_spawn (its own argv, no shell), in a session
 * of its own so that a hung approver and anything it started die together.
 * It gets the card as ONE JSON object (one line) on stdin and answers on
 * stdout with one JSON object:
 *
 *   {"decision": "approve" | "deny", "reason": "...", "scope": "call" | "tool",
 *    "files": ["path", ...], "effect_sha256": "..."}
 *
 * Only "decision" is required. "files" selects among a changes card's files
 * (absent: all but conflicts); "effect_sha256", when given, must be the card's
 * own. The approver is hostile until proven otherwise: its output is capped,
 * and no answer in time, a crash, a non-zero exit, or anything that is not
 * exactly such an object means deny, with the reason in the decision. */
#include "approval/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

struct ext_run {
	struct approval *a;
	uv_process_t proc;
	uv_pipe_t in, out;
	uv_timer_t timer;
	uv_write_t wreq;
	char *card;          /* the JSON line being written */
	struct buf outbuf;
	int handles;
	int done;            /* the decision was handed over */
	int exited, eof;
	int64_t exit_status;
	int term_signal;
	unsigned char *selected;
	char rbuf[4096];
};

static void ext_on_closed(uv_handle_t *h)
{
	struct ext_run *x = h->data;
	struct approval *a = x->a;
	if (--x->handles == 0) {
		free(x->card);
		buf_free(&x->outbuf);
		free(x->selected);
		free(x);
	}
	approval_handle_closed(a);
}

static void ext_close_handle(struct ext_run *x, uv_handle_t *h)
{
	(void)x; /* h->data is x: the close callback finds it there */
	if (!uv_is_closing(h))
		uv_close(h, ext_on_closed);
}

/* Kills the approver's whole session; its process handle is closed on exit. */
static void ext_stop(struct ext_run *x)
{
	uv_timer_stop(&x->timer);
	ext_close_handle(x, (uv_handle_t *)&x->timer);
	ext_close_handle(x, (uv_handle_t *)&x->in);
	ext_close_handle(x, (uv_handle_t *)&x->out);
	if (!x->exited) {
		if (kill(-x->proc.pid, SIGKILL) < 0)
			uv_process_kill(&x->proc, SIGKILL);
	} else {
		ext_close_handle(x, (uv_handle_t *)&x->proc);
	}
}

static void ext_end(struct ext_run *x, struct approval_decision *d)
{
	x->done = 1;
	ext_stop(x);
	approval_finish(x->a, d);
}

__attribute__((format(printf, 2, 3)))
static void ext_deny(struct ext_run *x, const char *fmt, ...)
{
	struct approval_decision d;
	char why[APPROVAL_REASON_MAX - 32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	approval_deny_init(x->a, &d, "approver", "denied: the approver %s", why);
	ext_end(x, &d);
}

/* The approver's own words, safe for a one-line reason. */
static void ext_copy_reason(char *dst, size_t len, const char *s)
{
	size_t o = 0;
	for (; s && *s && o + 1 < len; s++)
		dst[o++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
	dst[o] = 0;
}

static int ext_select_files(struct ext_run *x, const json_t *files)
{
	const struct approval_card *c = x->a->cur->card;
	if (!files) {
		for (size_t i = 0; i < c->n_files; i++)
			x->selected[i] = !c->files[i].conflict;
		return 0;
	}
	if (!json_is_array(files))
		return -EINVAL;
	memset(x->selected, 0, c->n_files);
	size_t k;
	json_t *f;
	json_array_foreach(files, k, f) {
		const char *p = json_string_value(f);
		size_t i = 0;
		while (p && i < c->n_files && strcmp(c->files[i].path, p))
			i++;
		if (!p || i == c->n_files || c->files[i].conflict)
			return -ENOENT;
		x->selected[i] = 1;
	}
	return 0;
}

/* Both the exit and the end of stdout are in: judge the answer. */
static void ext_judge(struct ext_run *x)
{
	const struct approval_card *c = x->a->cur->card;
	if (x->term_signal) {
		ext_deny(x, "was killed by signal %d", x->term_signal);
		return;
	}
	if (x->exit_status) {
		ext_deny(x, "exited with status %lld", (long long)x->exit_status);
		return;
	}
	json_error_t je;
	json_t *o = json_loadb((const char *)x->outbuf.data, x->outbuf.len, JSON_REJECT_DUPLICATES, &je);
	const char *dec = json_string_value(json_object_get(o, "decision"));
	const json_t *scope = json_object_get(o, "scope");
	const json_t *hash = json_object_get(o, "effect_sha256");
	const json_t *reason = json_object_get(o, "reason");
	struct approval_decision d;
	memset(&d, 0, sizeof(d));
	d.decider = "approver";
	if (!json_is_object(o) || !dec || (strcmp(dec, "approve") && strcmp(dec, "deny")))
		ext_deny(x, "gave no valid answer (want one JSON object with \"decision\": "
			 "\"approve\" or \"deny\")");
	else if (reason && !json_is_string(reason))
		ext_deny(x, "gave a \"reason\" that is not a string");
	else if (hash && (!json_is_string(hash) || strcmp(json_string_value(hash), c->effect_sha256)))
		ext_deny(x, "answered for another effect (effect_sha256 is not this card's)");
	else if (scope && (!json_is_string(scope) ||
			   (strcmp(json_string_value(scope), "call") &&
			    (strcmp(json_string_value(scope), "tool") || c->kind != APPROVAL_KIND_TOOL ||
			     !c->offer_tool_scope))))
		ext_deny(x, "asked for a scope the card does not offer");
	else if (!strcmp(dec, "deny")) {
		char r[160];
		ext_copy_reason(r, sizeof(r), reason ? json_string_value(reason) : "no reason given");
		approval_deny_init(x->a, &d, "approver", "denied by the approver: %s", r);
		ext_end(x, &d);
	} else if (c->kind == APPROVAL_KIND_CHANGES &&
		   ext_select_files(x, json_object_get(o, "files")) < 0)
		ext_deny(x, "selected files that are not on the card, or conflicts");
	else {
		char r[160];
		ext_copy_reason(r, sizeof(r), reason ? json_string_value(reason) : "no reason given");
		d.approved = 1;
		d.scope = scope && !strcmp(json_string_value(scope), "tool") ? APPROVAL_SCOPE_TOOL :
			  APPROVAL_SCOPE_CALL;
		snprintf(d.reason, sizeof(d.reason), "approved by the approver: %s", r);
		d.selected = c->kind == APPROVAL_KIND_CHANGES ? x->selected : NULL;
		ext_end(x, &d);
	}
	json_decref(o);
}

static void ext_on_exit(uv_process_t *p, int64_t status, int sig)
{
	struct ext_run *x = p->data;
	x->exited = 1;
	x->exit_status = status;
	x->term_signal = sig;
	if (x->done) {
		ext_close_handle(x, (uv_handle_t *)&x->proc);
		return;
	}
	if (x->eof)
		ext_judge(x);
}

static void ext_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)hint;
	struct ext_run *x = h->data;
	*b = uv_buf_init(x->rbuf, sizeof(x->rbuf));
}

static void ext_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct ext_run *x = s->data;
	if (x->done || n == 0)
		return;
	if (n < 0) {
		x->eof = 1;
		uv_read_stop(s);
		if (x->exited)
			ext_judge(x);
		return;
	}
	if (buf_append(&x->outbuf, b->base, (size_t)n) < 0)
		ext_deny(x, "wrote more than %u bytes", APPROVAL_APPROVER_OUT_MAX);
}

static void ext_on_written(uv_write_t *w, int status)
{
	struct ext_run *x = w->data;
	(void)status; /* EPIPE: the approver decided without reading; its answer counts */
	ext_close_handle(x, (uv_handle_t *)&x->in);
}

static void ext_on_timeout(uv_timer_t *t)
{
	struct ext_run *x = t->data;
	unsigned s = x->a->timeout_ms / 1000;
	ext_deny(x, "gave no decision within %u s", s ? s : 1);
}

static void ext_abort(struct approval *a)
{
	struct ext_run *x = a->active;
	if (!x || x->done)
		return;
	x->done = 1;
	ext_stop(x);
}

int approval_ext_start(struct approval *a, struct err *e)
{
	const struct approval_card *c = a->cur->card;
	struct ext_run *x = calloc(1, sizeof(*x));
	json_t *j = approval_card_to_json(c);
	char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (x && c->n_files)
		x->selected = calloc(c->n_files, 1);
	if (!x || !line || (c->n_files && !x->selected)) {
		if (x)
			free(x->selected);
		free(x);
		free(line);
		return err_set(e, -ENOMEM, "out of memory writing the card");
	}
	size_t n = strlen(line);
	char *nl = realloc(line, n + 2);
	if (!nl) {
		free(line);
		free(x->selected);
		free(x);
		return err_set(e, -ENOMEM, "out of memory writing the card");
	}
	memcpy(nl + n, "\n", 2);
	x->card = nl;
	x->a = a;
	buf_init(&x->outbuf, APPROVAL_APPROVER_OUT_MAX);
	uv_pipe_init(a->loop, &x->in, 0);
	uv_pipe_init(a->loop, &x->out, 0);
	uv_timer_init(a->loop, &x->timer);
	x->in.data = x->out.data = x->timer.data = x->proc.data = x->wreq.data = x;
	x->handles = 4;   /* the process handle needs closing even when spawn fails */
	a->handles_open += 4;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&x->in },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->out },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t po = {
		.exit_cb = ext_on_exit,
		.file = a->argv[0],
		.args = a->argv,
		.flags = UV_PROCESS_DETACHED,
		.stdio_count = 3,
		.stdio = stdio,
	};
	int rc = uv_spawn(a->loop, &x->proc, &po);
	if (rc < 0) {
		err_set(e, -ECHILD, "cannot start the approver '%s': %s (hint: check --approver and PATH)",
			a->argv[0], uv_strerror(rc));
		x->done = x->exited = 1;
		ext_stop(x);
		return e ? e->code : -ECHILD;
	}
	a->active = x;
	a->abort_active = ext_abort;
	uv_buf_t b = uv_buf_init(x->card, (unsigned)(n + 1));
	if (uv_write(&x->wreq, (uv_stream_t *)&x->in, &b, 1, ext_on_written) < 0)
		ext_close_handle(x, (uv_handle_t *)&x->in);
	uv_read_start((uv_stream_t *)&x->out, ext_alloc, ext_on_read);
	uv_timer_start(&x->timer, ext_on_timeout, a->timeout_ms, 0);
	return 0;
}
