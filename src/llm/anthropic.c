/* Anthropic Messages with tool_use / tool_result. Request: POST
 * {base}/v1/messages (the base is taken without the version, as Anthropic's
 * SDKs take it) with x-api-key and anthropic-version headers, the system
 * prompt at the top level, and content blocks; roles must alternate, so
 * consecutive messages of the same wire role (tool results are user content)
 * are merged into one. Replies: one message object, or a stream of
 * message_start, content_block_start / _delta (text_delta, input_json_delta)
 * / _stop per block, message_delta (stop reason, output usage), message_stop,
 * with ping and error events between. */
#include "llm/wire.h"

#include <errno.h>
#include <string.h>

static const char *anthropic_wire_role(enum llm_role r)
{
	return r == LLM_ROLE_ASSISTANT ? "assistant" : "user";
}

static json_t *anthropic_block(const struct llm_message *m, json_t *content)
{
	switch (m->role) {
	case LLM_ROLE_USER:
		if (m->text && *m->text)
			return json_array_append_new(content, json_pack("{s:s,s:s}", "type", "text",
									"text", m->text)) < 0
				       ? NULL
				       : content;
		return content;
	case LLM_ROLE_ASSISTANT:
		if (m->text && *m->text &&
		    json_array_append_new(content, json_pack("{s:s,s:s}", "type", "text", "text",
							     m->text)) < 0)
			return NULL;
		for (size_t i = 0; i < m->ncalls; i++) {
			const struct llm_tool_call *k = &m->calls[i];
			/* input must be an object: unusable arguments go back as {}. */
			json_t *input = k->arguments && json_is_object(k->arguments)
						? json_incref(k->arguments)
						: json_object();
			if (json_array_append_new(content,
						  json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id",
							    k->id ? k->id : "", "name",
							    k->name ? k->name : "", "input", input)) < 0)
				return NULL;
		}
		return content;
	case LLM_ROLE_TOOL: {
		json_t *b = json_pack("{s:s,s:s,s:s}", "type", "tool_result", "tool_use_id",
				      m->tool_call_id, "content", m->text ? m->text : "");
		if (b && m->is_error)
			json_object_set_new(b, "is_error", json_true());
		return json_array_append_new(content, b) < 0 ? NULL : content;
	}
	}
	return NULL;
}

static json_t *anthropic_body(const struct llm_config *cfg, const struct llm_conv *conv,
			      const struct llm_tool *tools, size_t ntools, struct err *e)
{
	json_t *msgs = json_array();
	json_t *body = json_pack("{s:s,s:I,s:o,s:b}", "model", cfg->model, "max_tokens",
				 (json_int_t)cfg->max_tokens, "messages", msgs, "stream", cfg->stream);
	if (!body)
		goto oom;
	if (conv->system && *conv->system)
		json_object_set_new(body, "system", json_string(conv->system));
	json_t *cur = NULL;
	const char *cur_role = NULL;
	for (size_t i = 0; i < conv->n; i++) {
		const char *role = anthropic_wire_role(conv->msgs[i].role);
		if (!cur || strcmp(role, cur_role)) {
			cur = json_array();
			if (json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", role, "content",
								  cur)) < 0)
				goto oom;
			cur_role = role;
		}
		if (!anthropic_block(&conv->msgs[i], cur))
			goto oom;
	}
	/* An empty text turn would be refused ("content must be non-empty"). */
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m) {
		json_t *c = json_object_get(m, "content");
		if (json_array_size(c) == 0)
			json_array_append_new(c, json_pack("{s:s,s:s}", "type", "text", "text", "(empty)"));
	}
	if (ntools > 0) {
		json_t *arr = json_array();
		json_object_set_new(body, "tools", arr);
		for (size_t t = 0; t < ntools; t++) {
			json_t *schema = tools[t].input_schema ? json_incref(tools[t].input_schema)
							       : json_pack("{s:s}", "type", "object");
			json_t *tool = json_pack("{s:s,s:o}", "name", tools[t].name, "input_schema",
						 schema);
			if (tool && tools[t].description)
				json_object_set_new(tool, "description",
						    json_string(tools[t].description));
			if (json_array_append_new(arr, tool) < 0)
				goto oom;
		}
	}
	return body;
oom:
	json_decref(body);
	err_set(e, -ENOMEM, "out of memory while building the request");
	return NULL;
}

static void anthropic_usage(struct llm_acc *a, const json_t *usage)
{
	const json_t *in = json_object_get(usage, "input_tokens");
	const json_t *out = json_object_get(usage, "output_tokens");
	if (json_is_integer(in))
		a->input_tokens = (long)json_integer_value(in);
	if (json_is_integer(out))
		a->output_tokens = (long)json_integer_value(out);
}

static int anthropic_error(struct llm_acc *a, const json_t *root)
{
	const json_t *err = json_object_get(root, "error");
	char type[64] = "", msg[LLM_SERVER_MSG_MAX] = "";
	llm_json_copy_str(err, "type", type, sizeof(type));
	const json_t *m = json_object_get(err, "message");
	if (json_is_string(m))
		llm_text_line(msg, sizeof(msg), json_string_value(m), json_string_length(m),
			      a->lim.api_key);
	int rc = llm_acc_fail(a, LLM_ERR_MALFORMED, "the server reported an error: %s%s%s",
			      type[0] ? type : "error", msg[0] ? ": " : "", msg);
	/* Overload and internal errors mid-stream are transient: worth a retry. */
	if (!strcmp(type, "overloaded_error") || !strcmp(type, "api_error"))
		a->fail_retry = 1;
	return rc;
}

/* A tool_use block (whole, or the start of a streamed one) at index. */
static void anthropic_tool_use(struct llm_acc *a, const json_t *b, long index)
{
	struct llm_acc_call *c = llm_acc_call(a, index);
	if (!c)
		return;
	llm_json_copy_str(b, "id", c->id, sizeof(c->id));
	llm_json_copy_str(b, "name", c->name, sizeof(c->name));
	const json_t *input = json_object_get(b, "input");
	if (input) {
		json_decref(c->start_input);
		c->start_input = json_incref((json_t *)input);
	}
}

static void anthropic_text_block(struct llm_acc *a, const json_t *b)
{
	const json_t *t = json_object_get(b, "text");
	if (json_is_string(t))
		llm_acc_text(a, json_string_value(t), json_string_length(t));
}

static int anthropic_parse(struct llm_acc *a, const char *p, size_t n)
{
	enum llm_error_kind kind;
	struct err e = { 0 };
	json_t *root = llm_json_parse(p, n, a->lim.depth_max, &kind, &e);
	if (!root)
		return llm_acc_fail(a, kind, "the reply is not valid JSON: %s", e.msg);
	const json_t *type = json_object_get(root, "type");
	const json_t *content = json_object_get(root, "content");
	if (!json_is_object(root)) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "the reply is not a JSON object");
	} else if (json_is_string(type) && !strcmp(json_string_value(type), "error")) {
		anthropic_error(a, root);
	} else if (!json_is_array(content)) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "the reply has no 'content' array");
	} else {
		size_t i;
		const json_t *b;
		json_array_foreach(content, i, b) {
			char bt[32];
			llm_json_copy_str(b, "type", bt, sizeof(bt));
			if (!strcmp(bt, "text"))
				anthropic_text_block(a, b);
			else if (!strcmp(bt, "tool_use"))
				anthropic_tool_use(a, b, (long)i);
			/* thinking and other block types carry nothing for the agent */
		}
		const json_t *sr = json_object_get(root, "stop_reason");
		if (json_is_string(sr))
			llm_acc_stop(a, json_string_value(sr));
		anthropic_usage(a, json_object_get(root, "usage"));
		llm_json_copy_str(root, "model", a->model, sizeof(a->model));
		a->done = 1;
	}
	json_decref(root);
	return a->failed ? -EBADMSG : 0;
}

static long anthropic_index(struct llm_acc *a, const json_t *root)
{
	const json_t *ix = json_object_get(root, "index");
	if (!json_is_integer(ix) || json_integer_value(ix) < 0) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "a streamed content block has no valid index");
		return -1;
	}
	return (long)json_integer_value(ix);
}

static void anthropic_delta(struct llm_acc *a, const json_t *root)
{
	long index = anthropic_index(a, root);
	if (index < 0)
		return;
	const json_t *d = json_object_get(root, "delta");
	char dt[32];
	llm_json_copy_str(d, "type", dt, sizeof(dt));
	if (!strcmp(dt, "text_delta")) {
		anthropic_text_block(a, d);
	} else if (!strcmp(dt, "input_json_delta")) {
		const json_t *pj = json_object_get(d, "partial_json");
		struct llm_acc_call *c = llm_acc_call(a, index);
		if (c && json_is_string(pj))
			llm_acc_args(a, c, json_string_value(pj), json_string_length(pj));
	}
}

static void anthropic_event(struct llm_acc *a, const char *event, const char *data, size_t n)
{
	(void)event;   /* the data's own "type" is authoritative */
	if (a->failed)
		return;
	enum llm_error_kind kind;
	struct err e = { 0 };
	json_t *root = llm_json_parse(data, n, a->lim.depth_max, &kind, &e);
	if (!root) {
		llm_acc_fail(a, kind, "a streamed event is not valid JSON: %s", e.msg);
		return;
	}
	char type[32];
	llm_json_copy_str(root, "type", type, sizeof(type));
	if (!json_is_object(root)) {
		llm_acc_fail(a, LLM_ERR_MALFORMED, "a streamed event is not a JSON object");
	} else if (!strcmp(type, "message_start")) {
		const json_t *msg = json_object_get(root, "message");
		anthropic_usage(a, json_object_get(msg, "usage"));
		llm_json_copy_str(msg, "model", a->model, sizeof(a->model));
	} else if (!strcmp(type, "content_block_start")) {
		long index = anthropic_index(a, root);
		const json_t *b = json_object_get(root, "content_block");
		char bt[32];
		llm_json_copy_str(b, "type", bt, sizeof(bt));
		if (index >= 0 && !strcmp(bt, "tool_use"))
			anthropic_tool_use(a, b, index);
		else if (index >= 0 && !strcmp(bt, "text"))
			anthropic_text_block(a, b);
	} else if (!strcmp(type, "content_block_delta")) {
		anthropic_delta(a, root);
	} else if (!strcmp(type, "message_delta")) {
		const json_t *sr = json_object_get(json_object_get(root, "delta"), "stop_reason");
		if (json_is_string(sr))
			llm_acc_stop(a, json_string_value(sr));
		anthropic_usage(a, json_object_get(root, "usage"));
	} else if (!strcmp(type, "message_stop")) {
		a->done = 1;
	} else if (!strcmp(type, "error")) {
		anthropic_error(a, root);
	}
	/* ping, content_block_stop and unknown events carry nothing we need */
	json_decref(root);
}

const struct llm_proto llm_proto_anthropic = {
	.path = "/v1/messages",
	.body = anthropic_body,
	.parse = anthropic_parse,
	.event = anthropic_event,
};
