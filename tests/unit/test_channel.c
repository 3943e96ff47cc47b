/* The host channel (vm/channel.c) against a fake guest over a socketpair:
 * requests and replies matched by id, every way a guest can break the protocol
 * closing the channel with exactly one error, strict checks on replies and on
 * hello, the reply deadline, the write queue's byte cap, binary frames both
 * ways. */
#include "unit/chan_fake.h"

struct host {
	struct fake f;
	struct channel *ch;
	int errors;
	struct err last;
	int notes;
	char note_method[64];
	int datas;
	char data[64];
	int replies;
	int reply_ok[8];
	long reply_ctx[8];
	int replied;
};

static int host_notify(struct channel *ch, const char *method, json_t *params, void *ctx, struct err *e)
{
	struct host *h = ctx;
	(void)ch;
	(void)params;
	(void)e;
	h->notes++;
	snprintf(h->note_method, sizeof(h->note_method), "%s", method);
	return 0;
}

static int host_data(struct channel *ch, const struct frame_bin *b, void *ctx, struct err *e)
{
	struct host *h = ctx;
	(void)ch;
	(void)e;
	h->datas++;
	snprintf(h->data, sizeof(h->data), "%u:%llu:%.*s", b->arg, (unsigned long long)b->exec,
		 (int)b->len, (const char *)b->data);
	return 0;
}

static void host_error(struct channel *ch, const struct err *e, void *ctx)
{
	struct host *h = ctx;
	(void)ch;
	h->errors++;
	h->last = *e;
}

static struct host *g_host;

static void host_reply(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	(void)ch;
	(void)error;
	struct host *h = g_host;
	cr_assert_lt(h->replies, 8);
	h->reply_ok[h->replies] = result != NULL;
	h->reply_ctx[h->replies] = (long)(intptr_t)ctx;
	h->replies++;
	h->replied = 1;
}

static void host_open(struct host *h)
{
	static const struct channel_handlers handlers = {
		.notify = host_notify, .data = host_data, .on_error = host_error,
	};
	struct err e = { 0 };
	memset(h, 0, sizeof(*h));
	fake_init(&h->f);
	g_host = h;
	cr_assert_eq(channel_open_fd(&h->f.loop, h->f.host_fd, &handlers, h, &h->ch, &e), 0, "%s", e.msg);
}

static void host_close(struct host *h)
{
	channel_close(h->ch);
	fake_fini(&h->f);
}

/* Sends text from the guest and expects the channel to fail with one error
 * mentioning needle. */
static void expect_failure_after(struct host *h, const char *needle)
{
	fake_run_until(&h->f, &h->errors);
	cr_assert_eq(h->errors, 1, "%d errors reported", h->errors);
	cr_assert(strstr(h->last.msg, needle), "error lacks '%s': %s", needle, h->last.msg);
	/* Nothing is delivered after the failure. */
	int notes = h->notes;
	fake_send_text(&h->f, "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":2,\"kernel\":\"k\"}}");
	uv_run(&h->f.loop, UV_RUN_NOWAIT);
	cr_assert_eq(h->notes, notes);
	cr_assert_eq(h->errors, 1);
}

static void guest_says(const char *text, const char *needle)
{
	struct host h;
	host_open(&h);
	fake_send_text(&h.f, text);
	expect_failure_after(&h, needle);
	host_close(&h);
}

TestSuite(channel);

Test(channel, replies_are_matched_by_id)
{
	struct host h;
	host_open(&h);
	long a = channel_request(h.ch, "ping", json_object(), host_reply, (void *)1);
	long b = channel_request(h.ch, "exec.kill", json_pack("{s:i}", "exec", 1), host_reply, (void *)2);
	cr_assert_gt(a, 0);
	cr_assert_gt(b, a);
	json_t *ra = fake_recv(&h.f), *rb = fake_recv(&h.f);
	cr_assert_str_eq(fake_method(ra), "ping");
	cr_assert_str_eq(fake_method(rb), "exec.kill");
	/* Answer out of order. */
	fake_send(&h.f, rpc_result(fake_id(rb), json_object()));
	fake_send(&h.f, rpc_result(fake_id(ra), json_object()));
	while (h.replies < 2)
		fake_run_until(&h.f, &h.replied), h.replied = 0;
	cr_assert_eq(h.reply_ctx[0], 2);
	cr_assert_eq(h.reply_ctx[1], 1);
	cr_assert(h.reply_ok[0] && h.reply_ok[1]);
	cr_assert_eq(h.errors, 0);
	host_close(&h);
}

Test(channel, valid_hello_and_binary_output_are_delivered)
{
	struct host h;
	host_open(&h);
	fake_send_text(&h.f, "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":2,\"kernel\":\"6.1\"}}");
	fake_send_output(&h.f, 7, 2, "oops");
	fake_run_until(&h.f, &h.datas);
	cr_assert_eq(h.notes, 1);
	cr_assert_str_eq(h.note_method, "hello");
	cr_assert_str_eq(h.data, "2:7:oops");
	cr_assert_eq(h.errors, 0);
	host_close(&h);
}

Test(channel, unknown_reply_id_closes_with_one_error)
{
	struct host h;
	host_open(&h);
	channel_request(h.ch, "ping", NULL, host_reply, (void *)1);
	fake_send_text(&h.f, "{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{}}");
	expect_failure_after(&h, "never sent");
	/* The outstanding request was answered with (NULL, NULL). */
	cr_assert_eq(h.replies, 1);
	cr_assert_eq(h.reply_ok[0], 0);
	host_close(&h);
}

Test(channel, bad_frames_close_with_one_error)
{
	guest_says("garbage!", "not valid UTF-8 JSON");
	guest_says("[1,2]", "not an object");
	guest_says("{\"jsonrpc\":\"1.0\",\"method\":\"hello\"}", "invalid JSON-RPC");
}

Test(channel, a_request_from_the_guest_closes)
{
	guest_says("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"exec.start\",\"params\":{}}",
		   "may only notify");
}

Test(channel, unknown_notification_closes)
{
	guest_says("{\"jsonrpc\":\"2.0\",\"method\":\"surprise\",\"params\":{}}", "unknown notification");
}

Test(channel, hello_is_checked_strictly)
{
	guest_says("{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":\"2\",\"kernel\":\"k\"}}",
		   "\"version\" must be an integer");
	guest_says("{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":2,\"kernel\":\"k\",\"x\":1}}",
		   "unknown field \"x\"");
	guest_says("{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":2}}",
		   "missing \"kernel\"");
	guest_says("{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":1,\"kernel\":\"k\"}}",
		   "make image");
}

/* One request of method, answered with text (%ld = the request id). */
static void reply_says(const char *method, json_t *params, const char *fmt, const char *needle)
{
	struct host h;
	char text[512];
	host_open(&h);
	long id = channel_request(h.ch, method, params, host_reply, NULL);
	cr_assert_gt(id, 0);
	fake_recv(&h.f);
	const char *hole = strstr(fmt, "%ld");
	cr_assert_not_null(hole);
	snprintf(text, sizeof(text), "%.*s%ld%s", (int)(hole - fmt), fmt, id, hole + 3);
	fake_send_text(&h.f, text);
	expect_failure_after(&h, needle);
	host_close(&h);
}

Test(channel, replies_are_checked_strictly)
{
	reply_says("exec.start", json_object(), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"pid\":1,\"x\":2}}",
		   "unknown field \"x\"");
	reply_says("exec.start", json_object(), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"pid\":\"1\"}}",
		   "\"pid\" must be an integer");
	reply_says("exec.start", json_object(), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{}}",
		   "missing \"pid\"");
	reply_says("ping", NULL, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"extra\":true}}",
		   "unknown field");
	reply_says("ping", NULL, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":[]}",
		   "result must be an object");
	reply_says("file.get", json_object(), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"data\":\"@@@@\",\"size\":1,\"eof\":true}}",
		   "base64");
	reply_says("file.put", json_object(), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"size\":-1}}",
		   "\"size\" must be between");
	reply_says("ping", NULL, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"error\":{\"code\":1,\"message\":\"m\",\"extra\":1}}",
		   "unknown field");
}

Test(channel, a_reply_that_never_comes_hits_the_deadline)
{
	struct host h;
	host_open(&h);
	channel_set_reply_timeout(h.ch, 100);
	channel_request(h.ch, "file.get", json_object(), host_reply, (void *)1);
	fake_recv(&h.f);
	fake_run_until(&h.f, &h.errors);
	cr_assert_eq(h.errors, 1);
	cr_assert_eq(h.last.code, -ETIMEDOUT);
	cr_assert(strstr(h.last.msg, "did not answer file.get"), "%s", h.last.msg);
	cr_assert_eq(h.replies, 1);
	cr_assert_eq(h.reply_ok[0], 0);
	host_close(&h);
}

static void on_later(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

Test(channel, an_answered_request_does_not_time_out)
{
	struct host h;
	uv_timer_t later;
	int passed = 0;
	host_open(&h);
	channel_set_reply_timeout(h.ch, 100);
	channel_request(h.ch, "ping", NULL, host_reply, NULL);
	fake_send(&h.f, rpc_result(fake_id(fake_recv(&h.f)), json_object()));
	fake_run_until(&h.f, &h.replied);
	/* Run well past the deadline: an armed one would fail the channel. */
	uv_timer_init(&h.f.loop, &later);
	later.data = &passed;
	uv_timer_start(&later, on_later, 400, 0);
	fake_run_until(&h.f, &passed);
	uv_close((uv_handle_t *)&later, NULL);
	cr_assert_eq(h.errors, 0, "%s", h.last.msg);
	host_close(&h);
}

Test(channel, the_write_queue_has_a_byte_cap)
{
	struct host h;
	host_open(&h);
	/* The guest never reads: requests pile up in the write queue. */
	char *big = malloc(1u << 20);
	memset(big, 'a', (1u << 20) - 1);
	big[(1u << 20) - 1] = '\0';
	long rc = 0;
	int sent = 0;
	while (sent < 200 && (rc = channel_request(h.ch, "file.put",
			json_pack("{s:s,s:s}", "path", "/x", "data", big), NULL, NULL)) > 0)
		sent++;
	cr_assert_eq(rc, -ENOBUFS, "request %d: %ld", sent, rc);
	cr_assert_leq(channel_write_backlog(h.ch), CHANNEL_WRITE_MAX);
	cr_assert_gt(sent, 0);
	free(big);
	host_close(&h);
}

Test(channel, stdin_goes_as_a_binary_request)
{
	struct host h;
	host_open(&h);
	long id = channel_request_stdin(h.ch, 5, "abc", 3, 1, host_reply, (void *)3);
	cr_assert_gt(id, 0);
	struct fake_bin *b = fake_recv_bin(&h.f);
	cr_assert_eq(b->hdr.type, FRAME_BIN_STDIN);
	cr_assert_eq(b->hdr.arg, FRAME_BIN_EOF);
	cr_assert_eq(b->hdr.exec, 5);
	cr_assert_eq(b->hdr.id, (uint64_t)id);
	cr_assert_eq(b->hdr.len, 3);
	cr_assert_eq(memcmp(b->data, "abc", 3), 0);
	fake_send(&h.f, rpc_result(id, json_object()));
	fake_run_until(&h.f, &h.replied);
	cr_assert_eq(h.reply_ctx[0], 3);
	host_close(&h);
}

Test(channel, binary_stdin_from_the_guest_closes)
{
	struct host h;
	host_open(&h);
	uint8_t pre[FRAME_BIN_PREFIX];
	struct frame_bin b = { .type = FRAME_BIN_STDIN, .exec = 1, .id = 1, .len = 0 };
	cr_assert_eq(frame_bin_header(&b, pre), 0);
	fake_send_raw(&h.f, pre, sizeof(pre));
	expect_failure_after(&h, "only the host may send");
	host_close(&h);
}

Test(channel, eof_in_the_middle_of_a_frame)
{
	struct host h;
	host_open(&h);
	fake_send_raw(&h.f, "\0\0\0\100{\"js", 8);
	close(h.f.fd);
	h.f.fd = -1;
	fake_run_until(&h.f, &h.errors);
	cr_assert_eq(h.errors, 1);
	cr_assert(strstr(h.last.msg, "in the middle of a frame"), "%s", h.last.msg);
	host_close(&h);
}
