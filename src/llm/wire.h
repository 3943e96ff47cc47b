/* Internals of the model clients shared by the provider modules, the client,
 * the unit tests and the fuzz targets: the reply accumulator both providers
 * fill (from one JSON body or from stream events), depth-capped JSON parsing,
 * key redaction, and the backoff arithmetic. Nothing here does I/O.
 *
 * The accumulator is where hostile replies are bounded: text and each tool
 * call's argument text are capped buffers, the number of tool calls is
 * capped, and the first failure recorded wins (a later event cannot turn a
 * failed reply back into a good one). */
#ifndef IRONCLAW_LLM_WIRE_H
#define IRONCLAW_LLM_WIRE_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "llm/llm.h"

#define LLM_CALLS_MAX 128
#define LLM_ID_MAX 256
#define LLM_NAME_MAX 256
#define LLM_SERVER_MSG_MAX 300

struct llm_limits {
	size_t body_max;
	int depth_max;
	const char *api_key;    /* borrowed, may be NULL: redacted from what comes back */
};

struct llm_acc_call {
	long index;             /* the provider's index (OpenAI) or content block index */
	char id[LLM_ID_MAX];
	char name[LLM_NAME_MAX];
	struct buf args;        /* argument text as it arrived, capped */
	json_t *start_input;    /* Anthropic: the input object of content_block_start */
};

struct llm_acc {
	struct llm_limits lim;
	struct buf text;
	struct llm_acc_call *calls;
	size_t ncalls;
	char stop_raw[32];
	int has_stop;
	long input_tokens, output_tokens;
	char model[128];
	int done;               /* the stream's end marker arrived ([DONE], message_stop) */
	long text_block;        /* Anthropic: -1, or the index of an open text block */
	int failed;
	int fail_retry;          /* the server said the failure is transient (overloaded) */
	enum llm_error_kind fail_kind;
	struct err fail;
};

void llm_acc_init(struct llm_acc *a, const struct llm_limits *lim);
void llm_acc_free(struct llm_acc *a);
/* Records a failure unless one is recorded already. Returns -EBADMSG. */
int llm_acc_fail(struct llm_acc *a, enum llm_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int llm_acc_text(struct llm_acc *a, const char *p, size_t n);
/* The call with this index, created when new (NULL once failed: too many). */
struct llm_acc_call *llm_acc_call(struct llm_acc *a, long index);
int llm_acc_args(struct llm_acc *a, struct llm_acc_call *c, const char *p, size_t n);
void llm_acc_stop(struct llm_acc *a, const char *raw);
/* Turns what was accumulated into an owned reply (stats left zero), or fills
 * f (kind and message) and returns a negative errno. */
int llm_acc_finish(struct llm_acc *a, struct llm_reply **out, struct llm_failure *f);

/* ---- JSON and text (json.c) ---- */

/* Parses n bytes with nesting capped at depth_max (checked before jansson
 * sees the text). NULL on failure with *kind (MALFORMED or TOO_LARGE) and e. */
json_t *llm_json_parse(const char *p, size_t n, int depth_max, enum llm_error_kind *kind,
		       struct err *e);
/* 1 when no array/object nesting in p[0..n) passes max (strings skipped). */
int llm_json_depth_ok(const char *p, size_t n, int max);
/* Copies at most n bytes of s into out (size outsz) as one printable line:
 * control bytes become spaces, the key becomes [REDACTED]. */
void llm_text_line(char *out, size_t outsz, const char *s, size_t n, const char *key);
/* Replaces every occurrence of key in the NUL-terminated, heap-owned *s
 * (may reallocate). 0 or -ENOMEM. */
int llm_redact(char **s, const char *key);
/* The server's own message from an error body ({"error":{"message"}} or
 * {"error":"..."} or {"message"}), as one redacted line; "" when none. */
void llm_error_message(const char *body, size_t n, int depth_max, const char *key, char *out,
		       size_t outsz);
/* Copies a JSON string member into out (truncated); "" when absent. */
void llm_json_copy_str(const json_t *obj, const char *key, char *out, size_t outsz);

/* ---- providers (openai.c, anthropic.c) ---- */

struct llm_proto {
	const char *path;       /* appended to base_url */
	/* The request body (owned), or NULL with e filled. */
	json_t *(*body)(const struct llm_config *cfg, const struct llm_conv *conv,
			const struct llm_tool *tools, size_t ntools, struct err *e);
	/* One non-streamed body into a. 0 or negative (a->fail set). */
	int (*parse)(struct llm_acc *a, const char *p, size_t n);
	/* One SSE event (event name may be "message"). */
	void (*event)(struct llm_acc *a, const char *event, const char *data, size_t n);
};

extern const struct llm_proto llm_proto_openai;
extern const struct llm_proto llm_proto_anthropic;

/* ---- retries (retry.c) ---- */

/* Retry-After as seconds or an HTTP date, relative to now (Unix seconds).
 * Returns milliseconds >= 0, or -1 when the value is unusable. */
long llm_retry_after_parse(const char *v, size_t n, long long now);
/* Backoff before attempt number `attempt` (2 for the first retry): full
 * jitter in [d/2, d] where d = min(max, base * 2^(attempt-2)); rnd in [0,1). */
long llm_backoff_ms(int attempt, long base, long max, double rnd);
/* Whether an HTTP status is worth retrying (408, 429, 5xx). */
int llm_status_retryable(long status);

#endif
