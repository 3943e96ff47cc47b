/* SSE parser: priming events, multi-line data, id and retry, CR/LF/CRLF line
 * ends split across reads, comments, BOM, and the size cap. */
#include <criterion/criterion.h>
#include <string.h>

#include "net/net.h"

struct got {
	int n;
	char data[8][256];
	char event[8][64];
	char id[8][64];
};

static void on_event(void *opaque, const struct net_sse_event *ev)
{
	struct got *g = opaque;
	cr_assert_lt(g->n, 8);
	snprintf(g->data[g->n], sizeof(g->data[0]), "%.*s", (int)ev->data_len, ev->data);
	snprintf(g->event[g->n], sizeof(g->event[0]), "%s", ev->event);
	snprintf(g->id[g->n], sizeof(g->id[0]), "%s", ev->id ? ev->id : "");
	g->n++;
}

static void feed_bytewise(struct net_sse *s, const char *text)
{
	for (size_t i = 0; text[i]; i++)
		net_sse_feed(s, text + i, 1);
}

Test(net_sse, priming_event_sets_id_and_retry_but_is_not_dispatched)
{
	struct got g = { 0 };
	struct net_sse s;
	net_sse_init(&s, 1024, on_event, &g);
	const char *t = "id: event-1\nretry: 500\ndata: \n\n";
	net_sse_feed(&s, t, strlen(t));
	cr_assert_eq(g.n, 0);
	cr_assert_eq(s.retry_ms, 500);
	cr_assert_str_eq(s.last_id, "event-1");
	t = "event: message\ndata: {\"a\":1}\n\n";
	net_sse_feed(&s, t, strlen(t));
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.data[0], "{\"a\":1}");
	cr_assert_str_eq(g.id[0], "event-1", "the last id carries over");
	net_sse_free(&s);
}

Test(net_sse, multiline_data_and_line_endings_split_anywhere)
{
	const char *variants[] = {
		"data: {\"x\":\ndata: 1}\n\n",
		"data: {\"x\":\r\ndata: 1}\r\n\r\n",
		"data: {\"x\":\rdata: 1}\r\r",
		"data:{\"x\":\ndata:1}\n\n",
	};
	for (size_t v = 0; v < 4; v++) {
		struct got g = { 0 };
		struct net_sse s;
		net_sse_init(&s, 1024, on_event, &g);
		feed_bytewise(&s, variants[v]);
		cr_assert_eq(g.n, 1, "variant %zu", v);
		cr_assert_str_eq(g.data[0], v == 3 ? "{\"x\":\n1}" : "{\"x\":\n1}", "variant %zu", v);
		cr_assert_str_eq(g.event[0], "message");
		net_sse_free(&s);
	}
}

Test(net_sse, comments_unknown_fields_bom_and_bad_retry)
{
	struct got g = { 0 };
	struct net_sse s;
	net_sse_init(&s, 1024, on_event, &g);
	const char *t = "\xEF\xBB\xBF: keep-alive\nfoo: bar\nretry: 12x\nevent: other\ndata\n\n"
			"data: two\n\n";
	net_sse_feed(&s, t, strlen(t));
	cr_assert_eq(s.retry_ms, -1, "a retry that is not all digits is ignored");
	/* "data" alone is an empty data line: an empty event carries no message. */
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.data[0], "two");
	cr_assert_str_eq(g.event[0], "message", "the event type resets after each event");
	net_sse_feed(&s, "event: other\ndata: 3\n\n", 22);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.event[1], "other");
	net_sse_free(&s);
}

Test(net_sse, oversized_event_dropped_then_parsing_resumes)
{
	struct got g = { 0 };
	struct net_sse s;
	net_sse_init(&s, 64, on_event, &g);
	char big[300];
	memset(big, 'A', sizeof(big));
	net_sse_feed(&s, "data: ", 6);
	net_sse_feed(&s, big, sizeof(big));
	net_sse_feed(&s, "\n\n", 2);
	cr_assert_eq(g.n, 0);
	cr_assert_eq(s.dropped, 1);
	/* Many small data lines that add up past the cap: dropped as well. */
	for (int i = 0; i < 20; i++)
		net_sse_feed(&s, "data: 0123456789\n", 17);
	net_sse_feed(&s, "\n", 1);
	cr_assert_eq(g.n, 0);
	cr_assert_eq(s.dropped, 2);
	net_sse_feed(&s, "data: ok\n\n", 10);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.data[0], "ok");
	net_sse_free(&s);
}

Test(net_sse, id_with_nul_ignored)
{
	struct got g = { 0 };
	struct net_sse s;
	net_sse_init(&s, 1024, on_event, &g);
	net_sse_feed(&s, "id: good\n\n", 10);
	net_sse_feed(&s, "id: b\0d\ndata: x\n\n", 17);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.id[0], "good");
	net_sse_free(&s);
}
