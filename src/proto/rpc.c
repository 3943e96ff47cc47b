/* JSON-RPC envelope: see rpc.h. */
#include "proto/rpc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int rpc_reject(char *why, size_t why_len, const char *reason)
{
	if (why && why_len)
		snprintf(why, why_len, "%s", reason);
	return -EBADMSG;
}

int rpc_parse(json_t *msg, struct rpc_msg *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(msg))
		return rpc_reject(why, why_len, "message is not a JSON object");
	json_t *ver = json_object_get(msg, "jsonrpc");
	if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0"))
		return rpc_reject(why, why_len, "missing \"jsonrpc\": \"2.0\"");

	json_t *id = json_object_get(msg, "id");
	json_t *method = json_object_get(msg, "method");
	if (id && (!json_is_integer(id) || json_integer_value(id) < 0))
		return rpc_reject(why, why_len, "id must be a non-negative integer");
	if (id)
		out->id = json_integer_value(id);

	if (method) {
		if (!json_is_string(method) || json_string_length(method) == 0)
			return rpc_reject(why, why_len, "method must be a non-empty string");
		json_t *params = json_object_get(msg, "params");
		if (params && !json_is_object(params) && !json_is_array(params))
			return rpc_reject(why, why_len, "params must be an object or array");
		out->kind = id ? RPC_REQUEST : RPC_NOTIFICATION;
		out->method = json_string_value(method);
		out->params = params;
		return 0;
	}

	if (!id)
		return rpc_reject(why, why_len, "message has neither method nor id");
	json_t *result = json_object_get(msg, "result");
	json_t *error = json_object_get(msg, "error");
	if (!!result == !!error)
		return rpc_reject(why, why_len, "response must have exactly one of result and error");
	if (error && (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
		      !json_is_string(json_object_get(error, "message"))))
		return rpc_reject(why, why_len, "error must be an object with code and message");
	out->kind = RPC_RESPONSE;
	out->result = result;
	out->error = error;
	return 0;
}

static json_t *rpc_base(void)
{
	return json_pack("{s:s}", "jsonrpc", "2.0");
}

json_t *rpc_request(json_int_t id, const char *method, json_t *params)
{
	json_t *m = rpc_base();
	json_object_set_new(m, "id", json_integer(id));
	json_object_set_new(m, "method", json_string(method));
	if (params)
		json_object_set_new(m, "params", params);
	return m;
}

json_t *rpc_notification(const char *method, json_t *params)
{
	json_t *m = rpc_base();
	json_object_set_new(m, "method", json_string(method));
	if (params)
		json_object_set_new(m, "params", params);
	return m;
}

json_t *rpc_result(json_int_t id, json_t *result)
{
	json_t *m = rpc_base();
	json_object_set_new(m, "id", json_integer(id));
	json_object_set_new(m, "result", result ? result : json_object());
	return m;
}

json_t *rpc_error(json_int_t id, int code, const char *message)
{
	json_t *m = rpc_base();
	json_object_set_new(m, "id", json_integer(id));
	json_object_set_new(m, "error", json_pack("{s:i,s:s}", "code", code, "message", message));
	return m;
}
