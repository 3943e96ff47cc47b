/* The neutral conversation model (see llm.h): what the agent builds up turn
 * by turn and each provider module serializes to its own wire format. Every
 * adder copies its input, so the agent never has to keep a reply alive for
 * the conversation's sake. */
#include "llm/llm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONV_MSGS_MAX 100000

struct llm_conv *llm_conv_new(const char *system)
{
	struct llm_conv *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (system && !(c->system = strdup(system))) {
		free(c);
		return NULL;
	}
	return c;
}

static void conv_call_clear(struct llm_tool_call *k)
{
	free(k->id);
	free(k->name);
	json_decref(k->arguments);
	free(k->raw_arguments);
	free(k->error);
}

static void conv_msg_clear(struct llm_message *m)
{
	free(m->text);
	for (size_t i = 0; i < m->ncalls; i++)
		conv_call_clear(&m->calls[i]);
	free(m->calls);
	free(m->tool_call_id);
}

void llm_conv_free(struct llm_conv *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		conv_msg_clear(&c->msgs[i]);
	free(c->msgs);
	free(c->system);
	free(c);
}

static struct llm_message *conv_push(struct llm_conv *c, struct err *e)
{
	if (c->n >= CONV_MSGS_MAX) {
		err_set(e, -E2BIG, "the conversation has more than %d messages", CONV_MSGS_MAX);
		return NULL;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct llm_message *m = realloc(c->msgs, cap * sizeof(*m));
		if (!m) {
			err_set(e, -ENOMEM, "out of memory");
			return NULL;
		}
		c->msgs = m;
		c->cap = cap;
	}
	struct llm_message *m = &c->msgs[c->n];
	memset(m, 0, sizeof(*m));
	return m;
}

static int conv_dup(char **dst, const char *s)
{
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

int llm_conv_add_user(struct llm_conv *c, const char *text, struct err *e)
{
	struct llm_message *m = conv_push(c, e);
	if (!m)
		return e ? e->code : -ENOMEM;
	m->role = LLM_ROLE_USER;
	if (conv_dup(&m->text, text ? text : "") < 0)
		return err_set(e, -ENOMEM, "out of memory");
	c->n++;
	return 0;
}

int llm_conv_add_assistant(struct llm_conv *c, const char *text,
			   const struct llm_tool_call *calls, size_t ncalls, struct err *e)
{
	struct llm_message *m = conv_push(c, e);
	if (!m)
		return e ? e->code : -ENOMEM;
	m->role = LLM_ROLE_ASSISTANT;
	int rc = conv_dup(&m->text, text);
	if (rc == 0 && ncalls > 0) {
		m->calls = calloc(ncalls, sizeof(*m->calls));
		rc = m->calls ? 0 : -ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < ncalls; i++) {
		struct llm_tool_call *d = &m->calls[i];
		const struct llm_tool_call *s = &calls[i];
		m->ncalls++;
		rc = conv_dup(&d->id, s->id ? s->id : "");
		if (rc == 0)
			rc = conv_dup(&d->name, s->name ? s->name : "");
		if (rc == 0)
			rc = conv_dup(&d->raw_arguments, s->raw_arguments);
		if (rc == 0)
			rc = conv_dup(&d->error, s->error);
		if (rc == 0 && s->arguments && !(d->arguments = json_deep_copy(s->arguments)))
			rc = -ENOMEM;
	}
	if (rc < 0) {
		conv_msg_clear(m);
		return err_set(e, -ENOMEM, "out of memory");
	}
	c->n++;
	return 0;
}

int llm_conv_add_tool_result(struct llm_conv *c, const char *tool_call_id, const char *content,
			     int is_error, struct err *e)
{
	if (!tool_call_id || !*tool_call_id)
		return err_set(e, -EINVAL, "a tool result needs the id of its tool call");
	struct llm_message *m = conv_push(c, e);
	if (!m)
		return e ? e->code : -ENOMEM;
	m->role = LLM_ROLE_TOOL;
	m->is_error = !!is_error;
	if (conv_dup(&m->tool_call_id, tool_call_id) < 0 ||
	    conv_dup(&m->text, content ? content : "") < 0) {
		conv_msg_clear(m);
		return err_set(e, -ENOMEM, "out of memory");
	}
	c->n++;
	return 0;
}

void llm_reply_free(struct llm_reply *r)
{
	if (!r)
		return;
	free(r->text);
	for (size_t i = 0; i < r->ncalls; i++)
		conv_call_clear(&r->calls[i]);
	free(r->calls);
	free(r);
}
