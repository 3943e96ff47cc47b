/* The model clients against @copilotkit/aimock (npm, pinned in tests/peers),
 * which serves the real OpenAI and Anthropic wire formats from the fixtures
 * in tests/peers/aimock/llm.json. Each test starts its own aimock on a free
 * loopback port (so its journal holds only this test's requests), drives
 * llm_request() on a libuv loop, and reads /__aimock/journal to see what the
 * client really sent. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/io.h"
#include "llm/llm.h"
#include "integration/lib/aimock.h"

#define KEY "sk-aimock-test-KEY-7f3a9c21e5"

static struct aimock mock;
static char mock_url[128];

/* Starts aimock on llm.json (with inbound key checking when keys is set). */
static void mock_start(const char *keys)
{
	cr_assert_eq(aimock_start(&mock, "llm.json", keys), 0, "%s", mock.why);
	snprintf(mock_url, sizeof(mock_url), "%s", mock.url);
}

static void mock_stop(void)
{
	aimock_stop(&mock);
}

/* GET /__aimock/journal as parsed JSON (an array of entries). With inbound
 * key checking on, the control API wants the key too. */
static json_t *mock_journal(char **raw_out)
{
	json_t *j = aimock_journal(&mock, KEY, raw_out);
	cr_assert(j, "%s", mock.why);
	return j;
}

/* ---- driving the client ---- */

struct outcome {
	int done;
	struct llm_reply *reply;
	struct llm_failure fail;
	int failed;
};

static void on_done(void *ctx, struct llm_reply *reply, const struct llm_failure *fail)
{
	struct outcome *o = ctx;
	o->done++;
	o->reply = reply;
	if (fail) {
		o->fail = *fail;
		o->failed = 1;
	}
}

static void on_closed(void *opaque)
{
	*(int *)opaque = 1;
}

static struct llm_config config(enum llm_provider p, int stream)
{
	static char base[160];
	if (p == LLM_PROVIDER_OPENAI)
		snprintf(base, sizeof(base), "%s/v1", mock_url);
	else
		snprintf(base, sizeof(base), "%s", mock_url);
	struct llm_config cfg = {
		.provider = p,
		.base_url = base,
		.model = "test-model",
		.api_key = KEY,
		.stream = stream,
		.total_timeout_ms = 60000,
		.first_byte_timeout_ms = 20000,
		.backoff_base_ms = 50,
	};
	return cfg;
}

/* One request on a fresh loop and client; returns once the callback ran and
 * the client is closed (asserting both happen within a generous bound). */
static struct outcome ask(const struct llm_config *cfg, const struct llm_conv *conv,
			  const struct llm_tool *tools, size_t ntools)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct llm_client *c = NULL;
	struct err e = { 0 };
	cr_assert_eq(llm_client_new(&loop, cfg, &c, &e), 0, "%s", e.msg);
	struct outcome o = { 0 };
	cr_assert_eq(llm_request(c, conv, tools, ntools, on_done, &o, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(o.done, 0, "the callback never runs inside llm_request()");
	double until = clock_now_ms() + 90000;
	while (!o.done && clock_now_ms() < until)
		uv_run(&loop, UV_RUN_ONCE);
	cr_assert_eq(o.done, 1, "no callback within 90 s");
	int closed = 0;
	llm_client_close(c, on_closed, &closed);
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
	cr_assert_eq(uv_loop_close(&loop), 0, "every loop handle is closed");
	return o;
}

static struct llm_conv *conv_user(const char *text)
{
	struct err e = { 0 };
	struct llm_conv *c = llm_conv_new("You are IronClaw's test agent.");
	cr_assert_eq(llm_conv_add_user(c, text, &e), 0);
	return c;
}

static void setup(void)
{
	mock_start(NULL);
}

static void teardown(void)
{
	mock_stop();
}

/* ---- a tool call, its result, the final answer ---- */

static void tool_loop(enum llm_provider p, int stream)
{
	json_t *schema = json_pack("{s:s,s:{s:{s:s}},s:[s]}", "type", "object", "properties", "city",
				   "type", "string", "required", "city");
	struct llm_tool tools[] = { { "get_weather", "Current weather for a city", schema } };
	struct llm_config cfg = config(p, stream);
	struct llm_conv *conv = conv_user("What is the weather in Paris?");

	struct outcome o = ask(&cfg, conv, tools, 1);
	cr_assert_not(o.failed, "%s", o.fail.e.msg);
	struct llm_reply *r = o.reply;
	cr_assert_eq(r->ncalls, 1);
	cr_assert_eq(r->bad_calls, 0);
	cr_assert_str_eq(r->calls[0].id, "call_w1");
	cr_assert_str_eq(r->calls[0].name, "get_weather");
	cr_assert_str_eq(json_string_value(json_object_get(r->calls[0].arguments, "city")), "Paris");
	cr_assert_eq(r->stop, LLM_STOP_TOOL_CALLS);
	cr_assert_eq(r->stats.attempts, 1);
	cr_assert_gt(r->stats.request_bytes, 0);
	cr_assert_gt(r->stats.response_bytes, 0);
	cr_assert_gt(r->stats.latency_ms, 0);
	if (p == LLM_PROVIDER_OPENAI)
		cr_assert_eq(r->input_tokens, 11);
	struct err e = { 0 };
	cr_assert_eq(llm_conv_add_assistant(conv, r->text, r->calls, r->ncalls, &e), 0);
	cr_assert_eq(llm_conv_add_tool_result(conv, r->calls[0].id, "18C and sunny", 0, &e), 0);
	llm_reply_free(r);

	o = ask(&cfg, conv, tools, 1);
	cr_assert_not(o.failed, "%s", o.fail.e.msg);
	cr_assert_str_eq(o.reply->text, "It is sunny in Paris.");
	cr_assert_eq(o.reply->ncalls, 0);
	cr_assert_eq(o.reply->stop, LLM_STOP_END);
	llm_reply_free(o.reply);

	/* The journal: two requests to the provider's path, the second carrying
	 * the tool result; the key nowhere but the (redacted) auth header. */
	char *raw = NULL;
	json_t *j = mock_journal(&raw);
	cr_assert_eq(json_array_size(j), 2);
	cr_assert_null(strstr(raw, KEY), "the key appears in the journal");
	const char *path = p == LLM_PROVIDER_OPENAI ? "/v1/chat/completions" : "/v1/messages";
	for (size_t i = 0; i < 2; i++) {
		json_t *ent = json_array_get(j, i);
		cr_assert_str_eq(json_string_value(json_object_get(ent, "path")), path);
		json_t *h = json_object_get(ent, "headers");
		const char *auth = p == LLM_PROVIDER_OPENAI ? "authorization" : "x-api-key";
		cr_assert_not_null(json_object_get(h, auth), "no %s header", auth);
		if (p == LLM_PROVIDER_ANTHROPIC)
			cr_assert_str_eq(json_string_value(json_object_get(h, "anthropic-version")),
					 "2023-06-01");
		json_t *body = json_object_get(ent, "body");
		cr_assert_eq(json_is_true(json_object_get(body, "stream")), stream);
		cr_assert_str_eq(json_string_value(json_object_get(body, "model")), "test-model");
	}
	json_t *msgs = json_object_get(json_object_get(json_array_get(j, 1), "body"), "messages");
	int found = 0;
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m) {
		/* aimock normalizes both providers to chat-completions messages. */
		if (!strcmp(json_string_value(json_object_get(m, "role")) ?: "", "tool")) {
			cr_assert_str_eq(json_string_value(json_object_get(m, "tool_call_id")), "call_w1");
			cr_assert_str_eq(json_string_value(json_object_get(m, "content")), "18C and sunny");
			found = 1;
		}
	}
	cr_assert(found, "the tool result did not reach the model: %s", raw);
	json_decref(j);
	free(raw);
	llm_conv_free(conv);
	json_decref(schema);
}

Test(llm_aimock, openai_tool_loop, .init = setup, .fini = teardown) { tool_loop(LLM_PROVIDER_OPENAI, 0); }
Test(llm_aimock, openai_tool_loop_stream, .init = setup, .fini = teardown) { tool_loop(LLM_PROVIDER_OPENAI, 1); }
Test(llm_aimock, anthropic_tool_loop, .init = setup, .fini = teardown) { tool_loop(LLM_PROVIDER_ANTHROPIC, 0); }
Test(llm_aimock, anthropic_tool_loop_stream, .init = setup, .fini = teardown) { tool_loop(LLM_PROVIDER_ANTHROPIC, 1); }

/* ---- retries ---- */

static void rate_limited(enum llm_provider p, int stream)
{
	struct llm_config cfg = config(p, stream);
	struct llm_conv *conv = conv_user("you are rate limited");
	double t0 = clock_now_ms();
	struct outcome o = ask(&cfg, conv, NULL, 0);
	double took = clock_now_ms() - t0;
	cr_assert_not(o.failed, "%s", o.fail.e.msg);
	cr_assert_str_eq(o.reply->text, "ok after waiting");
	cr_assert_eq(o.reply->stats.attempts, 2);
	/* Retry-After: 1 was honoured (the backoff alone would be 25-50 ms), and
	 * bounded (generously, for a loaded machine). */
	cr_assert_geq(took, 950, "retried after %.0f ms, before Retry-After", took);
	cr_assert_lt(took, 20000);
	json_t *j = mock_journal(NULL);
	cr_assert_eq(json_array_size(j), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(j, 0), "response"), "status")), 429);
	json_decref(j);
	llm_reply_free(o.reply);
	llm_conv_free(conv);
}

Test(llm_aimock, openai_429_then_success, .init = setup, .fini = teardown) { rate_limited(LLM_PROVIDER_OPENAI, 0); }
Test(llm_aimock, anthropic_429_then_success_stream, .init = setup, .fini = teardown) { rate_limited(LLM_PROVIDER_ANTHROPIC, 1); }

Test(llm_aimock, retry_after_past_the_cap_fails_at_once, .init = setup, .fini = teardown)
{
	struct llm_config cfg = config(LLM_PROVIDER_OPENAI, 0);
	cfg.retry_after_max_ms = 500;   /* the server asks for 1 s */
	struct llm_conv *conv = conv_user("you are rate limited");
	struct outcome o = ask(&cfg, conv, NULL, 0);
	cr_assert(o.failed);
	cr_assert_eq(o.fail.kind, LLM_ERR_HTTP);
	cr_assert_eq(o.fail.http_status, 429);
	cr_assert_eq(o.fail.stats.attempts, 1);
	cr_assert(strstr(o.fail.e.msg, "retry after 1 s"), "%s", o.fail.e.msg);
	llm_conv_free(conv);
}

Test(llm_aimock, dropped_stream_is_retried, .init = setup, .fini = teardown)
{
	struct llm_config cfg = config(LLM_PROVIDER_OPENAI, 1);
	struct llm_conv *conv = conv_user("a dropped stream");
	struct outcome o = ask(&cfg, conv, NULL, 0);
	cr_assert_not(o.failed, "%s", o.fail.e.msg);
	cr_assert_str_eq(o.reply->text, "Whole answer on the second attempt.");
	cr_assert_eq(o.reply->stats.attempts, 2);
	llm_reply_free(o.reply);
	llm_conv_free(conv);
}

Test(llm_aimock, client_errors_are_not_retried, .init = setup, .fini = teardown)
{
	for (int p = 0; p < 2; p++) {
		struct llm_config cfg = config(p ? LLM_PROVIDER_ANTHROPIC : LLM_PROVIDER_OPENAI, p);
		struct llm_conv *conv = conv_user("this is forbidden");
		struct outcome o = ask(&cfg, conv, NULL, 0);
		cr_assert(o.failed);
		cr_assert_eq(o.fail.kind, LLM_ERR_HTTP);
		cr_assert_eq(o.fail.http_status, 403);
		cr_assert_eq(o.fail.stats.attempts, 1);
		cr_assert(strstr(o.fail.e.msg, "HTTP 403: you may not"), "%s", o.fail.e.msg);
		llm_conv_free(conv);
	}
	json_t *j = mock_journal(NULL);
	cr_assert_eq(json_array_size(j), 2, "one request per provider, no retry");
	json_decref(j);
}

Test(llm_aimock, server_errors_are_retried_then_reported, .init = setup, .fini = teardown)
{
	struct llm_config cfg = config(LLM_PROVIDER_ANTHROPIC, 0);
	cfg.max_attempts = 3;
	struct llm_conv *conv = conv_user("a server error");
	struct outcome o = ask(&cfg, conv, NULL, 0);
	cr_assert(o.failed);
	cr_assert_eq(o.fail.kind, LLM_ERR_HTTP);
	cr_assert_eq(o.fail.http_status, 500);
	cr_assert_eq(o.fail.stats.attempts, 3);
	cr_assert(strstr(o.fail.e.msg, "after 3 attempts"), "%s", o.fail.e.msg);
	json_t *j = mock_journal(NULL);
	cr_assert_eq(json_array_size(j), 3);
	json_decref(j);
	llm_conv_free(conv);
}

Test(llm_aimock, endpoint_down)
{
	/* A port nobody listens on: bind, note it, close. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);
	snprintf(mock_url, sizeof(mock_url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	struct llm_config cfg = config(LLM_PROVIDER_OPENAI, 1);
	cfg.max_attempts = 3;
	struct llm_conv *conv = conv_user("hello");
	double t0 = clock_now_ms();
	struct outcome o = ask(&cfg, conv, NULL, 0);
	cr_assert(o.failed);
	cr_assert_eq(o.fail.kind, LLM_ERR_UNREACHABLE);
	cr_assert_eq(o.fail.stats.attempts, 3);
	cr_assert(strstr(o.fail.e.msg, "after 3 attempts"), "%s", o.fail.e.msg);
	cr_assert(strstr(o.fail.e.msg, "cannot reach the model endpoint"), "%s", o.fail.e.msg);
	cr_assert_null(strstr(o.fail.e.msg, KEY));
	/* Two backoffs of 25-50 ms and then 50-100 ms: bounded, generously. */
	cr_assert_lt(clock_now_ms() - t0, 20000);
	llm_conv_free(conv);
}

Test(llm_aimock, silent_server_times_out, .init = setup, .fini = teardown)
{
	struct llm_config cfg = config(LLM_PROVIDER_OPENAI, 1);
	cfg.first_byte_timeout_ms = 1000;   /* the fixture waits 4 s before its first token */
	cfg.max_attempts = 2;
	struct llm_conv *conv = conv_user("a slow reply");
	struct outcome o = ask(&cfg, conv, NULL, 0);
	cr_assert(o.failed);
	cr_assert_eq(o.fail.kind, LLM_ERR_UNREACHABLE, "%s", o.fail.e.msg);
	cr_assert(strstr(o.fail.e.msg, "sent nothing for 1 s"), "%s", o.fail.e.msg);
	cr_assert_eq(o.fail.stats.attempts, 2);
	llm_conv_free(conv);
}

/* ---- hostile replies ---- */

Test(llm_aimock, malformed_tool_arguments_reported_per_call, .init = setup, .fini = teardown)
{
	for (int stream = 0; stream < 2; stream++) {
		struct llm_config cfg = config(LLM_PROVIDER_OPENAI, stream);
		struct llm_conv *conv = conv_user("broken arguments please");
		struct outcome o = ask(&cfg, conv, NULL, 0);
		cr_assert_not(o.failed, "%s", o.fail.e.msg);
		cr_assert_eq(o.reply->ncalls, 1);
		cr_assert_eq(o.reply->bad_calls, 1);
		cr_assert_null(o.reply->calls[0].arguments);
		cr_assert(strstr(o.reply->calls[0].error, "not valid JSON"), "%s", o.reply->calls[0].error);
		cr_assert_str_eq(o.reply->calls[0].id, "call_b1");
		llm_reply_free(o.reply);
		llm_conv_free(conv);
	}
}

Test(llm_aimock, reply_over_the_cap, .init = setup, .fini = teardown)
{
	for (int p = 0; p < 2; p++)
		for (int stream = 0; stream < 2; stream++) {
			struct llm_config cfg = config(p ? LLM_PROVIDER_ANTHROPIC : LLM_PROVIDER_OPENAI, stream);
			cfg.body_max = 2048;   /* the fixture's text alone is 4096 bytes */
			struct llm_conv *conv = conv_user("a huge reply");
			struct outcome o = ask(&cfg, conv, NULL, 0);
			cr_assert(o.failed, "provider %d stream %d", p, stream);
			cr_assert_eq(o.fail.kind, LLM_ERR_TOO_LARGE, "%s", o.fail.e.msg);
			cr_assert_eq(o.fail.stats.attempts, 1, "an oversized reply is not retried");
			cr_assert_leq(o.fail.stats.response_bytes, 2048);
			llm_conv_free(conv);
		}
}

Test(llm_aimock, empty_reply_fails, .init = setup, .fini = teardown)
{
	for (int stream = 0; stream < 2; stream++) {
		struct llm_config cfg = config(LLM_PROVIDER_OPENAI, stream);
		struct llm_conv *conv = conv_user("say nothing");
		struct outcome o = ask(&cfg, conv, NULL, 0);
		cr_assert(o.failed);
		cr_assert_eq(o.fail.kind, LLM_ERR_EMPTY, "%s", o.fail.e.msg);
		llm_conv_free(conv);
	}
}

/* ---- the key ---- */

Test(llm_aimock, key_checked_by_the_server_and_kept_out_of_errors)
{
	mock_start(KEY);
	for (int p = 0; p < 2; p++) {
		struct llm_config cfg = config(p ? LLM_PROVIDER_ANTHROPIC : LLM_PROVIDER_OPENAI, 0);
		struct llm_conv *conv = conv_user("hello");
		struct outcome o = ask(&cfg, conv, NULL, 0);
		cr_assert_not(o.failed, "the server refused our key: %s", o.fail.e.msg);
		cr_assert_str_eq(o.reply->text, "Hi there!");
		llm_reply_free(o.reply);

		cfg.api_key = "sk-wrong-key-0000000000000";
		o = ask(&cfg, conv, NULL, 0);
		cr_assert(o.failed);
		cr_assert_eq(o.fail.http_status, 401);
		cr_assert_eq(o.fail.stats.attempts, 1);
		cr_assert_null(strstr(o.fail.e.msg, "sk-wrong-key"), "%s", o.fail.e.msg);
		cr_assert(strstr(o.fail.e.msg, "check the API key"), "%s", o.fail.e.msg);
		llm_conv_free(conv);
	}
	char *raw = NULL;
	json_t *j = mock_journal(&raw);
	cr_assert_null(strstr(raw, KEY));
	cr_assert_null(strstr(raw, "sk-wrong-key"));
	json_decref(j);
	free(raw);
	mock_stop();
}
