/* The MCP client against the official server-everything over stdio: echo,
 * progress, out-of-order replies, roots (and a change of roots), sampling
 * requests from the server, and every content type it returns. */
#include "test_mcp_util.h"

static struct mcp_server_config cfg;

static void setup_everything(void)
{
	char *script = mt_everything();
	mt_cfg_node(&cfg, "everything", script, "stdio", NULL);
	free(script);
}

static void teardown_everything(void)
{
	mcp_server_config_free(&cfg);
}

TestSuite(mcp_everything, .init = setup_everything, .fini = teardown_everything, .timeout = 60);

Test(mcp_everything, echo_legacy_era)
{
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_not(mcp_client_is_modern(c), "server-everything (SDK v1) has no 2026 era");
	cr_assert_str_eq(mcp_client_protocol_version(c), "2025-11-25");
	cr_assert_eq(mcp_sync_call_tool(c, "echo", json_pack("{s:s}", "message", "hi"), &res, &e), 0,
		     "%s", e.msg);
	cr_assert_str_eq(mt_text(res), "Echo: hi");
	cr_assert_not(mcp_result_is_error(res));
	json_decref(res);
	mcp_sync_close(c);
}

struct progress_seen {
	int n;
	double last;
	double total;
};

static void on_progress(void *opaque, struct mcp_call *call, double p, double total,
			const char *msg)
{
	struct progress_seen *s = opaque;
	(void)call;
	(void)msg;
	s->n++;
	s->last = p;
	s->total = total;
}

Test(mcp_everything, progress_notifications)
{
	struct progress_seen seen = { 0 };
	struct mcp_events ev = { .on_progress = on_progress, .opaque = &seen };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "trigger-long-running-operation",
				   json_pack("{s:f,s:i}", "duration", 0.8, "steps", 4), &res, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(seen.n, 4, "saw %d progress notifications", seen.n);
	cr_assert_float_eq(seen.last, 4, 1e-9);
	cr_assert_float_eq(seen.total, 4, 1e-9);
	json_decref(res);
	mcp_sync_close(c);
}

Test(mcp_everything, out_of_order_replies_matched_by_id)
{
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	struct mcp_pending *slow, *fast;
	json_t *rs = NULL, *rf = NULL;
	cr_assert_eq(mcp_sync_start(c, "tools/call",
				    json_pack("{s:s,s:{s:f,s:i}}", "name",
					      "trigger-long-running-operation", "arguments",
					      "duration", 1.5, "steps", 1), 0, 0, &slow, &e), 0);
	cr_assert_eq(mcp_sync_start(c, "tools/call",
				    json_pack("{s:s,s:{s:s}}", "name", "echo", "arguments",
					      "message", "first"), 0, 0, &fast, &e), 0);
	cr_assert_lt(mcp_pending_id(slow), mcp_pending_id(fast));
	double t0 = mt_now();
	cr_assert_eq(mcp_sync_wait(c, fast, &rf, &e), 0, "%s", e.msg);
	double fast_s = mt_now() - t0;
	cr_assert_str_eq(mt_text(rf), "Echo: first");
	cr_assert_lt(fast_s, 1.2, "the later request's reply came first (%.2fs)", fast_s);
	cr_assert_eq(mcp_sync_wait(c, slow, &rs, &e), 0, "%s", e.msg);
	cr_assert(strstr(mt_text(rs), "Long running operation completed"));
	json_decref(rs);
	json_decref(rf);
	mcp_sync_close(c);
}

Test(mcp_everything, roots_listed_and_changed)
{
	char d1[] = "/tmp/ironclaw-roots-aXXXXXX", d2[] = "/tmp/ironclaw-roots-bXXXXXX";
	cr_assert(mkdtemp(d1) && mkdtemp(d2));
	cr_assert_eq(mcp_config_add_root(&cfg, d1), 0);
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "get-roots-list", NULL, &res, &e), 0, "%s", e.msg);
	cr_assert(strstr(mt_text(res), d1), "roots answer lacks %s: %s", d1, mt_text(res));
	json_decref(res);

	const char *next[] = { d2, NULL };
	cr_assert_eq(mcp_client_set_roots(c, next, &e), 0, "%s", e.msg);
	/* The server asks again (roots/list) after our list_changed; let it. */
	int seen = 0;
	for (int i = 0; i < 50 && !seen; i++) {
		mcp_sync_pump(c, 100);
		cr_assert_eq(mcp_sync_call_tool(c, "get-roots-list", NULL, &res, &e), 0, "%s", e.msg);
		seen = strstr(mt_text(res), d2) && !strstr(mt_text(res), d1);
		json_decref(res);
	}
	cr_assert(seen, "the server never saw the changed roots");
	mcp_sync_close(c);
	rmdir(d1);
	rmdir(d2);
}

static void on_sampling(void *opaque, struct mcp_responder *r, const char *method,
			json_t *params)
{
	int *calls = opaque;
	cr_assert_str_eq(method, "sampling/createMessage");
	cr_assert(json_is_array(json_object_get(params, "messages")));
	(*calls)++;
	mcp_respond(r, json_pack("{s:s,s:{s:s,s:s},s:s,s:s}", "role", "assistant", "content", "type", "text",
			 "text", "sampled-answer-42", "model", "ironclaw-test", "stopReason",
			 "endTurn"));
}

Test(mcp_everything, sampling_request_answered)
{
	int calls = 0;
	struct mcp_events ev = { .on_request = on_sampling, .opaque = &calls };
	struct mcp_client *c = mt_connect(&cfg, &ev);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "trigger-sampling-request",
				   json_pack("{s:s}", "prompt", "hello"), &res, &e), 0, "%s", e.msg);
	cr_assert_eq(calls, 1);
	cr_assert(strstr(mt_text(res), "sampled-answer-42"), "%s", mt_text(res));
	json_decref(res);
	mcp_sync_close(c);
}

static char *render(json_t *res)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	mcp_render_result(f, res);
	fclose(f);
	return out;
}

Test(mcp_everything, content_types_rendered)
{
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	char *txt;

	cr_assert_eq(mcp_sync_call_tool(c, "get-tiny-image", NULL, &res, &e), 0, "%s", e.msg);
	txt = render(res);
	cr_assert(strstr(txt, "[image image/png, "), "%s", txt);
	free(txt);
	json_decref(res);

	cr_assert_eq(mcp_sync_call_tool(c, "get-resource-links", json_pack("{s:i}", "count", 2), &res,
				   &e), 0, "%s", e.msg);
	txt = render(res);
	cr_assert(strstr(txt, "[resource link demo://"), "%s", txt);
	free(txt);
	json_decref(res);

	cr_assert_eq(mcp_sync_call_tool(c, "get-resource-reference", NULL, &res, &e), 0, "%s", e.msg);
	txt = render(res);
	cr_assert(strstr(txt, "[resource demo://"), "%s", txt);
	free(txt);
	json_decref(res);

	cr_assert_eq(mcp_sync_call_tool(c, "get-structured-content",
				   json_pack("{s:s}", "location", "Chicago"), &res, &e), 0, "%s", e.msg);
	cr_assert(json_is_object(json_object_get(res, "structuredContent")));
	txt = render(res);
	cr_assert(strstr(txt, "structured content:") && strstr(txt, "\"temperature\""), "%s", txt);
	free(txt);
	json_decref(res);

	/* Audio has no tool here; render one as a server would send it. */
	json_t *audio = json_pack("{s:[{s:s,s:s,s:s}]}", "content", "type", "audio", "mimeType",
				  "audio/wav", "data", "UklGRg==");
	txt = render(audio);
	cr_assert_str_eq(txt, "[audio audio/wav, 4 bytes]\n");
	free(txt);
	json_decref(audio);
	mcp_sync_close(c);
}

Test(mcp_everything, resources_prompts_and_errors)
{
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *items = NULL, *res = NULL;
	cr_assert_eq(mcp_sync_list_all(c, "resources", &items, &e), 0, "%s", e.msg);
	cr_assert_gt(json_array_size(items), 0);
	const char *uri = json_string_value(json_object_get(json_array_get(items, 0), "uri"));
	cr_assert_eq(mcp_sync_read_resource(c, uri, &res, &e), 0, "%s", e.msg);
	json_decref(res);
	json_decref(items);
	cr_assert_eq(mcp_sync_list_all(c, "prompts", &items, &e), 0, "%s", e.msg);
	cr_assert_gt(json_array_size(items), 0);
	json_decref(items);
	cr_assert_eq(mcp_sync_get_prompt(c, "simple-prompt", NULL, &res, &e), 0, "%s", e.msg);
	json_decref(res);
	/* A JSON-RPC error is a protocol error, not a tool result. */
	cr_assert_eq(mcp_sync_request(c, "no/such/method", NULL, 0, &res, &e), -EPROTO);
	cr_assert(strstr(e.msg, "-32601"), "%s", e.msg);
	mcp_sync_close(c);
}

/* A stdio server sees PATH, HOME and its configured env, never the rest of ours
 * (API keys live there). server-everything's get-env tool shows its environment. */
Test(mcp_everything, server_environment_is_filtered)
{
	setenv("IRONCLAW_FAKE_API_KEY", "sk-must-not-leak", 1);
	cfg.env = calloc(2, sizeof(char *));
	cfg.env[0] = strdup("GIVEN_TO_SERVER=yes-given");
	struct mcp_client *c = mt_connect(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_call_tool(c, "get-env", NULL, &res, &e), 0, "%s", e.msg);
	const char *env = mt_text(res);
	cr_assert(strstr(env, "yes-given"), "configured env missing: %.300s", env);
	cr_assert(strstr(env, "\"PATH\""), "PATH missing: %.300s", env);
	cr_assert_null(strstr(env, "sk-must-not-leak"), "our secret reached the server");
	json_decref(res);
	mcp_sync_close(c);
	unsetenv("IRONCLAW_FAKE_API_KEY");
}
