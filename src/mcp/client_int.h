/* Internals of the MCP session shared by client.c (calls, dispatch,
 * lifecycle), handshake.c (eras, re-initialization), mrtr.c (multi-round-trip
 * requests) and ops.c (the tool definitions cache). Not a public API. */
#ifndef IRONCLAW_MCP_CLIENT_INT_H
#define IRONCLAW_MCP_CLIENT_INT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "mcp/mcp.h"
#include "mcp/wire.h"

#define CLIENT_DISCOVER_TIMEOUT_MS 5000
#define CANCELLED_RING 64
#define MCP_MRTR_ROUNDS_MAX 8     /* input_required rounds per request */
#define MCP_DISCOVER_RETRIES_MAX 1

#define LISTEN_BACKOFF_FIRST_MS 500   /* first reopen of a dropped subscription */
#define LISTEN_BACKOFF_MAX_MS 30000   /* the backoff doubles up to this */

struct mcp_mrtr;

/* The client's one subscriptions/listen stream (listen.c). */
enum sub_state { SUB_IDLE, SUB_OPENING, SUB_OPEN, SUB_BACKOFF };

struct mcp_sub {
	int want;                 /* mcp_client_listen called, not unlistened nor ended */
	enum sub_state state;
	json_t *filter;           /* owned: the notifications filter we send */
	json_t *ack;              /* owned or NULL: what the server acknowledged */
	long long id;             /* the open listen request's id (0: none) */
	int failures;             /* drops since the last acknowledgment (backoff) */
	int was_open;             /* acknowledged before: a re-ack may have missed changes */
	uv_timer_t timer;         /* acknowledgment deadline, or the backoff */
};

struct mcp_call {
	struct mcp_client *c;
	struct mcp_call *next;
	long long id;
	char method[64];
	json_t *msg;              /* owned: the request as sent (for a re-send) */
	mcp_result_cb cb;
	void *opaque;
	int with_progress;
	int no_reinit;            /* the handshake's own calls: a stale session just fails */
	int waiting_reinit;       /* the server ended the session; waiting for a new one */
	int no_cancel;            /* don't announce a timeout (the discover probe) */
	long timeout_ms;
	unsigned long dropped_at_start;
	json_t *headers;          /* owned or NULL: [[name, value]] sent with it (HTTP) */
	struct mcp_mrtr *mrtr;    /* owned or NULL: a multi-round-trip in progress */
	int rounds;               /* input_required rounds answered so far */
	/* The timeout covers the server's time only: while the client's handlers
	 * answer an input request it is paused (left_ms kept for the retry) and
	 * the timer bounds the handlers instead (inputTimeoutMs). */
	uint64_t armed_at;        /* loop time the timer was last armed */
	long armed_ms;
	long left_ms;             /* > 0: the next send arms this much, not timeout_ms */
	uv_timer_t timer;
};

struct mcp_responder {
	struct mcp_client *c;     /* NULL once the client is gone: the answer is dropped */
	struct mcp_responder *next;
	json_t *id;               /* owned: the server's id, echoed verbatim */
	/* A multi-round-trip input request (mrtr.c): the answer goes into the
	 * retry of this call, never onto the wire; NULL once the call ended. */
	int is_mrtr;
	struct mcp_call *call;
	char key[128];
};

enum client_stage { ST_OPEN, ST_DRAINING, ST_CLOSING };

struct mcp_client {
	const struct mcp_server_config *cfg;
	struct mcp_events ev;
	uv_loop_t *loop;
	int owns_loop;
	struct mcp_transport *tp;
	long long next_id;
	struct mcp_call *calls;
	struct mcp_responder *responders;
	char version[32];
	int modern;
	int connected;
	json_t *server_info;
	json_t *server_caps;
	json_t *roots;            /* [{uri, name}] or NULL when none are configured */
	int roots_declared;       /* the roots capability went out at connect */
	int dead;
	struct err dead_err;
	long long cancelled[CANCELLED_RING];
	unsigned cancelled_next;
	unsigned long dropped;
	json_t *rpc_error;        /* borrowed while a JSON-RPC error's callback runs */
	int discover_retries;     /* server/discover re-sent after -32022 */
	/* Tool definitions from the last complete tools/list (name -> definition),
	 * the skipped ones (name -> why), and until when the list is fresh
	 * (its ttlMs, on the loop's clock). NULL: never listed. */
	json_t *tools;
	json_t *tools_skipped;
	uint64_t tools_fresh_until;
	struct mcp_sub sub;
	/* handshake in progress: where it goes when done */
	int hs_active;
	void (*hs_next)(struct mcp_client *c, int rc, const struct err *e);
	mcp_done_cb connect_cb;
	void *connect_opaque;
	/* close */
	enum client_stage stage;
	uv_timer_t drain;
	int handles;              /* drain timer + call timers + transport, until closed */
	void (*close_done)(void *opaque);
	void *close_opaque;
};


/* client.c */
json_t *mcp_client_caps_json(struct mcp_client *c);
json_t *mcp_client_info_json(void);
/* The 2026-07-28 per-request envelope, merged into params._meta. */
void mcp_client_add_envelope(struct mcp_client *c, json_t *params);
int mcp_client_send_msg(struct mcp_client *c, json_t *msg, json_t *headers, struct err *e);
/* Like mcp_client_request; headers (stolen, may be NULL) go with every send. */
int mcp_call_start(struct mcp_client *c, const char *method, json_t *params, json_t *headers,
		   long timeout_ms, int flags, mcp_result_cb cb, void *opaque,
		   struct mcp_call **out, struct err *e);
/* (Re)sends k with a fresh id and arms its timer. */
int mcp_call_send(struct mcp_client *c, struct mcp_call *k, struct err *e);
void mcp_call_finish(struct mcp_call *k, int rc, json_t *result, const struct err *e);
/* Registers a responder for a server request (mrtr: for call k's input key). */
struct mcp_responder *mcp_responder_new(struct mcp_client *c, json_t *id, struct mcp_call *k,
					const char *key);

/* The configured per-request timeout, and the cap on the client's own
 * handlers answering a multi-round-trip input request. */
long mcp_client_timeout(const struct mcp_client *c);
long mcp_client_input_timeout(const struct mcp_client *c);

/* listen.c: routing of what belongs to the subscription. */
int mcp_listen_is_ours(struct mcp_client *c, json_t *id);
int mcp_listen_accepts(struct mcp_client *c, json_t *params);
void mcp_listen_on_ack(struct mcp_client *c, json_t *params);
void mcp_listen_on_response(struct mcp_client *c, json_t *error);
void mcp_listen_on_failure(struct mcp_client *c, const struct err *why);

/* handshake.c */
int mcp_hs_start(struct mcp_client *c, struct err *e);
void mcp_hs_reinit(struct mcp_client *c, struct mcp_call *k);

/* mrtr.c: k's result said input_required: answer its inputRequests and retry
 * k, or finish it with the reason. */
void mcp_mrtr_on_input_required(struct mcp_call *k, json_t *result);
/* An answer (result stolen, or NULL with code/message) for input key of k. */
void mcp_mrtr_answer(struct mcp_call *k, const char *key, json_t *result, int code,
		     const char *message);
/* k is ending: forget its round (pending answers are dropped). */
void mcp_mrtr_release(struct mcp_call *k);

/* ops.c: remembers the kept tool definitions of a complete tools/list. */
void mcp_client_set_tools(struct mcp_client *c, json_t *kept, json_t *skipped, long ttl_ms);

#endif
