/* Server-Sent Events parser (the WHATWG event-stream format), shared by the MCP
 * Streamable HTTP transport and the model clients (streaming completions).
 *
 * Lines end in LF, CR or CRLF, and a CRLF may be split across two reads, so the
 * parser keeps a one-bit memory of a trailing CR. Fields: `data` lines are
 * joined with LF (multi-line events), `event` names the type, `id` sets the last
 * event id (kept across events: it is what a reconnect sends as Last-Event-ID),
 * `retry` sets the reconnection delay when it is all digits. A blank line
 * dispatches; an event with no data (the priming event servers send first) only
 * updates id and retry. Both the line and the data are capped: an event that
 * passes the cap is dropped whole, and parsing resumes at the next event. */
#include "net/net.h"

#include <string.h>

#include "core/log.h"

void net_sse_init(struct net_sse *s, size_t max,
		  void (*cb)(void *opaque, const struct net_sse_event *ev), void *opaque)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->line, max);
	buf_init(&s->data, max);
	s->retry_ms = -1;
	s->at_start = 1;
	s->cb = cb;
	s->opaque = opaque;
}

void net_sse_free(struct net_sse *s)
{
	buf_free(&s->line);
	buf_free(&s->data);
}

static void sse_reset_event(struct net_sse *s)
{
	buf_reset(&s->data);
	s->event[0] = '\0';
	s->has_data = 0;
	s->overflow = 0;
}

static void sse_dispatch(struct net_sse *s)
{
	if (s->overflow) {
		s->dropped++;
		log_warn("net: dropping a server-sent event larger than %zu bytes", s->data.max);
	} else if (s->has_data) {
		size_t len = s->data.len;
		/* Data lines were each followed by LF; the last one is not content. */
		if (len > 0)
			len--;
		if (s->data.data)
			s->data.data[len] = '\0';
		struct net_sse_event ev = {
			.event = s->event[0] ? s->event : "message",
			.data = s->data.data ? (const char *)s->data.data : "",
			.data_len = len,
			.id = s->has_id ? s->last_id : NULL,
		};
		/* Empty data (a priming event) carries no message for us. */
		if (s->cb && len > 0)
			s->cb(s->opaque, &ev);
	}
	sse_reset_event(s);
}

static int sse_all_digits(const char *p, size_t n)
{
	if (n == 0 || n > 9)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

static void sse_field(struct net_sse *s, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	size_t flen = colon ? (size_t)(colon - line) : n;
	const char *val = colon ? colon + 1 : line + n;
	size_t vlen = colon ? n - flen - 1 : 0;
	if (vlen > 0 && val[0] == ' ') {
		val++;
		vlen--;
	}
	if (flen == 4 && !memcmp(line, "data", 4)) {
		if (buf_append(&s->data, val, vlen) < 0 || buf_append(&s->data, "\n", 1) < 0)
			s->overflow = 1;
		s->has_data = 1;
	} else if (flen == 5 && !memcmp(line, "event", 5)) {
		if (vlen >= sizeof(s->event))
			vlen = sizeof(s->event) - 1;
		memcpy(s->event, val, vlen);
		s->event[vlen] = '\0';
	} else if (flen == 2 && !memcmp(line, "id", 2)) {
		/* An id with NUL is ignored by the spec; an over-long one we refuse. */
		if (!memchr(val, '\0', vlen) && vlen < sizeof(s->last_id)) {
			memcpy(s->last_id, val, vlen);
			s->last_id[vlen] = '\0';
			s->has_id = vlen > 0;
		}
	} else if (flen == 5 && !memcmp(line, "retry", 5)) {
		if (sse_all_digits(val, vlen)) {
			long v = 0;
			for (size_t i = 0; i < vlen; i++)
				v = v * 10 + (val[i] - '0');
			s->retry_ms = v;
		}
	}
	/* Other fields are ignored, as the format requires. */
}

static void sse_line_end(struct net_sse *s)
{
	if (s->line_over) {
		s->overflow = 1;
		s->line_over = 0;
		buf_reset(&s->line);
		return;
	}
	size_t n = s->line.len;
	const char *p = s->line.data ? (const char *)s->line.data : "";
	if (n == 0)
		sse_dispatch(s);
	else if (p[0] != ':')   /* a comment otherwise (keep-alives) */
		sse_field(s, p, n);
	buf_reset(&s->line);
}

void net_sse_feed(struct net_sse *s, const char *p, size_t n)
{
	if (s->at_start && n > 0) {
		/* A UTF-8 BOM may open the stream; only a whole one is skipped. */
		if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) {
			p += 3;
			n -= 3;
		}
		s->at_start = 0;
	}
	while (n > 0) {
		if (s->after_cr && p[0] == '\n') {
			s->after_cr = 0;
			p++;
			n--;
			continue;
		}
		s->after_cr = 0;
		size_t i = 0;
		while (i < n && p[i] != '\n' && p[i] != '\r')
			i++;
		if (i > 0 && !s->line_over && buf_append(&s->line, p, i) < 0) {
			s->line_over = 1;
			buf_reset(&s->line);
		}
		if (i == n)
			return;
		s->after_cr = p[i] == '\r';
		sse_line_end(s);
		p += i + 1;
		n -= i + 1;
	}
}
