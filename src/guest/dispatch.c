/* Request dispatch: one table from method name to handler. The host sends only
 * requests; a notification or response from it breaks the protocol (we never
 * send requests, so no response can match), and ends the connection. */
#include "guest/guest.h"
#include "guest/ws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "core/log.h"
#include "proto/rpc.h"

int guest_reply(struct guest *g, json_int_t id, json_t *result)
{
	return guest_chan_send(g, rpc_result(id, result));
}

/* Messages quote host strings with a precision (%.200s), which can cut a UTF-8
 * sequence in two; jansson would then refuse the whole error object. Turn each
 * cut sequence into '?'. The quoted strings were valid UTF-8 (the decoder checks),
 * so an incomplete sequence is the only defect that can occur. */
static void guest_utf8_scrub(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p;) {
		int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 :
			(*p & 0xf8) == 0xf0 ? 3 : -1;
		int ok = n >= 0;
		for (int i = 1; ok && i <= n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (ok) {
			p += n + 1;
			continue;
		}
		*p++ = '?';
		while ((*p & 0xc0) == 0x80)
			*p++ = '?';
	}
}

static int guest_reply_error_v(struct guest *g, json_int_t id, int code, json_t *data,
			       const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	guest_utf8_scrub(msg);
	json_t *m = rpc_error(id, code, msg);
	if (data)
		json_object_set_new(json_object_get(m, "error"), "data", data);
	return guest_chan_send(g, m);
}

int guest_reply_error(struct guest *g, json_int_t id, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = guest_reply_error_v(g, id, code, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

int guest_reply_error_data(struct guest *g, json_int_t id, int code, json_t *data,
			   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = guest_reply_error_v(g, id, code, data, fmt, ap);
	va_end(ap);
	return rc;
}

int guest_send_hello(struct guest *g)
{
	struct utsname u;
	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	return guest_chan_send(g, rpc_notification("hello",
		json_pack("{s:i,s:s}", "version", GUEST_PROTO_VERSION, "kernel", u.release)));
}

static int guest_empty_params(struct guest *g, json_int_t id, json_t *params)
{
	static const char *const none[] = { NULL };
	char why[256];
	if (proto_param_only(params, none, why, sizeof(why)) < 0)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	return 1;
}

static int guest_do_ping(struct guest *g, json_int_t id, json_t *params)
{
	int rc = guest_empty_params(g, id, params);
	return rc <= 0 ? rc : guest_reply(g, id, json_object());
}

static int guest_do_shutdown(struct guest *g, json_int_t id, json_t *params)
{
	int rc = guest_empty_params(g, id, params);
	if (rc <= 0)
		return rc;
	g->shutdown_pending = 1;
	return guest_reply(g, id, json_object());
}

struct guest_method {
	const char *name;
	int (*run)(struct guest *g, json_int_t id, json_t *params);
};

/* The workspace builtins (ws.h) look like execs on the wire. */
static int guest_do_exec_start(struct guest *g, json_int_t id, json_t *params)
{
	int rc = guest_ws_exec_start(g, id, params);
	return rc == 1 ? guest_exec_start(g, id, params) : rc;
}

static int guest_do_exec_kill(struct guest *g, json_int_t id, json_t *params)
{
	int rc = guest_ws_exec_kill(g, id, params);
	return rc == 1 ? guest_exec_kill(g, id, params) : rc;
}

static const struct guest_method guest_methods[] = {
	{ "ping", guest_do_ping },
	{ "exec.start", guest_do_exec_start },
	{ "exec.stdin", guest_exec_stdin },
	{ "exec.kill", guest_do_exec_kill },
	{ "file.put", guest_file_put },
	{ "file.get", guest_file_get },
	{ "shutdown", guest_do_shutdown },
	{ "vm.identity", guest_identity },
};

int guest_dispatch_bin(struct guest *g, const struct guest_in *in)
{
	const struct frame_bin *b = &in->bin;
	if (b->type != FRAME_BIN_STDIN) {
		log_error("binary frame of type %u from host, which only the guest may send; "
			  "closing the channel", b->type);
		return -EBADMSG;
	}
	if (g->shutdown_pending)
		return guest_reply_error(g, (json_int_t)b->id, -32000, "shutting down");
	int rc = guest_ws_stdin(g, b);
	if (rc != 1)
		return rc;
	return guest_exec_stdin_bytes(g, (json_int_t)b->id, (json_int_t)b->exec, b->data, b->len,
				      b->arg & FRAME_BIN_EOF);
}

int guest_dispatch(struct guest *g, json_t *msg)
{
	struct rpc_msg m;
	char why[256];
	if (rpc_parse(msg, &m, why, sizeof(why)) < 0) {
		log_error("bad message from host: %s; closing the channel", why);
		return -EBADMSG;
	}
	if (m.kind == RPC_RESPONSE) {
		log_error("response with id %lld from host, but the guest sent no request; "
			  "closing the channel", (long long)m.id);
		return -EBADMSG;
	}
	if (m.kind == RPC_NOTIFICATION) {
		log_error("unknown notification \"%.64s\" from host; closing the channel", m.method);
		return -EBADMSG;
	}
	if (g->shutdown_pending)
		return guest_reply_error(g, m.id, -32000, "shutting down");
	for (size_t i = 0; i < sizeof(guest_methods) / sizeof(guest_methods[0]); i++)
		if (!strcmp(m.method, guest_methods[i].name)) {
			if (m.params && !json_is_object(m.params))
				return guest_reply_error(g, m.id, RPC_INVALID_PARAMS,
							 "params must be an object");
			int rc = guest_methods[i].run(g, m.id, m.params);
			return rc > 0 ? 0 : rc;
		}
	return guest_reply_error(g, m.id, RPC_METHOD_NOT_FOUND, "unknown method \"%.64s\"",
				 m.method);
}
