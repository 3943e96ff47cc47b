/* Frame codec: every split of the input decodes the same frames, the size cap is
 * enforced before allocation, and bad bodies fail the connection cleanly. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

struct collected {
	int count;
	char *texts[8];
};

static int collect(json_t *msg, void *ctx)
{
	struct collected *c = ctx;
	if (c->count < 8)
		c->texts[c->count] = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
	c->count++;
	return 0;
}

static void collected_free(struct collected *c)
{
	for (int i = 0; i < c->count && i < 8; i++)
		free(c->texts[i]);
}

static uint8_t *encode_text(const char *text, size_t *len)
{
	size_t n = strlen(text);
	uint8_t *f = malloc(n + 4);
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	memcpy(f + 4, text, n);
	*len = n + 4;
	return f;
}

Test(frame, one_byte_at_a_time)
{
	json_t *msg = json_pack("{s:s,s:i,s:s}", "jsonrpc", "2.0", "id", 7, "method", "ping");
	size_t len;
	uint8_t *f = frame_encode(msg, &len);
	cr_assert_not_null(f);
	struct frame_decoder d;
	frame_decoder_init(&d);
	struct collected c = { 0 };
	for (size_t i = 0; i < len; i++) {
		cr_assert_eq(c.count, 0, "frame delivered early at byte %zu", i);
		cr_assert_eq(frame_decoder_feed(&d, f + i, 1, collect, &c), 0);
	}
	cr_assert_eq(c.count, 1);
	cr_assert_str_eq(c.texts[0], "{\"id\":7,\"jsonrpc\":\"2.0\",\"method\":\"ping\"}");
	cr_assert(frame_decoder_idle(&d));
	collected_free(&c);
	frame_decoder_free(&d);
	free(f);
	json_decref(msg);
}

Test(frame, three_frames_in_one_read_and_split_across_reads)
{
	const char *texts[3] = { "{\"a\":1}", "{\"b\":[1,2,3]}", "{\"c\":\"\xc3\xa9\"}" };
	uint8_t all[256];
	size_t total = 0;
	for (int i = 0; i < 3; i++) {
		size_t n;
		uint8_t *f = encode_text(texts[i], &n);
		memcpy(all + total, f, n);
		total += n;
		free(f);
	}
	/* Every cut point of the concatenation must yield the same three frames. */
	for (size_t cut = 0; cut <= total; cut++) {
		struct frame_decoder d;
		frame_decoder_init(&d);
		struct collected c = { 0 };
		cr_assert_eq(frame_decoder_feed(&d, all, cut, collect, &c), 0);
		cr_assert_eq(frame_decoder_feed(&d, all + cut, total - cut, collect, &c), 0);
		cr_assert_eq(c.count, 3, "cut %zu gave %d frames", cut, c.count);
		cr_assert_str_eq(c.texts[0], "{\"a\":1}");
		cr_assert_str_eq(c.texts[1], "{\"b\":[1,2,3]}");
		cr_assert_str_eq(c.texts[2], "{\"c\":\"\xc3\xa9\"}");
		collected_free(&c);
		frame_decoder_free(&d);
	}
}

Test(frame, sixteen_mib_frame_accepted)
{
	/* {"d":"xxxx..."} padded to exactly FRAME_MAX bytes of body. */
	size_t n = FRAME_MAX;
	uint8_t *f = malloc(n + 4);
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	memcpy(f + 4, "{\"d\":\"", 6);
	memset(f + 10, 'x', n - 8);
	memcpy(f + 4 + n - 2, "\"}", 2);
	struct frame_decoder d;
	frame_decoder_init(&d);
	struct collected c = { 0 };
	cr_assert_eq(frame_decoder_feed(&d, f, n + 4, collect, &c), 0, "%s", d.error);
	cr_assert_eq(c.count, 1);
	cr_assert_eq(strlen(c.texts[0]), n);
	collected_free(&c);
	frame_decoder_free(&d);
	free(f);
}

Test(frame, over_sixteen_mib_rejected_before_allocation)
{
	uint32_t n = FRAME_MAX + 1;
	uint8_t hdr[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
	struct frame_decoder d;
	frame_decoder_init(&d);
	cr_assert_eq(frame_decoder_feed(&d, hdr, 4, collect, NULL), -EMSGSIZE);
	/* Only the header was seen, and no body buffer exists. */
	cr_assert_null(d.body);
	cr_assert(strstr(d.error, "16 MiB"), "error: %s", d.error);
	/* The failure is sticky: later bytes are not parsed. */
	uint8_t more[8] = "{\"a\":1}";
	cr_assert_eq(frame_decoder_feed(&d, more, sizeof(more), collect, NULL), -EMSGSIZE);
	frame_decoder_free(&d);
}

Test(frame, max_length_header_rejected)
{
	uint8_t hdr[4] = { 0xff, 0xff, 0xff, 0xff };
	struct frame_decoder d;
	frame_decoder_init(&d);
	cr_assert_eq(frame_decoder_feed(&d, hdr, 4, NULL, NULL), -EMSGSIZE);
	cr_assert_null(d.body);
	frame_decoder_free(&d);
}

static void expect_bad_body(const char *body, size_t n, const char *why_fragment)
{
	uint8_t *f = malloc(n + 4);
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	memcpy(f + 4, body, n);
	struct frame_decoder d;
	frame_decoder_init(&d);
	struct collected c = { 0 };
	cr_assert_eq(frame_decoder_feed(&d, f, n + 4, collect, &c), -EBADMSG);
	cr_assert_eq(c.count, 0);
	cr_assert(strstr(d.error, why_fragment), "error '%s' lacks '%s'", d.error, why_fragment);
	frame_decoder_free(&d);
	free(f);
}

Test(frame, invalid_utf8_rejected)
{
	expect_bad_body("{\"a\":\"\xff\xfe\"}", 10, "UTF-8");
	/* An overlong encoding of '/' is invalid UTF-8 too. */
	expect_bad_body("{\"a\":\"\xc0\xaf\"}", 10, "UTF-8");
}

Test(frame, invalid_json_rejected)
{
	expect_bad_body("{\"a\":", 5, "JSON");
	expect_bad_body("{\"a\":1}{", 8, "JSON");
	expect_bad_body("\0\0\0\0", 4, "JSON");
}

Test(frame, non_object_rejected)
{
	expect_bad_body("[1,2]", 5, "array");
	expect_bad_body("\"hi\"", 4, "string");
	expect_bad_body("42", 2, "number");
	expect_bad_body("null", 4, "null");
}

Test(frame, empty_frame_rejected)
{
	uint8_t hdr[4] = { 0, 0, 0, 0 };
	struct frame_decoder d;
	frame_decoder_init(&d);
	cr_assert_eq(frame_decoder_feed(&d, hdr, 4, NULL, NULL), -EBADMSG);
	frame_decoder_free(&d);
}

Test(frame, partial_frame_is_not_idle)
{
	uint8_t part[6] = { 0, 0, 0, 7, '{', '"' };
	struct frame_decoder d;
	frame_decoder_init(&d);
	cr_assert_eq(frame_decoder_feed(&d, part, sizeof(part), NULL, NULL), 0);
	cr_assert_not(frame_decoder_idle(&d));
	frame_decoder_free(&d);
}

static int stop_after_one(json_t *msg, void *ctx)
{
	(void)msg;
	(*(int *)ctx)++;
	return 99;
}

Test(frame, callback_stop_is_returned)
{
	size_t n1, n2;
	uint8_t *a = encode_text("{\"a\":1}", &n1);
	uint8_t *b = encode_text("{\"b\":2}", &n2);
	uint8_t both[64];
	memcpy(both, a, n1);
	memcpy(both + n1, b, n2);
	struct frame_decoder d;
	frame_decoder_init(&d);
	int calls = 0;
	cr_assert_eq(frame_decoder_feed(&d, both, n1 + n2, stop_after_one, &calls), 99);
	cr_assert_eq(calls, 1);
	frame_decoder_free(&d);
	free(a);
	free(b);
}

Test(frame, encode_rejects_oversized)
{
	char *big = malloc(FRAME_MAX + 1);
	memset(big, 'y', FRAME_MAX);
	big[FRAME_MAX] = '\0';
	json_t *msg = json_pack("{s:s}", "d", big);
	size_t len = 0;
	cr_assert_null(frame_encode(msg, &len));
	json_decref(msg);
	free(big);
}

/* Reading straight into the body (the guest's stdin path): the frame completes
 * exactly as through feed, the room never reaches past the body, and filling
 * past it fails the decoder instead of writing out of bounds. */
Test(frame, body_room_read_in_place)
{
	size_t len, room;
	uint8_t *f = encode_text("{\"bulk\":\"abcdefghijklmnopqrstuvwxyz\"}", &len);
	struct frame_decoder d;
	frame_decoder_init(&d);
	struct collected c = { 0 };
	cr_assert_null(frame_decoder_body_room(&d, &room), "no body before a header");
	cr_assert_eq(room, 0);
	cr_assert_eq(frame_decoder_feed(&d, f, 4 + 3, collect, &c), 0);
	uint8_t *body = frame_decoder_body_room(&d, &room);
	cr_assert_not_null(body);
	cr_assert_eq(room, len - 4 - 3, "room %zu, body left %zu", room, len - 4 - 3);
	memcpy(body, f + 7, 5);
	cr_assert_eq(frame_decoder_body_filled(&d, 5, collect, &c), 0);
	cr_assert_eq(c.count, 0);
	body = frame_decoder_body_room(&d, &room);
	cr_assert_eq(room, len - 12);
	memcpy(body, f + 12, room);
	cr_assert_eq(frame_decoder_body_filled(&d, room, collect, &c), 0);
	cr_assert_eq(c.count, 1);
	cr_assert_str_eq(c.texts[0], "{\"bulk\":\"abcdefghijklmnopqrstuvwxyz\"}");
	cr_assert(frame_decoder_idle(&d));
	cr_assert_null(frame_decoder_body_room(&d, &room), "no body after delivery");

	/* Over the room: a failed decoder, nothing written. */
	cr_assert_eq(frame_decoder_feed(&d, f, 4, collect, &c), 0);
	frame_decoder_body_room(&d, &room);
	cr_assert_lt(frame_decoder_body_filled(&d, room + 1, collect, &c), 0);
	cr_assert_lt(frame_decoder_feed(&d, f, len, collect, &c), 0, "the failure is sticky");
	cr_assert_eq(c.count, 1);
	collected_free(&c);
	frame_decoder_free(&d);
	free(f);
}
