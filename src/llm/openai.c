/* OpenAI chat completions with tools, the dialect OpenAI, Ollama's /v1,
 * llama.cpp's server and vLLM all speak. Request: POST {base}/chat/completions
 * with the system prompt as the first message, arguments as JSON strings, and
 * results as "tool" messages. Replies: one chat.completion object, or a stream
 * of chat.completion.chunk events where text arrives as content deltas and each
 * tool call as fragments keyed by its index (the id and name in the first,
 * arguments spread over many), usage in a last chunk with no choices, and
 * `data: [DONE]` at the end. */
#include "llm/wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *openai_args_string(const struct llm_tool_call *k)
{
	if (k->raw_arguments)
		return json_string(k->raw_arguments);
	if (k->arguments) {
		char *s = json_dumps(k->arguments, JSON_COMPACT);
		json_t *v = s ? json_string(s) : NULL;
		free(s);
		return v;
	}
	return json_string("{}");
}

static json_t *openai_message(const struct llm_message *m)
{
	json_t *o = NULL;
	switch (m->role) {
	case LLM_ROLE_USER:
		o = json_pack("{s:s,s:s}", "role", "user", "content", m->text ? m->text : "");
		break;
	case LLM_ROLE_ASSISTANT: {
		o = json_pack("{s:s,s:o}", "role", "assistant", "content",
			      m->text && *m->text ? json_string(m->text) : json_null());
		if (!o || m->ncalls == 0)
			break;
		json_t *calls = json_array();
		json_object_set_new(o, "tool_calls", calls);
		for (size_t i = 0; i < m->ncalls; i++) {
			const struct llm_tool_call *k = &m->calls[i];
			json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:o}}", "id",
							       k->id ? k->id : "", "type", "function",
							       "function", "name", k->name ? k->name : "",
							       "arguments", openai_args_string(k)));
		}
		if (json_array_size(calls) != m->ncalls) {
			json_decref(o);
			o = NULL;
		}
		break;
	}
	case LLM_ROLE_TOOL: {
		/* Chat completions has no error flag: say it in the content. */
		char *content = NULL;
		if (m->is_error && asprintf(&content, "[tool error] %s", m->text ? m->text : "") < 0)
			return NULL;
		o = json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", m->tool_call_id,
			      "content", content ? content : (m->text ? m->text : ""));
		free(content);
		break;
	}
	}
	return o;
}

static json_t *openai_body(const struct llm_config *cfg, const struct llm_conv *conv,
			   const struct llm_tool *tools, size_t ntools, struct err *e)
{
	json_t *msgs = json_array();
	json_t *body = json_pack("{s:s,s:o,s:b}", "model", cfg->model, "messages", msgs, "stream",
				 cfg->stream);
	if (!body)
		goto oom;
	if (conv->system && *conv->system &&
	    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content",
						  conv->system)) < 0)
		goto oom;
	for (size_t i = 0; i < conv->n; i++)
		if (json_array_append_new(msgs, openai_message(&conv->msgs[i])) < 0)
			goto oom;
	if (ntools > 0) {
		json_t *arr = json_array();
		json_object_set_new(body, "tools", arr);
		for (size_t i = 0; i < ntools; i++) {
			json_t *schema = tools[i].input_schema ? json_incref(tools[i].input_schema)
							       : json_pack("{s:s}", "type", "object");
			json_t *fn = json_pack("{s:s,s:o}", "name", tools[i].name, "parameters", schema);
			if (fn && tools[i].description)
				json_object_set_new(fn, "description", json_string(tools[i].description));
			if (json_array_append_new(arr, json_pack("{s:s,s:o}", "type", "function",
								 "function", fn)) < 0)
				goto oom;
		}
	}
	if (cfg->stream)
		json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
	if (cfg->max_tokens > 0)
		json_object_set_new(body, "max_tokens", json_integer(cfg->max_tokens));
	return body;
oom:
	json_decref(body);
	err_set(e, -ENOMEM, "out of memory while building the request");
	return NULL;
}

static void openai_usage(struct llm_acc *a, const json_t *root)
{
	const json_t *u = json_object_get(root, "usage");
	const json_t *p = json_object_get(u, "prompt_tokens");
	const json_t *c = json_object_get(u, "completion_tokens");
	if (json_is_integer(p))
		a->input_tokens = (long)json_integer_value(p);
	if (json_is_integer(c))
		a->output_tokens = (long)json_integer_value(c);
	if (json_is_string(json_object_get(root, "model")))
		llm_json_copy_str(root, "model", a->model, sizeof(a->model));
}

/* A server-reported error inside a 200 body or a stream. */
static int openai_error_obj(struct llm_acc *a, const json_t *root)
{
	const json_t *err = json_object_get(root, "error");
	if (!err || json_is_null(err))
		return 0;
	char msg[LLM_SERVER_MSG_MAX] = "";
	const json_t *m = json_is_object(err) ? json_object_get(err, "message") : err;
	if (json_is_string(m))
		llm_text_line(msg, sizeof(msg), json_string_value(m), json_string_length(m),
			      a->lim.api_key);
	return llm_acc_fail(a, LLM_ERR_MALFORMED, "the server reported an error: %s",
			    msg[0] ? msg : "(no message)");
}

/* A fragment (stream) or a whole call (body) into the call with index. */
static void openai_call(struct llm_acc *a, const json_t *tc, long index)
{
	if (!json_is_object(tc)) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "a tool call in the reply is not an object");
		return;
	}
	const json_t *ix = json_object_get(tc, "index");
	if (json_is_integer(ix))
		index = (long)json_integer_value(ix);
	struct llm_acc_call *c = llm_acc_call(a, index);
	if (!c)
		return;
	if (!c->id[0])
		llm_json_copy_str(tc, "id", c->id, sizeof(c->id));
	const json_t *fn = json_object_get(tc, "function");
	const json_t *name = json_object_get(fn, "name");
	if (json_is_string(name) && json_string_length(name) > 0) {
		/* The name comes whole in the first fragment; some servers repeat it. */
		size_t have = strlen(c->name), n = json_string_length(name);
		if (strcmp(c->name, json_string_value(name)) && have + n < sizeof(c->name))
			memcpy(c->name + have, json_string_value(name), n + 1);
	}
	const json_t *args = json_object_get(fn, "arguments");
	if (json_is_string(args)) {
		llm_acc_args(a, c, json_string_value(args), json_string_length(args));
	} else if (json_is_object(args)) {
		/* Ollama-style servers may send an object: keep its text. */
		char *s = json_dumps(args, JSON_COMPACT);
		if (s)
			llm_acc_args(a, c, s, strlen(s));
		free(s);
	} else if (args && !json_is_null(args)) {
		llm_acc_args(a, c, "\x01", 1);   /* surely not JSON: reported per call */
	}
}

static void openai_choice(struct llm_acc *a, const json_t *choice, const char *part)
{
	const json_t *msg = json_object_get(choice, part);
	if (msg && !json_is_object(msg)) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "the reply's '%s' is not an object", part);
		return;
	}
	const json_t *content = json_object_get(msg, "content");
	if (json_is_string(content))
		llm_acc_text(a, json_string_value(content), json_string_length(content));
	const json_t *calls = json_object_get(msg, "tool_calls");
	if (json_is_array(calls)) {
		size_t i;
		const json_t *tc;
		json_array_foreach(calls, i, tc)
			openai_call(a, tc, (long)i);
	}
	const json_t *fr = json_object_get(choice, "finish_reason");
	if (json_is_string(fr))
		llm_acc_stop(a, json_string_value(fr));
}

static int openai_parse(struct llm_acc *a, const char *p, size_t n)
{
	enum llm_error_kind kind;
	struct err e = { 0 };
	json_t *root = llm_json_parse(p, n, a->lim.depth_max, &kind, &e);
	if (!root)
		return llm_acc_fail(a, kind, "the reply is not valid JSON: %s", e.msg);
	int rc = openai_error_obj(a, root);
	const json_t *choices = json_object_get(root, "choices");
	if (rc == 0 && !json_is_object(root))
		rc = llm_acc_fail(a, LLM_ERR_MALFORMED, "the reply is not a JSON object");
	else if (rc == 0 && (!json_is_array(choices) || json_array_size(choices) == 0))
		rc = llm_acc_fail(a, LLM_ERR_MALFORMED, "the reply has no 'choices'");
	if (rc == 0) {
		openai_choice(a, json_array_get(choices, 0), "message");
		openai_usage(a, root);
		a->done = 1;
	}
	json_decref(root);
	return a->failed ? -EBADMSG : 0;
}

static void openai_event(struct llm_acc *a, const char *event, const char *data, size_t n)
{
	(void)event;
	if (a->failed)
		return;
	if (n == 6 && !memcmp(data, "[DONE]", 6)) {
		a->done = 1;
		return;
	}
	enum llm_error_kind kind;
	struct err e = { 0 };
	json_t *root = llm_json_parse(data, n, a->lim.depth_max, &kind, &e);
	if (!root) {
		llm_acc_fail(a, kind, "a streamed chunk is not valid JSON: %s", e.msg);
		return;
	}
	if (!json_is_object(root)) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "a streamed chunk is not a JSON object");
	} else if (openai_error_obj(a, root) == 0) {
		const json_t *choices = json_object_get(root, "choices");
		if (json_array_size(choices) > 0)
			openai_choice(a, json_array_get(choices, 0), "delta");
		openai_usage(a, root);
	}
	json_decref(root);
}

const struct llm_proto llm_proto_openai = {
	.path = "/chat/completions",
	.body = openai_body,
	.parse = openai_parse,
	.event = openai_event,
};
