/* JSON-RPC envelope: classification and strict rejection of malformed envelopes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "proto/rpc.h"

static int parse_text(const char *text, struct rpc_msg *m, char *why, json_t **keep)
{
	json_t *j = json_loads(text, 0, NULL);
	cr_assert_not_null(j, "test JSON invalid: %s", text);
	int rc = rpc_parse(j, m, why, 128);
	*keep = j;
	return rc;
}

Test(rpc, classifies_request_notification_response)
{
	struct rpc_msg m;
	char why[128];
	json_t *j;
	cr_assert_eq(parse_text("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"params\":{}}", &m, why, &j), 0);
	cr_assert_eq(m.kind, RPC_REQUEST);
	cr_assert_eq(m.id, 3);
	cr_assert_str_eq(m.method, "ping");
	json_decref(j);
	cr_assert_eq(parse_text("{\"jsonrpc\":\"2.0\",\"method\":\"hello\"}", &m, why, &j), 0);
	cr_assert_eq(m.kind, RPC_NOTIFICATION);
	json_decref(j);
	cr_assert_eq(parse_text("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}", &m, why, &j), 0);
	cr_assert_eq(m.kind, RPC_RESPONSE);
	cr_assert_eq(m.id, 0);
	json_decref(j);
	cr_assert_eq(parse_text("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"x\"}}", &m, why, &j), 0);
	cr_assert_not_null(m.error);
	json_decref(j);
}

Test(rpc, rejects_bad_envelopes)
{
	const char *bad[] = {
		"{\"id\":1,\"method\":\"x\"}",
		"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"x\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":-4,\"method\":\"x\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"method\":5}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"\"}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":3}",
		"{\"jsonrpc\":\"2.0\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"m\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rpc_msg m;
		char why[128] = "";
		json_t *j;
		cr_assert_eq(parse_text(bad[i], &m, why, &j), -EBADMSG, "accepted: %s", bad[i]);
		cr_assert(why[0], "no reason for: %s", bad[i]);
		json_decref(j);
	}
}

Test(rpc, builders_round_trip)
{
	json_t *req = rpc_request(9, "exec.start", json_pack("{s:[s]}", "argv", "true"));
	struct rpc_msg m;
	char why[128];
	cr_assert_eq(rpc_parse(req, &m, why, sizeof(why)), 0);
	cr_assert_eq(m.kind, RPC_REQUEST);
	cr_assert_eq(m.id, 9);
	json_decref(req);
	json_t *err = rpc_error(9, RPC_INVALID_PARAMS, "argv must be a list");
	cr_assert_eq(rpc_parse(err, &m, why, sizeof(why)), 0);
	cr_assert_eq(json_integer_value(json_object_get(m.error, "code")), RPC_INVALID_PARAMS);
	json_decref(err);
}
