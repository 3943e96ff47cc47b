/* Model clients: OpenAI-compatible chat completions (OpenAI, Ollama's /v1,
 * llama.cpp's server, vLLM) and Anthropic Messages, asynchronous on the
 * caller's libuv loop through src/net (libcurl multi + the SSE parser).
 *
 * The agent speaks one neutral conversation model to both providers:
 *
 *   - a system prompt (IronClaw's own instructions);
 *   - messages in order, each one of
 *       user       text (the task, or a later user turn),
 *       assistant  text and/or tool calls {id, name, arguments: a JSON object},
 *       tool       a tool result {tool_call_id, content text, is_error};
 *   - tools {name, description, input_schema}: the JSON schema goes to the
 *     provider unchanged (OpenAI "parameters", Anthropic "input_schema").
 *
 * Each provider module maps this to its wire format: OpenAI puts the system
 * prompt first as a "system" message, sends arguments as a JSON string and
 * results as "tool" messages (it has no error flag, so an error result's
 * content is prefixed with "[tool error] "); Anthropic sends "system" at the
 * top level, tool calls as tool_use blocks, and results as tool_result blocks
 * (with is_error) inside a user message, merging consecutive same-role
 * messages because it requires roles to alternate.
 *
 * A reply is hostile input. The body is capped before it is accumulated, JSON
 * is depth-capped before it is parsed, a tool call's arguments must parse to
 * a JSON object (if not, that call carries an error the agent can return to
 * the model as a tool error), and a reply with neither text nor tool calls is
 * a failure. Transient failures (429, 408, 5xx, connection refused or
 * dropped, timeouts) are retried with capped exponential backoff and jitter,
 * honouring Retry-After, within max_attempts and the total deadline; any
 * other 4xx is final. Every timer is on the loop; nothing here sleeps.
 *
 * The API key is the caller's: it is sent only in the auth header
 * (Authorization: Bearer for OpenAI, x-api-key for Anthropic), never logged,
 * never in an error message, and redacted ("[REDACTED]") from anything the
 * server sends back (error messages, reply text, tool arguments). */
#ifndef IRONCLAW_LLM_LLM_H
#define IRONCLAW_LLM_LLM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"

/* ---- the neutral conversation model (conv.c) ---- */

enum llm_provider { LLM_PROVIDER_OPENAI, LLM_PROVIDER_ANTHROPIC };

enum llm_role { LLM_ROLE_USER, LLM_ROLE_ASSISTANT, LLM_ROLE_TOOL };

struct llm_tool_call {
	char *id;               /* the provider's call id (synthesized when missing) */
	char *name;
	json_t *arguments;      /* a JSON object; NULL when `error` is set */
	char *raw_arguments;    /* the arguments text as the model sent it */
	char *error;            /* why the arguments are unusable, else NULL */
};

struct llm_message {
	enum llm_role role;
	char *text;             /* user / assistant text, tool result content; may be NULL */
	struct llm_tool_call *calls;   /* assistant only */
	size_t ncalls;
	char *tool_call_id;     /* tool results only */
	int is_error;           /* tool results only */
};

struct llm_conv {
	char *system;           /* may be NULL */
	struct llm_message *msgs;
	size_t n, cap;
};

struct llm_tool {
	const char *name;
	const char *description;   /* may be NULL */
	json_t *input_schema;      /* borrowed; NULL means {"type":"object"} */
};

/* Returns an owned conversation (system may be NULL), or NULL without memory. */
struct llm_conv *llm_conv_new(const char *system);
void llm_conv_free(struct llm_conv *c);
/* Each adder copies what it is given. Return 0 or -errno. */
int llm_conv_add_user(struct llm_conv *c, const char *text, struct err *e);
/* calls may be NULL when ncalls is 0. A call whose arguments are NULL goes
 * back to the provider as its raw text (OpenAI) or {} (Anthropic). */
int llm_conv_add_assistant(struct llm_conv *c, const char *text,
			   const struct llm_tool_call *calls, size_t ncalls, struct err *e);
int llm_conv_add_tool_result(struct llm_conv *c, const char *tool_call_id, const char *content,
			     int is_error, struct err *e);

/* ---- a reply (conv.c) ---- */

enum llm_stop {
	LLM_STOP_END,           /* a final answer (stop, end_turn) */
	LLM_STOP_TOOL_CALLS,    /* the model wants tool results (tool_calls, tool_use) */
	LLM_STOP_MAX_TOKENS,    /* cut by the output limit (length, max_tokens) */
	LLM_STOP_OTHER,         /* anything else: see stop_raw */
};

/* What one request cost, on success and on failure. */
struct llm_stats {
	double latency_ms;      /* llm_request() to the callback, retries included */
	double first_byte_ms;   /* last attempt: start to the first response byte */
	size_t request_bytes;   /* body size of one attempt */
	size_t response_bytes;  /* raw bytes received on the last attempt */
	int attempts;
};

struct llm_reply {
	char *text;             /* assistant text, NUL-terminated; NULL when none */
	size_t text_len;
	struct llm_tool_call *calls;
	size_t ncalls;
	size_t bad_calls;       /* calls whose `error` is set */
	enum llm_stop stop;
	char stop_raw[32];      /* the provider's word for it */
	long input_tokens;      /* -1 when the server did not say */
	long output_tokens;
	char model[128];        /* the model the server says answered; may be "" */
	struct llm_stats stats;
};

void llm_reply_free(struct llm_reply *r);

/* ---- the client (client.c) ---- */

struct llm_config {
	enum llm_provider provider;
	const char *base_url;   /* as each SDK takes it: OpenAI's includes /v1, Anthropic's not */
	const char *model;
	const char *api_key;    /* may be NULL or "" (local servers); copied */
	long connect_timeout_ms;   /* 0: 10 s */
	long first_byte_timeout_ms;/* longest silence: before the first byte and between
				    * stream chunks; 0: 120 s */
	long total_timeout_ms;     /* the whole request, retries included; 0: 600 s */
	int stream;
	int max_attempts;       /* 0: 4; 1 disables retries */
	long backoff_base_ms;   /* 0: 500 */
	long backoff_max_ms;    /* 0: 8000 */
	long retry_after_max_ms;/* a longer Retry-After fails at once; 0: 60 s */
	size_t body_max;        /* reply body cap in bytes; 0: 8 MiB */
	int json_depth_max;     /* 0: 64 */
	long max_tokens;        /* Anthropic requires it (0: 4096); OpenAI only when > 0 */
	const char *anthropic_version;  /* 0: "2023-06-01" */
};

enum llm_error_kind {
	LLM_ERR_UNREACHABLE = 1, /* connection refused / dropped / timed out, after retries */
	LLM_ERR_HTTP,            /* HTTP error status: http_status and the server's message */
	LLM_ERR_MALFORMED,       /* not the provider's format, bad JSON, an error mid-stream */
	LLM_ERR_TOO_LARGE,       /* the reply passed body_max (or JSON passed the depth cap) */
	LLM_ERR_EMPTY,           /* no text and no tool calls */
	LLM_ERR_TIMEOUT,         /* the total deadline passed */
	LLM_ERR_INTERNAL,        /* out of memory, curl refused to start */
};

struct llm_failure {
	enum llm_error_kind kind;
	long http_status;       /* last HTTP status, 0 when none */
	struct err e;           /* one line: what failed and what to do; key-free */
	struct llm_stats stats;
};

struct llm_client;
struct llm_req;

/* reply (owned by the callee: llm_reply_free) on success, else fail (borrowed
 * for the call). Exactly one is non-NULL. Runs on the loop, never inside
 * llm_request(); it may start requests or close the client. */
typedef void (*llm_done_cb)(void *ctx, struct llm_reply *reply, const struct llm_failure *fail);

/* Validates cfg and creates a client on loop (strings are copied). 0 or -errno. */
int llm_client_new(uv_loop_t *loop, const struct llm_config *cfg, struct llm_client **out,
		   struct err *e);
/* Starts one request. conv and tools are serialized before this returns, so
 * they may change or be freed at once. out (may be NULL) gets a handle for
 * llm_cancel(), valid until the callback. 0 or -errno (then no callback). */
int llm_request(struct llm_client *c, const struct llm_conv *conv, const struct llm_tool *tools,
		size_t ntools, llm_done_cb cb, void *ctx, struct llm_req **out, struct err *e);
/* Abandons a request: its callback never runs. */
void llm_cancel(struct llm_client *c, struct llm_req *r);
/* Abandons every request (no callbacks) and frees the client once its loop
 * handles are closed, then calls closed (may be NULL). Safe from a callback. */
void llm_client_close(struct llm_client *c, void (*closed)(void *opaque), void *opaque);

const char *llm_provider_name(enum llm_provider p);
/* "openai" / "anthropic" → 0 and *out; else -EINVAL. */
int llm_provider_parse(const char *s, enum llm_provider *out);
const char *llm_error_kind_name(enum llm_error_kind k);

#endif
