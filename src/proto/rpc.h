/* JSON-RPC 2.0 envelope for the host <-> guest channel.
 *
 * Parsing classifies a decoded frame as request, notification or response and
 * checks the envelope strictly (version string, id type, exactly one of
 * result/error). Ids on this channel are non-negative integers; both ends are
 * ours, so anything else is hostile. Policy (which methods exist, what their
 * params mean) lives with the caller. */
#ifndef IRONCLAW_PROTO_RPC_H
#define IRONCLAW_PROTO_RPC_H

#include <jansson.h>
#include <stddef.h>

enum rpc_kind { RPC_REQUEST, RPC_NOTIFICATION, RPC_RESPONSE };

/* JSON-RPC error codes used on the channel. */
#define RPC_PARSE_ERROR      -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603

struct rpc_msg {
	enum rpc_kind kind;
	json_int_t id;          /* requests and responses */
	const char *method;     /* requests and notifications (borrowed) */
	json_t *params;         /* borrowed; may be NULL */
	json_t *result;         /* responses: borrowed; NULL when error is set */
	json_t *error;          /* responses: borrowed error object or NULL */
};

/* Classifies msg (borrowed; the fields of out borrow from it). Returns 0 or
 * -EBADMSG with a reason in why. */
int rpc_parse(json_t *msg, struct rpc_msg *out, char *why, size_t why_len);

/* Builders return owned messages; params/result are stolen (may be NULL). */
json_t *rpc_request(json_int_t id, const char *method, json_t *params);
json_t *rpc_notification(const char *method, json_t *params);
json_t *rpc_result(json_int_t id, json_t *result);
json_t *rpc_error(json_int_t id, int code, const char *message);

#endif
