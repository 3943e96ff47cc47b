/* The reply accumulator: both providers, streamed or not, pour what they
 * parse into one of these, and llm_acc_finish() turns it into the neutral
 * llm_reply. This is where a tool call's argument text becomes a JSON object
 * or a per-call error the model can be told about, where the stop reason is
 * mapped, where an empty reply becomes a failure, and where the key is
 * redacted from anything the server echoed. */
#include "llm/wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llm_acc_init(struct llm_acc *a, const struct llm_limits *lim)
{
	memset(a, 0, sizeof(*a));
	a->lim = *lim;
	buf_init(&a->text, lim->body_max);
	a->input_tokens = a->output_tokens = -1;
	a->text_block = -1;
}

void llm_acc_free(struct llm_acc *a)
{
	buf_free(&a->text);
	for (size_t i = 0; i < a->ncalls; i++) {
		buf_free(&a->calls[i].args);
		json_decref(a->calls[i].start_input);
	}
	free(a->calls);
	a->calls = NULL;
	a->ncalls = 0;
}

int llm_acc_fail(struct llm_acc *a, enum llm_error_kind kind, const char *fmt, ...)
{
	if (a->failed)
		return -EBADMSG;
	a->failed = 1;
	a->fail_kind = kind;
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote the server: one line, key-free. */
	llm_text_line(a->fail.msg, sizeof(a->fail.msg), msg, strlen(msg), a->lim.api_key);
	a->fail.code = kind == LLM_ERR_TOO_LARGE ? -EMSGSIZE : -EBADMSG;
	return -EBADMSG;
}

int llm_acc_text(struct llm_acc *a, const char *p, size_t n)
{
	if (a->failed || n == 0)
		return a->failed ? -EBADMSG : 0;
	if (buf_append(&a->text, p, n) < 0)
		return llm_acc_fail(a, LLM_ERR_TOO_LARGE,
				    "the reply's text is larger than the %zu-byte cap", a->lim.body_max);
	return 0;
}

struct llm_acc_call *llm_acc_call(struct llm_acc *a, long index)
{
	if (a->failed)
		return NULL;
	for (size_t i = 0; i < a->ncalls; i++)
		if (a->calls[i].index == index)
			return &a->calls[i];
	if (a->ncalls >= LLM_CALLS_MAX) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "the reply has more than %d tool calls",
			     LLM_CALLS_MAX);
		return NULL;
	}
	struct llm_acc_call *v = realloc(a->calls, (a->ncalls + 1) * sizeof(*v));
	if (!v) {
		llm_acc_fail(a, LLM_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	a->calls = v;
	struct llm_acc_call *c = &a->calls[a->ncalls++];
	memset(c, 0, sizeof(*c));
	c->index = index;
	buf_init(&c->args, a->lim.body_max);
	return c;
}

int llm_acc_args(struct llm_acc *a, struct llm_acc_call *c, const char *p, size_t n)
{
	if (a->failed)
		return -EBADMSG;
	if (n > 0 && buf_append(&c->args, p, n) < 0)
		return llm_acc_fail(a, LLM_ERR_TOO_LARGE,
				    "a tool call's arguments are larger than the %zu-byte cap",
				    a->lim.body_max);
	return 0;
}

void llm_acc_stop(struct llm_acc *a, const char *raw)
{
	if (!raw || !*raw)
		return;
	llm_text_line(a->stop_raw, sizeof(a->stop_raw), raw, strlen(raw), a->lim.api_key);
	a->has_stop = 1;
}

static enum llm_stop reply_stop_map(const char *raw, size_t ncalls)
{
	static const struct {
		const char *word;
		enum llm_stop stop;
	} map[] = {
		{ "stop", LLM_STOP_END },           { "end_turn", LLM_STOP_END },
		{ "stop_sequence", LLM_STOP_END },  { "tool_calls", LLM_STOP_TOOL_CALLS },
		{ "tool_use", LLM_STOP_TOOL_CALLS }, { "function_call", LLM_STOP_TOOL_CALLS },
		{ "length", LLM_STOP_MAX_TOKENS },  { "max_tokens", LLM_STOP_MAX_TOKENS },
	};
	if (!raw[0])
		return ncalls ? LLM_STOP_TOOL_CALLS : LLM_STOP_END;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(raw, map[i].word))
			return map[i].stop;
	return LLM_STOP_OTHER;
}

/* One accumulated call into a reply call: the arguments must be an object. */
static int reply_call(struct llm_acc *a, struct llm_acc_call *s, size_t i,
		      struct llm_tool_call *d)
{
	char tmp[LLM_ID_MAX];
	/* Ids and names are echoed into messages and back to the server. */
	llm_text_line(tmp, sizeof(tmp), s->id, strlen(s->id), a->lim.api_key);
	if (!tmp[0])
		snprintf(tmp, sizeof(tmp), "call_%zu", i);
	d->id = strdup(tmp);
	char name[LLM_NAME_MAX];
	llm_text_line(name, sizeof(name), s->name, strlen(s->name), a->lim.api_key);
	d->name = strdup(name);
	size_t n = 0;
	d->raw_arguments = (char *)buf_steal(&s->args, &n);
	if (d->raw_arguments && strlen(d->raw_arguments) != n) {
		/* A NUL inside the arguments: never valid JSON text for a call. */
		d->raw_arguments[0] = '\x01';
		d->raw_arguments[1] = '\0';
	}
	if (!d->raw_arguments) {
		/* Nothing streamed: Anthropic's start input, else no arguments. */
		d->raw_arguments = s->start_input ? json_dumps(s->start_input, JSON_COMPACT | JSON_ENCODE_ANY)
						  : strdup("{}");
	}
	if (!d->id || !d->name || !d->raw_arguments || llm_redact(&d->raw_arguments, a->lim.api_key) < 0)
		return -ENOMEM;
	char why[ERR_MSG_MAX] = "";
	size_t len = strlen(d->raw_arguments);
	size_t sp = 0;
	while (sp < len && strchr(" \t\r\n", d->raw_arguments[sp]))
		sp++;
	if (!d->name[0]) {
		snprintf(why, sizeof(why), "the tool call has no name");
	} else if (sp == len) {
		/* Some servers send "" for a tool without parameters. */
		d->arguments = json_object();
	} else {
		enum llm_error_kind kind;
		struct err e = { 0 };
		d->arguments = llm_json_parse(d->raw_arguments, len, a->lim.depth_max, &kind, &e);
		if (!d->arguments)
			snprintf(why, sizeof(why), "the arguments of tool call '%.64s' are not valid JSON (%.400s)",
				 d->name, e.msg);
		else if (!json_is_object(d->arguments))
			snprintf(why, sizeof(why), "the arguments of tool call '%.64s' are not a JSON object",
				 d->name);
	}
	if (why[0]) {
		json_decref(d->arguments);
		d->arguments = NULL;
		d->error = strdup(why);
		if (!d->error)
			return -ENOMEM;
	} else if (!d->arguments) {
		return -ENOMEM;
	}
	return 0;
}

int llm_acc_finish(struct llm_acc *a, struct llm_reply **out, struct llm_failure *f)
{
	*out = NULL;
	if (a->failed) {
		f->kind = a->fail_kind;
		f->e = a->fail;
		return a->fail.code;
	}
	struct llm_reply *r = calloc(1, sizeof(*r));
	int rc = r ? 0 : -ENOMEM;
	if (rc == 0 && a->ncalls > 0) {
		r->calls = calloc(a->ncalls, sizeof(*r->calls));
		rc = r->calls ? 0 : -ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < a->ncalls; i++) {
		r->ncalls++;
		rc = reply_call(a, &a->calls[i], i, &r->calls[i]);
		if (r->calls[i].error)
			r->bad_calls++;
	}
	if (rc == 0) {
		r->text = (char *)buf_steal(&a->text, &r->text_len);
		rc = llm_redact(&r->text, a->lim.api_key);
		if (r->text)
			r->text_len = strlen(r->text) < r->text_len ? strlen(r->text) : r->text_len;
	}
	if (rc < 0) {
		llm_reply_free(r);
		f->kind = LLM_ERR_INTERNAL;
		return err_set(&f->e, -ENOMEM, "out of memory while reading the model's reply");
	}
	if (r->text_len == 0 && r->ncalls == 0) {
		llm_reply_free(r);
		f->kind = LLM_ERR_EMPTY;
		return err_set(&f->e, -ENODATA,
			       "the model's reply is empty (no text and no tool calls)%s%s",
			       a->has_stop ? "; stop reason: " : "", a->has_stop ? a->stop_raw : "");
	}
	snprintf(r->stop_raw, sizeof(r->stop_raw), "%s", a->stop_raw);
	r->stop = reply_stop_map(a->stop_raw, r->ncalls);
	r->input_tokens = a->input_tokens;
	r->output_tokens = a->output_tokens;
	llm_text_line(r->model, sizeof(r->model), a->model, strlen(a->model), a->lim.api_key);
	*out = r;
	return 0;
}
