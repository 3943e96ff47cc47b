/* MCP wire pieces shared by the transports and the session: the line splitter
 * for newline-delimited JSON (stdio), the Server-Sent Events parser (Streamable
 * HTTP), JSON-RPC message classification, and the transport interface.
 *
 * The parsers are incremental (bytes arrive in arbitrary chunks), take lengths
 * and never trust terminators, and cap what they keep before allocating: an
 * over-long line or event is dropped whole and reported, the stream goes on. */
#ifndef IRONCLAW_MCP_WIRE_H
#define IRONCLAW_MCP_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"

/* ---- newline-delimited JSON (jsonl.c) ---- */

struct mcp_lines {
	struct buf cur;         /* the line being assembled */
	size_t max;             /* longest accepted line */
	int discarding;         /* inside an over-long line: drop until '\n' */
	unsigned long dropped;  /* over-long lines dropped */
};

/* Called with each complete line (without '\n'; a trailing '\r' is removed). */
typedef void (*mcp_line_cb)(void *opaque, const char *line, size_t len);

void mcp_lines_init(struct mcp_lines *l, size_t max);
/* Feeds n bytes; calls cb for each complete line. Never fails. */
void mcp_lines_feed(struct mcp_lines *l, const char *p, size_t n, mcp_line_cb cb, void *opaque);
void mcp_lines_free(struct mcp_lines *l);

/* ---- JSON-RPC classification (jsonl.c) ---- */

enum mcp_msg_kind { MCP_MSG_REQUEST, MCP_MSG_NOTIFICATION, MCP_MSG_RESPONSE };

struct mcp_msg {
	enum mcp_msg_kind kind;
	json_t *id;             /* borrowed: integer or string (requests, responses) */
	const char *method;     /* borrowed */
	json_t *params;         /* borrowed, may be NULL */
	json_t *result;         /* borrowed, responses */
	json_t *error;          /* borrowed, responses */
};

/* Classifies one message (borrowed). Returns 0 or -EBADMSG with why filled. */
int mcp_msg_classify(json_t *msg, struct mcp_msg *out, char *why, size_t why_len);
/* Parses n bytes of JSON into an owned value; NULL and why on failure. */
json_t *mcp_json_parse(const char *p, size_t n, char *why, size_t why_len);

/* ---- Server-Sent Events (sse.c) ---- */

struct mcp_sse_event {
	const char *event;      /* "message" when absent */
	const char *data;       /* joined data lines, '\n' between them */
	size_t data_len;
	const char *id;         /* the last event id seen on this stream, or NULL */
};

struct mcp_sse {
	struct buf line;        /* the field line being assembled, capped at max */
	struct buf data;        /* current event's data, capped at max */
	int line_over;          /* the current line passed the cap */
	int after_cr;           /* last byte was '\r': a following '\n' is the same break */
	char event[64];
	char last_id[256];
	int has_id;
	int has_data;
	long retry_ms;          /* last retry field, -1 when none */
	unsigned long dropped;  /* oversized events dropped */
	int overflow;           /* current event overflowed: drop it */
	int at_start;           /* before the first byte: skip a BOM */
	void (*cb)(void *opaque, const struct mcp_sse_event *ev);
	void *opaque;
};

void mcp_sse_init(struct mcp_sse *s, size_t max,
		  void (*cb)(void *opaque, const struct mcp_sse_event *ev), void *opaque);
/* Feeds n bytes; dispatches complete events (events with empty data, like a
 * priming event, update the id and retry but are not dispatched). */
void mcp_sse_feed(struct mcp_sse *s, const char *p, size_t n);
void mcp_sse_free(struct mcp_sse *s);

/* ---- transports (stdio.c, http.c) ---- */

struct mcp_transport;

struct mcp_transport_events {
	/* One parsed message (borrowed for the call). */
	void (*on_message)(void *opaque, json_t *msg);
	/* A request could not be delivered or answered (id borrowed, NULL when the
	 * whole transport failed). code: -ESTALE session expired (re-initialize),
	 * -EPIPE peer gone, -EPROTO bad reply, ... */
	void (*on_failure)(void *opaque, json_t *id, int code, const char *why);
	void *opaque;
};

struct mcp_transport_ops {
	/* Sends one message (borrowed). */
	int (*send)(struct mcp_transport *t, json_t *msg, char *why, size_t why_len);
	/* Tells the transport the negotiated version (HTTP header) */
	void (*set_version)(struct mcp_transport *t, const char *version);
	/* Opens the channel for server-initiated messages (HTTP: a standalone GET
	 * stream); NULL when the transport has no such thing. */
	void (*listen)(struct mcp_transport *t);
	/* Forgets the session (HTTP): the next initialize starts a new one. */
	void (*reset_session)(struct mcp_transport *t);
	/* Starts a graceful close; returns 1 while it still needs loop turns. */
	int (*closing)(struct mcp_transport *t);
	/* Frees the transport once its handles are closed (after loop turns). */
	void (*destroy)(struct mcp_transport *t);
};

struct mcp_transport {
	const struct mcp_transport_ops *ops;
	struct mcp_transport_events ev;
	uv_loop_t *loop;
};

struct mcp_server_config;
int mcp_stdio_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		   const struct mcp_transport_events *ev, struct mcp_transport **out,
		   char *why, size_t why_len);
int mcp_http_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		  const struct mcp_transport_events *ev, struct mcp_transport **out,
		  char *why, size_t why_len);

#endif
