/* MCP wire pieces shared by the transports and the session: the line splitter
 * for newline-delimited JSON (stdio), JSON-RPC message classification, and the
 * transport interface. (The SSE parser lives in src/net, shared with the model
 * clients.)
 *
 * The line splitter is incremental (bytes arrive in arbitrary chunks), takes
 * lengths and never trusts terminators, and caps what it keeps before
 * allocating: an over-long line is dropped whole and counted, the stream goes
 * on. Transports run on the caller's loop and never block it. */
#ifndef IRONCLAW_MCP_WIRE_H
#define IRONCLAW_MCP_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"

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

/* Classifies one message (borrowed). Returns 0 or -EBADMSG with e filled. */
int mcp_msg_classify(json_t *msg, struct mcp_msg *out, struct err *e);
/* Parses n bytes of JSON into an owned value; NULL with e filled on failure. */
json_t *mcp_json_parse(const char *p, size_t n, struct err *e);

/* ---- transports (stdio.c, http.c) ---- */

struct mcp_transport;

struct mcp_transport_events {
	/* One parsed message (borrowed for the call). */
	void (*on_message)(void *opaque, json_t *msg);
	/* A request could not be delivered or answered (id borrowed, NULL when the
	 * whole transport failed). e->code: -ESTALE session expired (re-initialize),
	 * -EPIPE peer gone, -EPROTO bad reply, ...; e->msg always filled. */
	void (*on_failure)(void *opaque, json_t *id, const struct err *e);
	/* Request id (borrowed) waits for an authorization (waiting 1: a person
	 * may be logging in, in a browser) or was sent again after one (0), so
	 * the caller's deadline covers the server's time only. Never fires
	 * inside send. May be NULL. */
	void (*on_authorizing)(void *opaque, json_t *id, int waiting);
	void *opaque;
};

struct mcp_transport_ops {
	/* Queues one message (borrowed); never blocks, never calls back inside.
	 * headers (borrowed, may be NULL): [["Name", "value"], ...] that HTTP sends
	 * with this message, encoded (the Mcp-Param-* of a tools/call); stdio has
	 * no headers and ignores them. */
	int (*send)(struct mcp_transport *t, json_t *msg, json_t *headers, struct err *e);
	/* Tells the transport the negotiated version (HTTP header) */
	void (*set_version)(struct mcp_transport *t, const char *version);
	/* Opens the channel for server-initiated messages (HTTP: a standalone GET
	 * stream); NULL when the transport has no such thing. */
	void (*listen)(struct mcp_transport *t);
	/* Ends the exchange of request id on our side (HTTP: closes its stream,
	 * which the 2026-07-28 binding defines as cancelling it) and returns 1;
	 * 0 when the transport cannot (stdio: the caller sends
	 * notifications/cancelled). May be NULL. Nothing fires for it later. */
	int (*cancel)(struct mcp_transport *t, long long id);
	/* Forgets the session (HTTP): the next initialize starts a new one. */
	void (*reset_session)(struct mcp_transport *t);
	/* Lines over the cap dropped so far (stdio), for error messages. */
	unsigned long (*dropped)(struct mcp_transport *t);
	/* Graceful close on the loop (stdio: close stdin, grace timer, SIGTERM,
	 * timer, SIGKILL; HTTP: DELETE the session, bounded). No event fires after
	 * this call; done fires once every handle is closed, and the transport is
	 * freed then. */
	void (*close)(struct mcp_transport *t, void (*done)(void *opaque), void *opaque);
};

struct mcp_transport {
	const struct mcp_transport_ops *ops;
	struct mcp_transport_events ev;
	uv_loop_t *loop;
};

struct mcp_server_config;
/* Both return 0 or -errno with e filled; on failure nothing is left to close
 * (handles already created finish closing on the loop by themselves). */
int mcp_stdio_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		   const struct mcp_transport_events *ev, struct mcp_transport **out,
		   struct err *e);
int mcp_http_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		  const struct mcp_transport_events *ev, struct mcp_transport **out,
		  struct err *e);

#endif
