/* Unit tests for the model clients' parsers and encoders (no network): both
 * providers' replies, streamed and not, the accumulator's caps and per-call
 * argument errors, key redaction, request bodies, and retry arithmetic. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <string.h>
#include <time.h>

#include "llm/wire.h"

#define KEY "sk-test-SECRET-0123456789"

static struct llm_limits lim = { 1 << 20, 16, KEY };

static void feed_sse(const struct llm_proto *p, struct llm_acc *a, const char *stream)
{
	/* Split on blank lines; each chunk's "data: " lines make one event. */
	const char *s = stream;
	while (*s) {
		const char *end = strstr(s, "\n\n");
		size_t n = end ? (size_t)(end - s) : strlen(s);
		char ev[64] = "message";
		char data[8192];
		size_t dl = 0;
		const char *line = s;
		while (line < s + n) {
			const char *nl = memchr(line, '\n', (size_t)(s + n - line));
			size_t ll = nl ? (size_t)(nl - line) : (size_t)(s + n - line);
			if (ll > 7 && !strncmp(line, "event: ", 7))
				snprintf(ev, sizeof(ev), "%.*s", (int)(ll - 7), line + 7);
			else if (ll > 6 && !strncmp(line, "data: ", 6)) {
				memcpy(data + dl, line + 6, ll - 6);
				dl += ll - 6;
			}
			line += ll + 1;
		}
		if (dl)
			p->event(a, ev, data, dl);
		s += n;
		while (*s == '\n')
			s++;
	}
}

static struct llm_reply *finish_ok(struct llm_acc *a)
{
	struct llm_reply *r = NULL;
	struct llm_failure f = { 0 };
	cr_assert_eq(llm_acc_finish(a, &r, &f), 0, "failed: %s", f.e.msg);
	return r;
}

static struct llm_failure finish_fail(struct llm_acc *a)
{
	struct llm_reply *r = NULL;
	struct llm_failure f = { 0 };
	cr_assert_lt(llm_acc_finish(a, &r, &f), 0);
	cr_assert_null(r);
	cr_assert_neq(f.e.msg[0], '\0');
	cr_assert_null(strstr(f.e.msg, KEY), "key in the message: %s", f.e.msg);
	return f;
}

Test(llm_openai, body_with_tool_call_and_text)
{
	const char *b = "{\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
			"\"content\":\"let me look\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
			"\"function\":{\"name\":\"read_file\",\"arguments\":\"{\\\"path\\\":\\\"a.txt\\\"}\"}}]},"
			"\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7}}";
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	cr_assert_eq(llm_proto_openai.parse(&a, b, strlen(b)), 0);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_str_eq(r->text, "let me look");
	cr_assert_eq(r->ncalls, 1);
	cr_assert_str_eq(r->calls[0].id, "c1");
	cr_assert_str_eq(r->calls[0].name, "read_file");
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[0].arguments, "path")), "a.txt");
	cr_assert_eq(r->stop, LLM_STOP_TOOL_CALLS);
	cr_assert_eq(r->input_tokens, 12);
	cr_assert_eq(r->output_tokens, 7);
	cr_assert_str_eq(r->model, "gpt-x");
	llm_reply_free(r);
	llm_acc_free(&a);
}

Test(llm_openai, stream_reassembles_fragments_per_index)
{
	/* Two calls, their fragments interleaved, ids and names only in the first. */
	const char *s =
		"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hi \"}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"content\":\"there\"}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"run_command\",\"arguments\":\"{\\\"comm\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"list_dir\",\"arguments\":\"\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"and\\\":\\\"ls\\\"}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"path\\\":\\\".\\\"}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n"
		"data: [DONE]\n\n";
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	feed_sse(&llm_proto_openai, &a, s);
	cr_assert(a.done);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_str_eq(r->text, "Hi there");
	cr_assert_eq(r->ncalls, 2);
	cr_assert_str_eq(r->calls[0].id, "a");
	cr_assert_str_eq(r->calls[0].name, "run_command");
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[0].arguments, "command")), "ls");
	cr_assert_str_eq(r->calls[1].name, "list_dir");
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[1].arguments, "path")), ".");
	cr_assert_eq(r->input_tokens, 3);
	cr_assert_eq(r->output_tokens, 4);
	llm_reply_free(r);
	llm_acc_free(&a);
}

Test(llm_openai, bad_arguments_are_reported_per_call)
{
	const char *b = "{\"choices\":[{\"message\":{\"tool_calls\":["
			"{\"id\":\"1\",\"function\":{\"name\":\"t\",\"arguments\":\"{not json\"}},"
			"{\"id\":\"2\",\"function\":{\"name\":\"t\",\"arguments\":\"[1,2]\"}},"
			"{\"id\":\"3\",\"function\":{\"name\":\"t\",\"arguments\":\"\"}},"
			"{\"id\":\"4\",\"function\":{\"name\":\"\",\"arguments\":\"{}\"}}]},"
			"\"finish_reason\":\"tool_calls\"}]}";
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	cr_assert_eq(llm_proto_openai.parse(&a, b, strlen(b)), 0);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_eq(r->ncalls, 4);
	cr_assert_eq(r->bad_calls, 3);
	cr_assert_null(r->calls[0].arguments);
	cr_assert(strstr(r->calls[0].error, "not valid JSON"), "%s", r->calls[0].error);
	cr_assert_str_eq(r->calls[0].raw_arguments, "{not json");
	cr_assert(strstr(r->calls[1].error, "not a JSON object"));
	cr_assert(json_is_object(r->calls[2].arguments), "empty arguments are {}");
	cr_assert_null(r->calls[2].error);
	cr_assert(strstr(r->calls[3].error, "no name"));
	llm_reply_free(r);
	llm_acc_free(&a);
}

Test(llm_openai, empty_and_malformed_replies_fail)
{
	struct llm_acc a;
	const char *empty = "{\"choices\":[{\"message\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}";
	llm_acc_init(&a, &lim);
	llm_proto_openai.parse(&a, empty, strlen(empty));
	cr_assert_eq(finish_fail(&a).kind, LLM_ERR_EMPTY);
	llm_acc_free(&a);

	const char *bad[] = { "{\"choices\":", "[]", "{\"choices\":[]}", "{\"choices\":[{\"message\":3}]}",
			      "{\"error\":{\"message\":\"boom\"}}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		llm_acc_init(&a, &lim);
		cr_assert_lt(llm_proto_openai.parse(&a, bad[i], strlen(bad[i])), 0, "%s", bad[i]);
		cr_assert_eq(finish_fail(&a).kind, LLM_ERR_MALFORMED, "%s", bad[i]);
		llm_acc_free(&a);
	}
}

Test(llm_openai, stream_error_chunk_and_garbage_fail)
{
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	feed_sse(&llm_proto_openai, &a,
		 "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
		 "data: {\"error\":{\"message\":\"overloaded " KEY "\"}}\n\n"
		 "data: {\"choices\":[{\"delta\":{\"content\":\"y\"}}]}\n\n");
	struct llm_failure f = finish_fail(&a);
	cr_assert_eq(f.kind, LLM_ERR_MALFORMED);
	cr_assert(strstr(f.e.msg, "overloaded [REDACTED]"), "%s", f.e.msg);
	llm_acc_free(&a);

	llm_acc_init(&a, &lim);
	feed_sse(&llm_proto_openai, &a, "data: {\"choices\":[{\"delta\":{\"con\n\n");
	cr_assert_eq(finish_fail(&a).kind, LLM_ERR_MALFORMED);
	llm_acc_free(&a);
}

Test(llm_caps, depth_text_and_call_count)
{
	struct llm_acc a;
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	llm_acc_init(&a, &lim);
	llm_proto_openai.parse(&a, deep, sizeof(deep));
	cr_assert_eq(finish_fail(&a).kind, LLM_ERR_TOO_LARGE);
	llm_acc_free(&a);

	/* Deep arguments inside a call: a per-call error, not a crash. */
	char b[1024];
	char args[512] = "";
	for (int i = 0; i < 40; i++)
		strcat(args, "{\\\"a\\\":");
	snprintf(b, sizeof(b), "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"1\",\"function\":"
			       "{\"name\":\"t\",\"arguments\":\"%s\"}}]}}]}", args);
	llm_acc_init(&a, &lim);
	cr_assert_eq(llm_proto_openai.parse(&a, b, strlen(b)), 0);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_not_null(r->calls[0].error);
	llm_reply_free(r);
	llm_acc_free(&a);

	struct llm_limits small = { 10, 16, NULL };
	llm_acc_init(&a, &small);
	cr_assert_eq(llm_acc_text(&a, "0123456789", 10), 0);
	cr_assert_lt(llm_acc_text(&a, "x", 1), 0);
	cr_assert_eq(finish_fail(&a).kind, LLM_ERR_TOO_LARGE);
	llm_acc_free(&a);

	llm_acc_init(&a, &lim);
	for (long i = 0; i <= LLM_CALLS_MAX; i++)
		llm_acc_call(&a, i);
	cr_assert(a.failed);
	cr_assert_eq(a.ncalls, LLM_CALLS_MAX);
	llm_acc_free(&a);
}

Test(llm_anthropic, body_tool_use)
{
	const char *b = "{\"type\":\"message\",\"model\":\"claude-x\",\"content\":["
			"{\"type\":\"text\",\"text\":\"checking\"},"
			"{\"type\":\"tool_use\",\"id\":\"tu_1\",\"name\":\"list_dir\",\"input\":{\"path\":\"src\"}}],"
			"\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":20,\"output_tokens\":9}}";
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	cr_assert_eq(llm_proto_anthropic.parse(&a, b, strlen(b)), 0);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_str_eq(r->text, "checking");
	cr_assert_eq(r->ncalls, 1);
	cr_assert_str_eq(r->calls[0].id, "tu_1");
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[0].arguments, "path")), "src");
	cr_assert_eq(r->stop, LLM_STOP_TOOL_CALLS);
	cr_assert_eq(r->input_tokens, 20);
	cr_assert_eq(r->output_tokens, 9);
	llm_reply_free(r);
	llm_acc_free(&a);
}

Test(llm_anthropic, stream_with_input_json_delta)
{
	const char *s =
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
		"event: ping\ndata: {\"type\":\"ping\"}\n\n"
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Sure\"}}\n\n"
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu\",\"name\":\"write_file\",\"input\":{}}}\n\n"
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\": \\\"n.txt\\\", \"}}\n\n"
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"content\\\": \\\"hi\\\"}\"}}\n\n"
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":30}}\n\n"
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	feed_sse(&llm_proto_anthropic, &a, s);
	cr_assert(a.done);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_str_eq(r->text, "Sure");
	cr_assert_eq(r->ncalls, 1);
	cr_assert_str_eq(r->calls[0].name, "write_file");
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[0].arguments, "content")), "hi");
	cr_assert_eq(r->input_tokens, 5);
	cr_assert_eq(r->output_tokens, 30);
	llm_reply_free(r);
	llm_acc_free(&a);
}

Test(llm_anthropic, error_event_and_overload)
{
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	feed_sse(&llm_proto_anthropic, &a,
		 "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
	cr_assert(a.fail_retry);
	struct llm_failure f = finish_fail(&a);
	cr_assert(strstr(f.e.msg, "overloaded_error: Overloaded"), "%s", f.e.msg);
	llm_acc_free(&a);

	llm_acc_init(&a, &lim);
	feed_sse(&llm_proto_anthropic, &a,
		 "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n");
	cr_assert(a.failed, "a delta without an index is refused");
	llm_acc_free(&a);
}

Test(llm_redact, key_never_comes_back)
{
	const char *b = "{\"choices\":[{\"message\":{\"content\":\"your key is " KEY "!\",\"tool_calls\":["
			"{\"id\":\"1\",\"function\":{\"name\":\"t\",\"arguments\":\"{\\\"k\\\":\\\"" KEY "\\\"}\"}}]}}]}";
	struct llm_acc a;
	llm_acc_init(&a, &lim);
	cr_assert_eq(llm_proto_openai.parse(&a, b, strlen(b)), 0);
	struct llm_reply *r = finish_ok(&a);
	cr_assert_str_eq(r->text, "your key is [REDACTED]!");
	cr_assert_null(strstr(r->calls[0].raw_arguments, KEY));
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[0].arguments, "k")), "[REDACTED]");
	llm_reply_free(r);
	llm_acc_free(&a);

	char out[64];
	const char *body = "{\"error\":{\"message\":\"Incorrect API key provided: " KEY "\"}}";
	llm_error_message(body, strlen(body), 16, KEY, out, sizeof(out));
	cr_assert_str_eq(out, "Incorrect API key provided: [REDACTED]");
	/* A key cut by the window leaks no prefix either. */
	const char *cut = "{\"error\":\"bad key sk-test-SECRET-01\"}";
	llm_error_message(cut, strlen(cut), 16, KEY, out, sizeof(out));
	cr_assert_null(strstr(out, "sk-test"), "%s", out);
	llm_error_message("<html>\n502\n</html>", 18, 16, KEY, out, sizeof(out));
	cr_assert_str_eq(out, "<html> 502 </html>");
}

static struct llm_conv *sample_conv(void)
{
	struct err e = { 0 };
	struct llm_conv *c = llm_conv_new("be careful");
	cr_assert_eq(llm_conv_add_user(c, "list files", &e), 0);
	struct llm_tool_call calls[2] = {
		{ .id = "c1", .name = "list_dir", .arguments = json_pack("{s:s}", "path", "."),
		  .raw_arguments = "{\"path\":\".\"}" },
		{ .id = "c2", .name = "read_file", .raw_arguments = "{oops", .error = "bad" },
	};
	cr_assert_eq(llm_conv_add_assistant(c, "looking", calls, 2, &e), 0);
	json_decref(calls[0].arguments);
	cr_assert_eq(llm_conv_add_tool_result(c, "c1", "a.txt\nb.txt", 0, &e), 0);
	cr_assert_eq(llm_conv_add_tool_result(c, "c2", "arguments are not JSON", 1, &e), 0);
	cr_assert_lt(llm_conv_add_tool_result(c, "", "x", 0, &e), 0);
	return c;
}

Test(llm_body, openai_messages_and_tools)
{
	struct llm_conv *c = sample_conv();
	struct llm_config cfg = { .provider = LLM_PROVIDER_OPENAI, .model = "m", .stream = 1 };
	json_t *schema = json_pack("{s:s,s:{s:{s:s}}}", "type", "object", "properties", "path", "type",
				   "string");
	struct llm_tool tools[] = { { "list_dir", "List a directory", schema } };
	struct err e = { 0 };
	json_t *b = llm_proto_openai.body(&cfg, c, tools, 1, &e);
	cr_assert_not_null(b, "%s", e.msg);
	json_t *msgs = json_object_get(b, "messages");
	cr_assert_eq(json_array_size(msgs), 5);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system");
	json_t *asst = json_array_get(msgs, 2);
	json_t *tc = json_array_get(json_object_get(asst, "tool_calls"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")),
			 "{oops");
	json_t *res = json_array_get(msgs, 4);
	cr_assert_str_eq(json_string_value(json_object_get(res, "role")), "tool");
	cr_assert_str_eq(json_string_value(json_object_get(res, "tool_call_id")), "c2");
	cr_assert_str_eq(json_string_value(json_object_get(res, "content")),
			 "[tool error] arguments are not JSON");
	json_t *fn = json_object_get(json_array_get(json_object_get(b, "tools"), 0), "function");
	cr_assert(json_equal(json_object_get(fn, "parameters"), schema), "schema passed unchanged");
	cr_assert(json_is_true(json_object_get(json_object_get(b, "stream_options"), "include_usage")));
	json_decref(b);
	json_decref(schema);
	llm_conv_free(c);
}

Test(llm_body, anthropic_blocks_merged)
{
	struct llm_conv *c = sample_conv();
	struct llm_config cfg = { .provider = LLM_PROVIDER_ANTHROPIC, .model = "m", .max_tokens = 99 };
	struct err e = { 0 };
	json_t *b = llm_proto_anthropic.body(&cfg, c, NULL, 0, &e);
	cr_assert_not_null(b);
	cr_assert_str_eq(json_string_value(json_object_get(b, "system")), "be careful");
	cr_assert_eq(json_integer_value(json_object_get(b, "max_tokens")), 99);
	json_t *msgs = json_object_get(b, "messages");
	cr_assert_eq(json_array_size(msgs), 3, "the two results share one user message");
	json_t *asst = json_object_get(json_array_get(msgs, 1), "content");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(asst, 1), "type")), "tool_use");
	json_t *empty = json_object();
	cr_assert(json_equal(json_object_get(json_array_get(asst, 2), "input"), empty),
		  "unusable arguments go back as {}");
	json_decref(empty);
	json_t *res = json_object_get(json_array_get(msgs, 2), "content");
	cr_assert_eq(json_array_size(res), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 0), "tool_use_id")), "c1");
	cr_assert_null(json_object_get(json_array_get(res, 0), "is_error"));
	cr_assert(json_is_true(json_object_get(json_array_get(res, 1), "is_error")));
	json_decref(b);
	llm_conv_free(c);
}

Test(llm_retry, retry_after_and_backoff)
{
	cr_assert_eq(llm_retry_after_parse(" 2\r\n", 4, 0), 2000);
	cr_assert_eq(llm_retry_after_parse("0", 1, 0), 0);
	cr_assert_eq(llm_retry_after_parse("soon", 4, 0), -1);
	cr_assert_eq(llm_retry_after_parse("-1", 2, 0), -1);
	cr_assert_eq(llm_retry_after_parse("99999999999", 11, 0), -1);
	long long now = curl_getdate("Wed, 21 Oct 2026 07:28:00 GMT", NULL);
	const char *d = "Wed, 21 Oct 2026 07:28:05 GMT";
	cr_assert_eq(llm_retry_after_parse(d, strlen(d), now), 5000);
	cr_assert_eq(llm_retry_after_parse(d, strlen(d), now + 60), 0, "a past date means now");
	for (int att = 2; att < 12; att++) {
		long lo = llm_backoff_ms(att, 500, 8000, 0.0), hi = llm_backoff_ms(att, 500, 8000, 0.999);
		long d2 = 500L << (att - 2);
		if (d2 > 8000)
			d2 = 8000;
		cr_assert_eq(lo, d2 / 2);
		cr_assert(hi <= d2 && hi > d2 * 9 / 10, "attempt %d: %ld", att, hi);
	}
	cr_assert(llm_status_retryable(429) && llm_status_retryable(408) && llm_status_retryable(503));
	cr_assert(!llm_status_retryable(400) && !llm_status_retryable(401) && !llm_status_retryable(404));
}
