/* MCP client: talks to Model Context Protocol servers over stdio or Streamable
 * HTTP, in every protocol era from 2024-11-05 to the stateless 2026-07-28.
 *
 * A client owns one connection to one server and runs on the CALLER's libuv
 * loop: every operation starts at once and completes through a callback, so
 * one slow server never stalls a VM or another server on the same loop.
 * Responses are matched by id, so they may come in any order and any number
 * of calls may be in flight. Server-to-client requests (ping and roots/list
 * are answered here; sampling and elicitation go to the application) are
 * answered asynchronously: the handler gets a responder it may answer later.
 * Nothing in this module blocks the loop or runs it (sync.c, the CLI's thin
 * wrapper, is the one exception: it owns a private loop and runs it).
 *
 * Callback rules: a completion never fires inside the call that started the
 * operation (an immediate failure is that call's return value instead), and
 * any callback may start operations or close the client.
 *
 * Everything a server sends is hostile input: lines, SSE events and bodies are
 * capped before allocation, and a malformed message is logged and skipped. A
 * tool result with isError is a tool error (it goes back to the model); a
 * JSON-RPC error is a protocol error (the call itself failed). tools/call is
 * never retried by this code. */
#ifndef IRONCLAW_MCP_MCP_H
#define IRONCLAW_MCP_MCP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "core/err.h"

/* Protocol revisions we speak, oldest first. The last is the stateless era. */
#define MCP_VERSION_MODERN "2026-07-28"
#define MCP_VERSION_LATEST_LEGACY "2025-11-25"

#define MCP_LINE_MAX_DEFAULT (8u << 20)     /* one stdio message */
#define MCP_BODY_MAX (16u << 20)            /* one HTTP JSON body or SSE event */
#define MCP_TIMEOUT_MS_DEFAULT 60000
#define MCP_INPUT_TIMEOUT_MS_DEFAULT 600000 /* a person answering an elicitation */
#define MCP_PAGES_MAX 1000                  /* pagination loop guard */

/* ---- configuration (config.c) ---- */

/* MCP_FD: newline-delimited JSON over a stream the caller already holds (a
 * connected socket: a server the caller started itself, or a test's fake). */
enum mcp_transport_kind { MCP_STDIO, MCP_HTTP, MCP_FD };

struct mcp_server_config {
	char *name;                 /* owned */
	enum mcp_transport_kind kind;
	/* stdio */
	char *command;              /* owned */
	char **args;                /* owned, NULL-terminated */
	char **env;                 /* owned "K=V" strings, NULL-terminated; added to ours */
	char *cwd;                  /* owned or NULL */
	/* http */
	char *url;                  /* owned */
	char **headers;             /* owned "Name: value" lines, NULL-terminated */
	/* fd */
	int fd;                     /* MCP_FD: the client takes it over at connect */
	/* both */
	char **roots;               /* owned file:// URIs, NULL-terminated, or NULL */
	char *stderr_log;           /* owned: where a stdio server's stderr goes, or NULL */
	long timeout_ms;            /* per-request timeout (the server's time) */
	long input_timeout_ms;      /* our handlers answering an input request; <= 0: default */
	size_t line_max;            /* stdio line cap */
	char *protocol_version;     /* owned or NULL: force one era ("2025-06-18", ...) */
	/* OAuth for http (src/mcp/oauth_*.c, docs/mcp.md): a pre-registered client
	 * ("oauth": {"clientId", "clientSecretEnv"}) or a client ID metadata
	 * document URL ("clientMetadataUrl"); all owned or NULL. */
	char *oauth_client_id;
	char *oauth_client_secret;
	char *oauth_metadata_url;
	int oauth_off;              /* a static bearer token is configured: no OAuth */
	int oauth_interactive;      /* may open a browser and wait for the user */
	int oauth_login;            /* ignore stored tokens and authorize anew */
};

/* Reads the ecosystem's {"mcpServers": {NAME: {...}}} file and fills cfg for
 * server `name`. On failure returns -errno and explains in e (unknown server
 * lists the known ones). cfg must be released with mcp_server_config_free(). */
int mcp_config_load(const char *path, const char *name, struct mcp_server_config *cfg,
		    struct err *e);
/* Same from an already parsed server object (borrowed). */
int mcp_config_from_json(const char *name, json_t *server, struct mcp_server_config *cfg,
			 struct err *e);
/* Lists the server names of a config file (returns an owned array of owned
 * strings, NULL-terminated). */
int mcp_config_list(const char *path, char ***names, struct err *e);
/* The default config path: $IRONCLAW_CONFIG, else ~/.config/ironclaw/config.json.
 * Returns owned. */
char *mcp_config_default_path(void);
void mcp_server_config_free(struct mcp_server_config *cfg);
/* Adds a root (a directory path or a file:// URI) to cfg. */
int mcp_config_add_root(struct mcp_server_config *cfg, const char *dir_or_uri);
void mcp_strv_free(char **v);

/* ---- client (client.c) ---- */

struct mcp_client;
struct mcp_call;
struct mcp_responder;

/* A finished operation. rc is 0 or -errno; result is borrowed for the call
 * (json_incref to keep it) and NULL on failure, when e says why. A JSON-RPC
 * error is -EPROTO with the server's message; a timeout -ETIMEDOUT (after
 * notifications/cancelled went out); a dead server -EPIPE; a client closed
 * before the answer -ECANCELED. */
typedef void (*mcp_result_cb)(void *opaque, int rc, json_t *result, const struct err *e);
/* A finished connect (result-less operations). */
typedef void (*mcp_done_cb)(void *opaque, int rc, const struct err *e);

/* A server-to-client request the application answers (sampling/createMessage,
 * elicitation/create). params are borrowed for the call only. The handler must
 * answer r exactly once, now or from a later callback, with mcp_respond() or
 * mcp_respond_error(); that frees r. An answer after the client closed is
 * dropped. */
typedef void (*mcp_request_handler)(void *opaque, struct mcp_responder *r, const char *method,
				    json_t *params);

/* result stolen. */
void mcp_respond(struct mcp_responder *r, json_t *result);
void mcp_respond_error(struct mcp_responder *r, int code, const char *message);

struct mcp_events {
	/* notifications/progress for one of our calls (only while it is pending). */
	void (*on_progress)(void *opaque, struct mcp_call *call, double progress, double total,
			    const char *message);
	/* notifications/message (server log lines). */
	void (*on_log)(void *opaque, const char *level, json_t *data);
	/* notifications/<what>/list_changed; what is "tools", "resources", "prompts". */
	void (*on_list_changed)(void *opaque, const char *what);
	/* sampling/createMessage, elicitation/create; NULL: answered -32601. The
	 * matching capability is advertised only when the handler is set. */
	mcp_request_handler on_request;
	void *opaque;
	/* notifications/resources/updated for a URI of the subscription. */
	void (*on_resource_updated)(void *opaque, const char *uri);
	/* The subscription (mcp_client_listen) was acknowledged, again after each
	 * reopen: ack is the filter the server honours (borrowed). Or it ended for
	 * good: ack NULL, rc 0 when the server ended it gracefully, <0 with e
	 * when it was refused or the transport died. A dropped stream is reopened,
	 * not reported. */
	void (*on_subscription)(void *opaque, json_t *ack, int rc, const struct err *e);
};

/* Creates a client on loop (borrowed; NULL: the client makes a private loop,
 * for sync.c). cfg is borrowed for the client's life; ev may be NULL. Not
 * connected yet. Returns 0 or -errno. */
int mcp_client_new(uv_loop_t *loop, const struct mcp_server_config *cfg,
		   const struct mcp_events *ev, struct mcp_client **out, struct err *e);
/* Starts the server or connects, and negotiates the protocol era; cb when
 * done. Returns <0 (and cb never fires) when it fails at once. */
int mcp_client_connect(struct mcp_client *c, mcp_done_cb cb, void *opaque, struct err *e);
/* Graceful shutdown on the loop: waits (bounded) for outstanding responses,
 * fails the rest with -ECANCELED, then closes the transport (stdin, grace
 * timer, SIGTERM, timer, SIGKILL; DELETE for HTTP). done (may be NULL) fires
 * once every handle is closed and the client is freed. NULL c is fine. */
void mcp_client_close(struct mcp_client *c, void (*done)(void *opaque), void *opaque);

/* The loop the client runs on (borrowed), and whether it is the client's own
 * (mcp_client_new with a NULL loop). */
uv_loop_t *mcp_client_loop(const struct mcp_client *c);
int mcp_client_owns_loop(const struct mcp_client *c);

/* Negotiated protocol version (borrowed), server info and capabilities
 * (borrowed, may be NULL). */
const char *mcp_client_protocol_version(const struct mcp_client *c);
json_t *mcp_client_server_info(const struct mcp_client *c);
json_t *mcp_client_server_capabilities(const struct mcp_client *c);
/* Whether the modern stateless era is in use. */
int mcp_client_is_modern(const struct mcp_client *c);

#define MCP_CALL_PROGRESS 1   /* attach a progress token (on_progress gets the updates) */

/* One request. params stolen (may be NULL); timeout_ms <= 0 uses the
 * configured one. cb fires exactly once unless this returns <0. *out (may be
 * NULL) identifies the call for progress and logs; valid until cb returns. */
int mcp_client_request(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		       int flags, mcp_result_cb cb, void *opaque, struct mcp_call **out,
		       struct err *e);
/* Whether an on_progress handler is set (tools/call then asks for progress). */
int mcp_client_wants_progress(const struct mcp_client *c);
/* The call's request id (for logs and tests). */
long long mcp_call_id(const struct mcp_call *call);
/* Sends a notification (queued, never waits). params stolen. */
int mcp_client_notify(struct mcp_client *c, const char *method, json_t *params, struct err *e);
/* Replaces the roots and tells the server (notifications/roots/list_changed). */
int mcp_client_set_roots(struct mcp_client *c, const char *const *dirs_or_uris,
			 struct err *e);
/* How many late responses/progress notifications were dropped (cancelled ids). */
unsigned long mcp_client_dropped_late(const struct mcp_client *c);

/* ---- subscriptions (listen.c), 2026-07-28 era ---- */

#define MCP_LISTEN_URIS_MAX 256

struct mcp_listen_filter {
	int tools, prompts, resources;       /* their list_changed notifications */
	const char *const *resource_uris;    /* resources/updated of these; NULL-terminated or NULL */
};

/* Opens the client's subscription (subscriptions/listen), replacing an open
 * one; f is copied. List changes reach on_list_changed (a tools change also
 * drops the tools cache), resource updates on_resource_updated, and
 * on_subscription says when the server acknowledged. A dropped stream is
 * reopened with a capped backoff. -ENOTSUP before 2026-07-28 (those servers
 * send their list changes without being asked). */
int mcp_client_listen(struct mcp_client *c, const struct mcp_listen_filter *f, struct err *e);
/* Closes the subscription (nothing is reported). */
void mcp_client_unlisten(struct mcp_client *c);
/* What the server acknowledged of the open subscription (borrowed), or NULL
 * while none is open. */
json_t *mcp_client_subscription(const struct mcp_client *c);

/* ---- operations (ops.c), asynchronous like mcp_client_request ---- */

/* Lists following nextCursor; the result is an array of every page's items.
 * what: "tools", "resources", "resourceTemplates", "prompts". */
int mcp_list_all(struct mcp_client *c, const char *what, mcp_result_cb cb, void *opaque,
		 struct err *e);
/* tools/call, never retried. args stolen (may be NULL); check
 * mcp_result_is_error() on the result for a tool error. */
int mcp_call_tool(struct mcp_client *c, const char *tool, json_t *args, mcp_result_cb cb,
		  void *opaque, struct err *e);
int mcp_read_resource(struct mcp_client *c, const char *uri, mcp_result_cb cb, void *opaque,
		      struct err *e);
/* args stolen (may be NULL). */
int mcp_get_prompt(struct mcp_client *c, const char *name, json_t *args, mcp_result_cb cb,
		   void *opaque, struct err *e);
int mcp_result_is_error(json_t *result);

/* ---- synchronous wrapper for the CLI and tests (sync.c) ----
 *
 * A client made by mcp_sync_new() owns a private loop; each call below starts
 * the asynchronous operation and runs that loop until its completion fires.
 * They refuse (-EDEADLK) a client on a caller's loop: running someone else's
 * loop from inside it is exactly what this design forbids. *result is owned. */

struct mcp_pending;

int mcp_sync_new(const struct mcp_server_config *cfg, const struct mcp_events *ev,
		 struct mcp_client **out, struct err *e);
int mcp_sync_connect(struct mcp_client *c, struct err *e);
/* Closes the client, runs its loop until everything is released, frees the
 * loop. NULL is fine. */
void mcp_sync_close(struct mcp_client *c);
int mcp_sync_request(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		     json_t **result, struct err *e);
/* Several calls in flight: start them, then wait for each (in any order).
 * mcp_sync_wait frees p. */
int mcp_sync_start(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		   int flags, struct mcp_pending **out, struct err *e);
int mcp_sync_wait(struct mcp_client *c, struct mcp_pending *p, json_t **result, struct err *e);
long long mcp_pending_id(const struct mcp_pending *p);
/* Runs the loop for ms milliseconds (notifications and server requests are
 * handled meanwhile). */
void mcp_sync_pump(struct mcp_client *c, long ms);
int mcp_sync_list_all(struct mcp_client *c, const char *what, json_t **items, struct err *e);
int mcp_sync_call_tool(struct mcp_client *c, const char *tool, json_t *args, json_t **result,
		       struct err *e);
int mcp_sync_read_resource(struct mcp_client *c, const char *uri, json_t **result,
			   struct err *e);
int mcp_sync_get_prompt(struct mcp_client *c, const char *name, json_t *args, json_t **result,
			struct err *e);

/* ---- arguments and rendering (args.c, render.c) ---- */

/* Builds tool arguments from argv: one JSON object, or key=value pairs. The
 * value's type follows the property's type in schema (borrowed, may be NULL);
 * without a schema, a value is a string. *out owned. */
int mcp_args_parse(int argc, char **argv, json_t *schema, json_t **out, struct err *e);
/* Whether any key=value pair has a value that only a schema can type (it
 * parses as a JSON non-string). */
int mcp_args_need_schema(int argc, char **argv);
/* Human-readable rendering of a tools/call, resources/read or prompts/get
 * result (borrowed) into f. */
void mcp_render_result(FILE *f, json_t *result);
void mcp_render_content(FILE *f, json_t *content);

#endif
