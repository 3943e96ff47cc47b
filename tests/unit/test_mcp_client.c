/* The MCP client against fake servers on the other end of a socketpair, driven
 * on the same libuv loop as the client (no npm, no process): out-of-order
 * replies matched by id, server requests (ping, roots/list, sampling answered
 * later through a responder) while a call is pending, a timeout that sends
 * notifications/cancelled and drops the late reply, a server that goes away
 * mid-call, a valid-JSON line over the cap, and two clients on one loop that
 * progress independently. Every test ends with uv_loop_close() == 0: nothing
 * the client made is left open. Ordering is by events, never by sleeps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "mcp/mcp.h"
#include "mcp/wire.h"

/* ---- a fake server: newline-delimited JSON on one end of a socketpair ---- */

struct fake;
typedef void (*fake_handler)(struct fake *f, json_t *msg);

struct fake {
	uv_pipe_t pipe;
	struct mcp_lines lines;
	fake_handler on_msg;
	json_t *seen;             /* every message the client sent, in order */
	json_t *held;             /* requests kept to answer later */
	char rd[65536];
	void *test;               /* the test's own state */
	int closed;
};

static uv_loop_t loop;

static void fake_write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
	free(w);
}

static void fake_send(struct fake *f, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	size_t n = strlen(s);
	char *line = malloc(n + 1);
	memcpy(line, s, n);
	line[n] = '\n';
	free(s);
	uv_write_t *w = malloc(sizeof(*w));
	w->data = line;
	uv_buf_t b = uv_buf_init(line, (unsigned)n + 1);
	cr_assert_eq(uv_write(w, (uv_stream_t *)&f->pipe, &b, 1, fake_write_done), 0);
	json_decref(msg);
}

static void fake_reply(struct fake *f, json_t *req, json_t *result)
{
	fake_send(f, json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id",
			       json_object_get(req, "id"), "result", result));
}

static const char *method_of(json_t *msg)
{
	return json_string_value(json_object_get(msg, "method"));
}

static const char *tool_of(json_t *msg)
{
	return json_string_value(json_object_get(json_object_get(msg, "params"), "name"));
}

static json_t *text_result(const char *text)
{
	return json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
}

/* Answers the legacy handshake; everything else goes to the test's handler. */
static void fake_on_line(void *opaque, const char *line, size_t len)
{
	struct fake *f = opaque;
	json_t *msg = json_loadb(line, len, 0, NULL);
	cr_assert(msg, "the client wrote a line that is not JSON");
	json_array_append(f->seen, msg);
	const char *m = method_of(msg);
	if (m && !strcmp(m, "initialize"))
		fake_reply(f, msg, json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion",
					     "2025-06-18", "capabilities", "serverInfo", "name",
					     "fake", "version", "1"));
	else if (!(m && !strcmp(m, "notifications/initialized")) && f->on_msg)
		f->on_msg(f, msg);
	json_decref(msg);
}

static void fake_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	struct fake *f = h->data;
	(void)sz;
	*b = uv_buf_init(f->rd, sizeof(f->rd));
}

static void fake_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct fake *f = s->data;
	if (n > 0)
		mcp_lines_feed(&f->lines, b->base, (size_t)n, fake_on_line, f);
	else if (n < 0)
		uv_read_stop(s);
}

static void fake_closed(uv_handle_t *h)
{
	struct fake *f = h->data;
	f->closed = 1;
}

static void fake_close(struct fake *f)
{
	if (!uv_is_closing((uv_handle_t *)&f->pipe))
		uv_close((uv_handle_t *)&f->pipe, fake_closed);
}

/* A fake on one end; cfg is set up for the client to take the other. */
static void fake_start(struct fake *f, struct mcp_server_config *cfg, const char *name,
		       fake_handler h, void *test)
{
	int sv[2];
	memset(f, 0, sizeof(*f));
	memset(cfg, 0, sizeof(*cfg));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(uv_pipe_init(&loop, &f->pipe, 0), 0);
	cr_assert_eq(uv_pipe_open(&f->pipe, sv[1]), 0);
	f->pipe.data = f;
	f->on_msg = h;
	f->test = test;
	f->seen = json_array();
	f->held = json_array();
	mcp_lines_init(&f->lines, 16 << 20);
	uv_read_start((uv_stream_t *)&f->pipe, fake_alloc, fake_on_read);
	cfg->name = strdup(name);
	cfg->kind = MCP_FD;
	cfg->fd = sv[0];
	cfg->timeout_ms = 5000;
	cfg->line_max = MCP_LINE_MAX_DEFAULT;
	cfg->protocol_version = strdup("2025-06-18");   /* straight to initialize */
}

static void fake_free(struct fake *f)
{
	mcp_lines_free(&f->lines);
	json_decref(f->seen);
	json_decref(f->held);
}

/* ---- the loop and the client ---- */

static void run_until(const int *flag)
{
	while (!*flag)
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			cr_assert(*flag, "the loop ran dry before the event");
}

static void on_connected(void *opaque, int rc, const struct err *e)
{
	cr_assert_eq(rc, 0, "connect: %s", e ? e->msg : "");
	*(int *)opaque = 1;
}

static struct mcp_client *client_up(const struct mcp_server_config *cfg,
				    const struct mcp_events *ev)
{
	struct mcp_client *c;
	struct err e = { 0 };
	int up = 0;
	cr_assert_eq(mcp_client_new(&loop, cfg, ev, &c, &e), 0, "%s", e.msg);
	cr_assert_eq(mcp_client_connect(c, on_connected, &up, &e), 0, "%s", e.msg);
	run_until(&up);
	return c;
}

static void on_closed(void *opaque)
{
	*(int *)opaque = 1;
}

static void client_down(struct mcp_client *c)
{
	int closed = 0;
	mcp_client_close(c, on_closed, &closed);
	run_until(&closed);
}

/* Everything closed: the loop has nothing left (a leaked handle fails here). */
static void loop_done(void)
{
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open on the loop");
}

static void setup(void)
{
	cr_assert_eq(uv_loop_init(&loop), 0);
}

TestSuite(mcp_client, .init = setup, .timeout = 30);

/* One completion, recorded. */
struct outcome {
	int done;
	int rc;
	char text[256];
	char msg[ERR_MSG_MAX];
	int *order;               /* shared sequence counter */
	int seq;                  /* when this one completed */
};

static void on_result(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct outcome *o = opaque;
	o->done = 1;
	o->rc = rc;
	if (o->order)
		o->seq = ++*o->order;
	if (rc < 0) {
		snprintf(o->msg, sizeof(o->msg), "%s", e->msg);
		return;
	}
	json_t *c0 = json_array_get(json_object_get(res, "content"), 0);
	const char *t = json_string_value(json_object_get(c0, "text"));
	snprintf(o->text, sizeof(o->text), "%s", t ? t : "");
}

static void call(struct mcp_client *c, const char *tool, long timeout_ms, struct outcome *o)
{
	struct err e = { 0 };
	cr_assert_eq(mcp_client_request(c, "tools/call", json_pack("{s:s}", "name", tool),
					timeout_ms, 0, on_result, o, NULL, &e), 0, "%s", e.msg);
}

/* ---- out of order ---- */

/* Holds "slow"; answers "fast", then the held "slow". */
static void ooo_handler(struct fake *f, json_t *msg)
{
	if (!method_of(msg) || strcmp(method_of(msg), "tools/call"))
		return;
	if (!strcmp(tool_of(msg), "slow")) {
		json_array_append(f->held, msg);
		return;
	}
	fake_reply(f, msg, text_result("fast-answer"));
	fake_reply(f, json_array_get(f->held, 0), text_result("slow-answer"));
}

Test(mcp_client, out_of_order_replies_matched_by_id)
{
	struct fake f;
	struct mcp_server_config cfg;
	fake_start(&f, &cfg, "ooo", ooo_handler, NULL);
	struct mcp_client *c = client_up(&cfg, NULL);
	int order = 0;
	struct outcome slow = { .order = &order }, fast = { .order = &order };
	call(c, "slow", 0, &slow);
	call(c, "fast", 0, &fast);
	run_until(&slow.done);
	run_until(&fast.done);
	cr_assert_eq(fast.rc, 0, "%s", fast.msg);
	cr_assert_eq(slow.rc, 0, "%s", slow.msg);
	cr_assert_str_eq(fast.text, "fast-answer");
	cr_assert_str_eq(slow.text, "slow-answer");
	cr_assert_lt(fast.seq, slow.seq, "completions follow the replies, not the requests");
	client_down(c);
	fake_close(&f);
	loop_done();
	fake_free(&f);
	mcp_server_config_free(&cfg);
}

/* ---- server requests while a call is pending ---- */

struct sreq {
	struct fake *f;
	json_t *call;             /* our pending tools/call, held */
	json_t *answers;          /* the client's answers to the fake's requests, by id */
	struct mcp_responder *responder;
	uv_timer_t later;
	int sampled;
};

static void sreq_handler(struct fake *f, json_t *msg)
{
	struct sreq *t = f->test;
	const char *m = method_of(msg);
	if (m && !strcmp(m, "tools/call")) {
		t->call = json_incref(msg);
		/* The server's own ids: 0, a string, and an id equal to our call's. */
		fake_send(f, json_pack("{s:s,s:i,s:s}", "jsonrpc", "2.0", "id", 0, "method", "ping"));
		fake_send(f, json_pack("{s:s,s:s,s:s}", "jsonrpc", "2.0", "id", "r1", "method",
				       "roots/list"));
		fake_send(f, json_pack("{s:s,s:O,s:s,s:{s:[{s:s,s:{s:s,s:s}}],s:i}}", "jsonrpc",
				       "2.0", "id", json_object_get(msg, "id"), "method",
				       "sampling/createMessage", "params", "messages", "role", "user",
				       "content", "type", "text", "text", "hi", "maxTokens", 10));
		return;
	}
	if (!m) {
		/* An answer to one of ours. */
		json_t *id = json_object_get(msg, "id");
		char key[64];
		if (json_is_integer(id))
			snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(id));
		else
			snprintf(key, sizeof(key), "%s", json_string_value(id));
		json_object_set(t->answers, key, msg);
		if (json_object_size(t->answers) == 3)
			fake_reply(f, t->call, text_result("all answered"));
	}
}

static void sreq_answer_later(uv_timer_t *tm)
{
	struct sreq *t = tm->data;
	t->sampled = 1;
	mcp_respond(t->responder, json_pack("{s:s,s:{s:s,s:s},s:s}", "role", "assistant",
					    "content", "type", "text", "text", "later",
					    "model", "fake"));
	t->responder = NULL;
}

static void sreq_on_request(void *opaque, struct mcp_responder *r, const char *method,
			    json_t *params)
{
	struct sreq *t = opaque;
	cr_assert_str_eq(method, "sampling/createMessage");
	cr_assert(json_is_array(json_object_get(params, "messages")));
	/* Not answered here: kept, and answered from a later callback. */
	t->responder = r;
	uv_timer_start(&t->later, sreq_answer_later, 0, 0);
}

static void timer_closed(uv_handle_t *h)
{
	(void)h;
}

Test(mcp_client, server_requests_answered_while_a_call_waits)
{
	struct fake f;
	struct mcp_server_config cfg;
	struct sreq t = { .f = &f, .answers = json_object() };
	fake_start(&f, &cfg, "sreq", sreq_handler, &t);
	cr_assert_eq(mcp_config_add_root(&cfg, "/tmp"), 0);
	uv_timer_init(&loop, &t.later);
	t.later.data = &t;
	struct mcp_events ev = { .on_request = sreq_on_request, .opaque = &t };
	struct mcp_client *c = client_up(&cfg, &ev);
	struct outcome o = { 0 };
	call(c, "wait-for-answers", 0, &o);
	run_until(&o.done);
	cr_assert_eq(o.rc, 0, "%s", o.msg);
	cr_assert_str_eq(o.text, "all answered");
	cr_assert(t.sampled, "sampling was answered from the later callback");
	cr_assert(json_is_object(json_object_get(json_object_get(t.answers, "0"), "result")),
		  "ping with id 0 unanswered");
	json_t *roots = json_object_get(json_object_get(json_object_get(t.answers, "r1"),
							"result"), "roots");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(roots, 0), "uri")),
			 "file:///tmp");
	char callid[32];
	snprintf(callid, sizeof(callid), "%lld",
		 (long long)json_integer_value(json_object_get(t.call, "id")));
	json_t *sampled = json_object_get(json_object_get(t.answers, callid), "result");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sampled, "content"),
							   "text")), "later");
	client_down(c);
	fake_close(&f);
	uv_close((uv_handle_t *)&t.later, timer_closed);
	loop_done();
	json_decref(t.call);
	json_decref(t.answers);
	fake_free(&f);
	mcp_server_config_free(&cfg);
}

/* ---- timeout: cancelled, the late reply dropped ---- */

struct tmo {
	json_t *held;
	long long cancelled_id;
};

/* Holds "slow"; when told it was cancelled, sends the late reply anyway. */
static void tmo_handler(struct fake *f, json_t *msg)
{
	struct tmo *t = f->test;
	const char *m = method_of(msg);
	if (m && !strcmp(m, "tools/call") && !strcmp(tool_of(msg), "slow")) {
		t->held = json_incref(msg);
	} else if (m && !strcmp(m, "notifications/cancelled")) {
		t->cancelled_id = json_integer_value(json_object_get(json_object_get(msg, "params"),
								     "requestId"));
		fake_reply(f, t->held, text_result("too late"));
	} else if (m && !strcmp(m, "tools/call")) {
		fake_reply(f, msg, text_result("next"));
	}
}

Test(mcp_client, timeout_cancels_and_drops_the_late_reply)
{
	struct fake f;
	struct mcp_server_config cfg;
	struct tmo t = { .cancelled_id = -1 };
	fake_start(&f, &cfg, "tmo", tmo_handler, &t);
	struct mcp_client *c = client_up(&cfg, NULL);
	struct outcome o = { 0 };
	struct mcp_call *k;
	struct err e = { 0 };
	cr_assert_eq(mcp_client_request(c, "tools/call", json_pack("{s:s}", "name", "slow"), 100,
					0, on_result, &o, &k, &e), 0, "%s", e.msg);
	long long id = mcp_call_id(k);
	run_until(&o.done);
	cr_assert_eq(o.rc, -ETIMEDOUT, "rc %d: %s", o.rc, o.msg);
	cr_assert(strstr(o.msg, "timed out after 100 ms"), "%s", o.msg);
	/* The next call is answered after the late reply (one ordered stream): by
	 * its completion the late reply has been read, and dropped. */
	struct outcome next = { 0 };
	call(c, "next", 0, &next);
	run_until(&next.done);
	cr_assert_eq(next.rc, 0, "%s", next.msg);
	cr_assert_str_eq(next.text, "next", "the late reply was taken for another call");
	cr_assert_eq(t.cancelled_id, id, "notifications/cancelled named %lld, not %lld",
		     t.cancelled_id, id);
	cr_assert_eq(mcp_client_dropped_late(c), 1);
	client_down(c);
	fake_close(&f);
	loop_done();
	json_decref(t.held);
	fake_free(&f);
	mcp_server_config_free(&cfg);
}

/* ---- multi-round-trip: the call's timeout pauses while our handler answers ---- */

struct mrt {
	uv_timer_t later;
	struct mcp_responder *r;
	int asked;
	int answer_after_ms;      /* < 0: never (the handler cap must end the call) */
};

/* A 2026-07-28 server: tools/call asks for an elicitation first. */
static void mrt_handler(struct fake *f, json_t *msg)
{
	const char *m = method_of(msg);
	if (m && !strcmp(m, "server/discover")) {
		fake_reply(f, msg, json_pack("{s:[s],s:{},s:{s:{s:s,s:s}}}", "supportedVersions",
					     "2026-07-28", "capabilities", "_meta",
					     "io.modelcontextprotocol/serverInfo", "name", "fake",
					     "version", "1"));
	} else if (m && !strcmp(m, "tools/call")) {
		json_t *params = json_object_get(msg, "params");
		if (!json_object_get(params, "inputResponses"))
			fake_reply(f, msg, json_pack("{s:s,s:{s:{s:s,s:{s:s,s:{s:s}}}}}", "resultType",
				"input_required", "inputRequests", "ok", "method", "elicitation/create",
				"params", "message", "Sure?", "requestedSchema", "type", "object"));
		else
			fake_reply(f, msg, text_result("answered"));
	}
}

static void mrt_answer(uv_timer_t *tm)
{
	struct mrt *t = tm->data;
	mcp_respond(t->r, json_pack("{s:s,s:{}}", "action", "accept", "content"));
	t->r = NULL;
}

static void mrt_on_request(void *opaque, struct mcp_responder *r, const char *method,
			   json_t *params)
{
	struct mrt *t = opaque;
	(void)params;
	cr_assert_str_eq(method, "elicitation/create");
	t->asked++;
	t->r = r;
	if (t->answer_after_ms >= 0)
		uv_timer_start(&t->later, mrt_answer, (uint64_t)t->answer_after_ms, 0);
}

static void mrt_run(long input_timeout_ms, int answer_after_ms, struct outcome *o)
{
	struct fake f;
	struct mcp_server_config cfg;
	struct mrt t = { .answer_after_ms = answer_after_ms };
	fake_start(&f, &cfg, "mrt", mrt_handler, &t);
	free(cfg.protocol_version);
	cfg.protocol_version = strdup("2026-07-28");
	cfg.input_timeout_ms = input_timeout_ms;
	uv_timer_init(&loop, &t.later);
	t.later.data = &t;
	struct mcp_events ev = { .on_request = mrt_on_request, .opaque = &t };
	struct mcp_client *c = client_up(&cfg, &ev);
	cr_assert(mcp_client_is_modern(c));
	call(c, "confirm", 150, o);   /* the server's time: a few ms */
	run_until(&o->done);
	cr_assert_eq(t.asked, 1);
	if (t.r)
		mcp_respond(t.r, json_object());   /* after the call ended: dropped */
	client_down(c);
	fake_close(&f);
	uv_close((uv_handle_t *)&t.later, timer_closed);
	loop_done();
	fake_free(&f);
	mcp_server_config_free(&cfg);
}

/* The handler takes twice the call's timeout: the call still succeeds. */
Test(mcp_client, mrtr_handler_time_is_not_the_calls_timeout)
{
	struct outcome o = { 0 };
	mrt_run(0, 300, &o);
	cr_assert_eq(o.rc, 0, "%s", o.msg);
	cr_assert_str_eq(o.text, "answered");
}

/* A handler that never answers is bounded by inputTimeoutMs instead. */
Test(mcp_client, mrtr_handler_has_its_own_cap)
{
	struct outcome o = { 0 };
	mrt_run(200, -1, &o);
	cr_assert_eq(o.rc, -ETIMEDOUT, "rc %d: %s", o.rc, o.msg);
	cr_assert(strstr(o.msg, "handler did not answer") && strstr(o.msg, "inputTimeoutMs"),
		  "%s", o.msg);
}

/* ---- the server goes away mid-call ---- */

static void die_handler(struct fake *f, json_t *msg)
{
	if (method_of(msg) && !strcmp(method_of(msg), "tools/call"))
		fake_close(f);
}

Test(mcp_client, server_gone_mid_call_is_a_clean_error)
{
	struct fake f;
	struct mcp_server_config cfg;
	fake_start(&f, &cfg, "dies", die_handler, NULL);
	struct mcp_client *c = client_up(&cfg, NULL);
	struct outcome o = { 0 };
	call(c, "anything", 0, &o);
	run_until(&o.done);
	cr_assert_eq(o.rc, -EPIPE, "rc %d: %s", o.rc, o.msg);
	cr_assert(strstr(o.msg, "server 'dies' closed the connection"), "%s", o.msg);
	/* Later calls fail at once, with the same reason, and no callback. */
	struct err e = { 0 };
	cr_assert_eq(mcp_client_request(c, "tools/list", NULL, 0, 0, on_result, &o, NULL, &e),
		     -EPIPE);
	cr_assert(strstr(e.msg, "closed the connection"), "%s", e.msg);
	client_down(c);
	loop_done();
	fake_free(&f);
	mcp_server_config_free(&cfg);
}

/* ---- the line cap holds for a line that is valid JSON ---- */

/* Answers "big" with a valid JSON response far over the client's cap, then
 * (the stream goes on) "small" normally. */
static void big_handler(struct fake *f, json_t *msg)
{
	if (!method_of(msg) || strcmp(method_of(msg), "tools/call"))
		return;
	if (!strcmp(tool_of(msg), "big")) {
		char *pad = malloc(8192);
		memset(pad, 'x', 8191);
		pad[8191] = '\0';
		fake_reply(f, msg, text_result(pad));
		free(pad);
	} else {
		fake_reply(f, msg, text_result("small"));
	}
}

Test(mcp_client, line_cap_enforced_on_valid_json)
{
	struct fake f;
	struct mcp_server_config cfg;
	fake_start(&f, &cfg, "big", big_handler, NULL);
	cfg.line_max = 1024;
	struct mcp_client *c = client_up(&cfg, NULL);
	struct outcome o = { 0 };
	call(c, "big", 300, &o);
	run_until(&o.done);
	cr_assert_eq(o.rc, -ETIMEDOUT, "an over-cap line was delivered (rc %d, %zu bytes)", o.rc,
		     strlen(o.text));
	cr_assert(strstr(o.msg, "1 message line(s) over the 1024-byte cap"), "%s", o.msg);
	cr_assert(strstr(o.msg, "maxLineBytes"), "%s", o.msg);
	struct outcome small = { 0 };
	call(c, "small", 0, &small);
	run_until(&small.done);
	cr_assert_eq(small.rc, 0, "%s", small.msg);
	cr_assert_str_eq(small.text, "small");
	client_down(c);
	fake_close(&f);
	loop_done();
	fake_free(&f);
	mcp_server_config_free(&cfg);
}

/* ---- two clients, one loop ---- */

struct pair {
	struct fake *slow_server;
	json_t *held;
};

static void hold_handler(struct fake *f, json_t *msg)
{
	struct pair *p = f->test;
	if (method_of(msg) && !strcmp(method_of(msg), "tools/call"))
		p->held = json_incref(msg);
}

static void answer_handler(struct fake *f, json_t *msg)
{
	if (method_of(msg) && !strcmp(method_of(msg), "tools/call"))
		fake_reply(f, msg, text_result("quick"));
}

static void on_quick(void *opaque, int rc, json_t *res, const struct err *e)
{
	struct outcome *o = opaque;
	on_result(o, rc, res, e);
}

Test(mcp_client, two_clients_on_one_loop_progress_independently)
{
	struct fake fs, fq;
	struct mcp_server_config cs, cq;
	struct pair p = { .slow_server = &fs };
	fake_start(&fs, &cs, "slow", hold_handler, &p);
	fake_start(&fq, &cq, "quick", answer_handler, &p);
	struct mcp_client *slow = client_up(&cs, NULL);
	struct mcp_client *quick = client_up(&cq, NULL);
	int order = 0;
	struct outcome os = { .order = &order }, oq = { .order = &order };
	call(slow, "wait", 0, &os);
	/* The slow server has the request (an event, not a guess about time). */
	while (!p.held)
		uv_run(&loop, UV_RUN_ONCE);
	struct err e = { 0 };
	cr_assert_eq(mcp_client_request(quick, "tools/call", json_pack("{s:s}", "name", "q"), 0,
					0, on_quick, &oq, NULL, &e), 0, "%s", e.msg);
	run_until(&oq.done);
	cr_assert_eq(oq.rc, 0, "%s", oq.msg);
	cr_assert_not(os.done, "the slow call cannot be done: its server has not answered");
	fake_reply(&fs, p.held, text_result("slow at last"));
	run_until(&os.done);
	cr_assert_eq(os.rc, 0, "%s", os.msg);
	cr_assert_str_eq(os.text, "slow at last");
	cr_assert_lt(oq.seq, os.seq);
	client_down(slow);
	client_down(quick);
	fake_close(&fs);
	fake_close(&fq);
	loop_done();
	json_decref(p.held);
	fake_free(&fs);
	fake_free(&fq);
	mcp_server_config_free(&cs);
	mcp_server_config_free(&cq);
}

/* The synchronous wrapper refuses a client on a caller's loop (it would have
 * to run that loop from inside it). */
Test(mcp_client, sync_api_refuses_a_shared_loop)
{
	struct fake f;
	struct mcp_server_config cfg;
	fake_start(&f, &cfg, "shared", answer_handler, NULL);
	struct mcp_client *c = client_up(&cfg, NULL);
	struct err e = { 0 };
	json_t *res = NULL;
	cr_assert_eq(mcp_sync_request(c, "tools/list", NULL, 0, &res, &e), -EDEADLK);
	cr_assert(strstr(e.msg, "own loop"), "%s", e.msg);
	client_down(c);
	fake_close(&f);
	loop_done();
	fake_free(&f);
	mcp_server_config_free(&cfg);
}
