/* Newline-delimited JSON for the stdio transport, and JSON-RPC classification.
 *
 * A server's stdout is a byte stream cut at arbitrary points, so lines are
 * assembled incrementally. A line longer than the cap is never buffered whole:
 * once it passes the cap we drop what we have and skip to the next newline, so
 * a hostile server costs at most `max` bytes of memory and the session goes on.
 * MCP ids may be integers or strings (unlike our own guest channel), and
 * id 0 is a valid id. */
#include "mcp/wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

void mcp_lines_init(struct mcp_lines *l, size_t max)
{
	memset(l, 0, sizeof(*l));
	l->max = max;
	buf_init(&l->cur, max);
}

void mcp_lines_free(struct mcp_lines *l)
{
	buf_free(&l->cur);
}

static void lines_emit(struct mcp_lines *l, mcp_line_cb cb, void *opaque)
{
	size_t len = l->cur.len;
	const char *p = (const char *)l->cur.data;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	cb(opaque, p ? p : "", len);
	buf_reset(&l->cur);
}

void mcp_lines_feed(struct mcp_lines *l, const char *p, size_t n, mcp_line_cb cb, void *opaque)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (l->discarding) {
			if (nl)
				l->discarding = 0;
		} else if (buf_append(&l->cur, p, take) < 0) {
			/* Over the cap (or out of memory): drop the line whole. */
			l->dropped++;
			log_warn("mcp: dropping a message line longer than %zu bytes", l->max);
			buf_reset(&l->cur);
			l->discarding = nl == NULL;
		} else if (nl) {
			lines_emit(l, cb, opaque);
		}
		if (!nl)
			return;
		p = nl + 1;
		n -= take + 1;
	}
}

json_t *mcp_json_parse(const char *p, size_t n, struct err *e)
{
	json_error_t jerr;
	json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!v)
		err_set(e, -EBADMSG, "invalid JSON at column %d: %s", jerr.column, jerr.text);
	return v;
}

static int msg_bad(struct err *e, const char *reason)
{
	return err_set(e, -EBADMSG, "%s", reason);
}

int mcp_msg_classify(json_t *msg, struct mcp_msg *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(msg))
		return msg_bad(e, "message is not a JSON object");
	json_t *ver = json_object_get(msg, "jsonrpc");
	if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0"))
		return msg_bad(e, "missing or wrong \"jsonrpc\" (want \"2.0\")");
	json_t *id = json_object_get(msg, "id");
	if (id && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id))
		return msg_bad(e, "id is neither an integer nor a string");
	json_t *method = json_object_get(msg, "method");
	if (method) {
		if (!json_is_string(method) || json_string_length(method) == 0)
			return msg_bad(e, "method is not a non-empty string");
		json_t *params = json_object_get(msg, "params");
		if (params && !json_is_object(params) && !json_is_array(params))
			return msg_bad(e, "params is neither an object nor an array");
		if (id && json_is_null(id))
			return msg_bad(e, "request id is null");
		out->kind = id ? MCP_MSG_REQUEST : MCP_MSG_NOTIFICATION;
		out->id = id;
		out->method = json_string_value(method);
		out->params = params;
		return 0;
	}
	json_t *result = json_object_get(msg, "result");
	json_t *error = json_object_get(msg, "error");
	if (!id)
		return msg_bad(e, "neither a method nor an id");
	if (!!result == !!error)
		return msg_bad(e, "response needs exactly one of result and error");
	if (error) {
		if (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")))
			return msg_bad(e, "error is not an object with an integer code");
		json_t *m = json_object_get(error, "message");
		if (m && !json_is_string(m))
			return msg_bad(e, "error message is not a string");
	}
	out->kind = MCP_MSG_RESPONSE;
	out->id = id;
	out->result = result;
	out->error = error;
	return 0;
}
