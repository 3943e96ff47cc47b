/* MCP client: talks to Model Context Protocol servers over stdio or Streamable
 * HTTP, in every protocol era from 2024-11-05 to the stateless 2026-07-28.
 *
 * A client owns one connection to one server and its own libuv loop; calls are
 * synchronous for the caller (they run the loop until their response arrives),
 * but the wire is fully asynchronous: responses are matched by id, so they may
 * come in any order, and several calls can be in flight at once through
 * mcp_call_start()/mcp_call_wait(). Server-to-client requests (ping,
 * roots/list, sampling, elicitation) are answered while the loop runs.
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

#include "core/err.h"

/* Protocol revisions we speak, oldest first. The last is the stateless era. */
#define MCP_VERSION_MODERN "2026-07-28"
#define MCP_VERSION_LATEST_LEGACY "2025-11-25"

#define MCP_LINE_MAX_DEFAULT (8u << 20)     /* one stdio message */
#define MCP_BODY_MAX (16u << 20)            /* one HTTP JSON body or SSE event */
#define MCP_TIMEOUT_MS_DEFAULT 60000
#define MCP_PAGES_MAX 1000                  /* pagination loop guard */

/* ---- configuration (config.c) ---- */

enum mcp_transport_kind { MCP_STDIO, MCP_HTTP };

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
	/* both */
	char **roots;               /* owned file:// URIs, NULL-terminated, or NULL */
	char *stderr_log;           /* owned: where a stdio server's stderr goes, or NULL */
	long timeout_ms;            /* per-request timeout */
	size_t line_max;            /* stdio line cap */
	char *protocol_version;     /* owned or NULL: force one era ("2025-06-18", ...) */
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

/* Server-to-client requests the embedding application answers (sampling,
 * elicitation). Return an owned result object, or NULL and set *code and
 * *message for a JSON-RPC error. params are borrowed. */
typedef json_t *(*mcp_request_handler)(void *opaque, const char *method, json_t *params,
				       int *code, const char **message);

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
};

/* Creates a client (not connected yet). cfg is borrowed for the client's life;
 * ev may be NULL. Returns 0 or -errno. */
int mcp_client_new(const struct mcp_server_config *cfg, const struct mcp_events *ev,
		   struct mcp_client **out, struct err *e);
/* Starts the server or connects, and negotiates the protocol era. */
int mcp_client_connect(struct mcp_client *c, struct err *e);
/* Graceful shutdown (waits for outstanding responses, closes stdin, waits,
 * SIGTERM, SIGKILL; DELETE for HTTP) and frees everything. NULL is fine. */
void mcp_client_close(struct mcp_client *c);

/* Negotiated protocol version (borrowed), server info and capabilities
 * (borrowed, may be NULL). */
const char *mcp_client_protocol_version(const struct mcp_client *c);
json_t *mcp_client_server_info(const struct mcp_client *c);
json_t *mcp_client_server_capabilities(const struct mcp_client *c);
/* Whether the modern stateless era is in use. */
int mcp_client_is_modern(const struct mcp_client *c);

/* One request, synchronous. params stolen (may be NULL); *result is owned.
 * A JSON-RPC error returns -EPROTO with the server's message in e; a timeout
 * returns -ETIMEDOUT after notifications/cancelled was sent; a dead server
 * -EPIPE. timeout_ms <= 0 uses the configured one. */
int mcp_client_request(struct mcp_client *c, const char *method, json_t *params,
		       long timeout_ms, json_t **result, struct err *e);
/* Asynchronous form: start, then wait (in any order). mcp_call_wait frees the
 * call. A progress token is attached when with_progress is set. */
int mcp_call_start(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		   int with_progress, struct mcp_call **out, struct err *e);
int mcp_call_wait(struct mcp_client *c, struct mcp_call *call, json_t **result, struct err *e);
/* Whether an on_progress handler is set (tools/call then asks for progress). */
int mcp_client_wants_progress(const struct mcp_client *c);
/* The call's request id (for logs and tests). */
long long mcp_call_id(const struct mcp_call *call);
/* Sends a notification. params stolen. */
int mcp_client_notify(struct mcp_client *c, const char *method, json_t *params, struct err *e);
/* Replaces the roots and tells the server (notifications/roots/list_changed). */
int mcp_client_set_roots(struct mcp_client *c, const char *const *dirs_or_uris,
			 struct err *e);
/* Runs the loop for up to ms milliseconds (lets notifications and server
 * requests be handled between calls). */
void mcp_client_pump(struct mcp_client *c, long ms);
/* How many late responses/progress notifications were dropped (cancelled ids). */
unsigned long mcp_client_dropped_late(const struct mcp_client *c);

/* ---- operations (ops.c) ---- */

/* Lists following nextCursor; *items is an owned array of every page's items.
 * what: "tools", "resources", "resourceTemplates", "prompts". */
int mcp_list_all(struct mcp_client *c, const char *what, json_t **items, struct err *e);
/* tools/call, never retried. args stolen (may be NULL). *result owned; check
 * mcp_result_is_error() for a tool error. */
int mcp_call_tool(struct mcp_client *c, const char *tool, json_t *args, json_t **result,
		  struct err *e);
int mcp_read_resource(struct mcp_client *c, const char *uri, json_t **result, struct err *e);
int mcp_get_prompt(struct mcp_client *c, const char *name, json_t *args, json_t **result,
		   struct err *e);
int mcp_result_is_error(json_t *result);

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
