/* Host-side message checks: see msg.h. Each check names the message in its
 * error, so "exec.exit: unknown field \"x\"" says where the guest went wrong. */
#include "proto/msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/params.h"

#define PROTO_KERNEL_MAX 256

/* Prefixes "what: " to a field check's message. */
static int proto_name(int rc, const char *what, char *why, size_t n)
{
	if (rc < 0 && why && n) {
		char inner[256];
		snprintf(inner, sizeof(inner), "%s", why);
		snprintf(why, n, "%s: %s", what, inner);
	}
	return rc;
}

int proto_check_hello(json_t *params, struct proto_hello *out, char *why, size_t n)
{
	static const char *const allowed[] = { "version", "kernel", NULL };
	size_t klen = 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = proto_param_only(params, allowed, why, n)) < 0 ||
	    (rc = proto_param_int(params, "version", 1, 1, INT32_MAX, &out->version, why, n)) < 0 ||
	    (rc = proto_param_str(params, "kernel", 1, &out->kernel, &klen, why, n)) < 0)
		return proto_name(rc, "hello", why, n);
	if (out->version != PROTO_VERSION) {
		snprintf(why, n, "hello: guest speaks protocol version %lld, the host %d "
			 "(hint: rebuild the image with `make image`)", (long long)out->version,
			 PROTO_VERSION);
		return -EINVAL;
	}
	if (klen > PROTO_KERNEL_MAX) {
		snprintf(why, n, "hello: \"kernel\" is longer than %d bytes", PROTO_KERNEL_MAX);
		return -EINVAL;
	}
	return 0;
}

int proto_check_exec_output(json_t *params, size_t max, struct proto_output *out,
			    char *why, size_t n)
{
	static const char *const allowed[] = { "exec", "stream", "data", NULL };
	const char *stream = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = proto_param_only(params, allowed, why, n)) < 0 ||
	    (rc = proto_param_int(params, "exec", 1, 0, INT64_MAX, &out->exec, why, n)) < 0 ||
	    (rc = proto_param_str(params, "stream", 1, &stream, NULL, why, n)) < 0)
		return proto_name(rc, "exec.output", why, n);
	out->stream = !strcmp(stream, "stdout") ? 1 : !strcmp(stream, "stderr") ? 2 : 0;
	if (!out->stream) {
		snprintf(why, n, "exec.output: \"stream\" must be \"stdout\" or \"stderr\"");
		return -EINVAL;
	}
	rc = proto_param_data(params, max, &out->data, &out->len, why, n);
	return proto_name(rc, "exec.output", why, n);
}

int proto_check_exec_exit(json_t *params, struct proto_exit *out, char *why, size_t n)
{
	static const char *const allowed[] = { "exec", "code", "signal", "timed_out", NULL };
	json_int_t code = -1, sig = -1;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = proto_param_only(params, allowed, why, n)) < 0 ||
	    (rc = proto_param_int(params, "exec", 1, 0, INT64_MAX, &out->exec, why, n)) < 0 ||
	    (rc = proto_param_int(params, "code", 0, 0, 255, &code, why, n)) < 0 ||
	    (rc = proto_param_int(params, "signal", 0, 1, 64, &sig, why, n)) < 0 ||
	    (rc = proto_param_bool(params, "timed_out", &out->timed_out, why, n)) < 0)
		return proto_name(rc, "exec.exit", why, n);
	if ((code < 0) == (sig < 0)) {
		snprintf(why, n, "exec.exit: needs exactly one of \"code\" and \"signal\"");
		return -EINVAL;
	}
	out->code = code < 0 ? 0 : (int)code;
	out->signal = sig < 0 ? 0 : (int)sig;
	return 0;
}

int proto_check_notification(const char *method, json_t *params, char *why, size_t n)
{
	if (!strcmp(method, "hello")) {
		struct proto_hello h;
		return proto_check_hello(params, &h, why, n);
	}
	if (!strcmp(method, "exec.output") || !strcmp(method, "exec.exit"))
		return 0;
	snprintf(why, n, "unknown notification \"%.64s\"", method);
	return -EINVAL;
}

static int proto_result_empty(json_t *result, char *why, size_t n)
{
	static const char *const none[] = { NULL };
	return proto_param_only(result, none, why, n);
}

static int proto_result_exec_start(json_t *result, char *why, size_t n)
{
	static const char *const allowed[] = { "pid", NULL };
	json_int_t pid;
	int rc = proto_param_only(result, allowed, why, n);
	return rc < 0 ? rc : proto_param_int(result, "pid", 1, 1, INT32_MAX, &pid, why, n);
}

static int proto_result_file_put(json_t *result, char *why, size_t n)
{
	static const char *const allowed[] = { "size", NULL };
	json_int_t size;
	int rc = proto_param_only(result, allowed, why, n);
	return rc < 0 ? rc : proto_param_int(result, "size", 1, 0, INT64_MAX, &size, why, n);
}

static int proto_result_file_get(json_t *result, char *why, size_t n)
{
	static const char *const allowed[] = { "data", "size", "eof", NULL };
	json_int_t size;
	int eof = -1, rc;
	uint8_t *data = NULL;
	size_t len;
	if ((rc = proto_param_only(result, allowed, why, n)) < 0 ||
	    (rc = proto_param_int(result, "size", 1, 0, INT64_MAX, &size, why, n)) < 0 ||
	    (rc = proto_param_bool(result, "eof", &eof, why, n)) < 0 ||
	    (rc = proto_param_data(result, PROTO_FILE_MAX, &data, &len, why, n)) < 0)
		return rc;
	free(data);
	if (eof < 0) {
		snprintf(why, n, "missing \"eof\"");
		return -EINVAL;
	}
	return 0;
}

static int proto_result_identity(json_t *result, char *why, size_t n)
{
	static const char *const allowed[] = { "entropy_bytes", "hostname", "vm_id", NULL };
	json_int_t bytes;
	const char *str;
	size_t len;
	int rc;
	if ((rc = proto_param_only(result, allowed, why, n)) < 0 ||
	    (rc = proto_param_int(result, "entropy_bytes", 1, 0, 4096, &bytes, why, n)) < 0 ||
	    (rc = proto_param_str(result, "hostname", 1, &str, &len, why, n)) < 0 ||
	    (rc = proto_param_str(result, "vm_id", 1, &str, &len, why, n)) < 0)
		return rc;
	return 0;
}

struct proto_reply_check {
	const char *method;
	int (*check)(json_t *result, char *why, size_t n);
};

static const struct proto_reply_check proto_replies[] = {
	{ "ping", proto_result_empty },
	{ "shutdown", proto_result_empty },
	{ "exec.start", proto_result_exec_start },
	{ "exec.stdin", proto_result_empty },
	{ "exec.kill", proto_result_empty },
	{ "file.put", proto_result_file_put },
	{ "file.get", proto_result_file_get },
	{ "vm.identity", proto_result_identity },
};

int proto_check_result(const char *method, json_t *result, char *why, size_t n)
{
	for (size_t i = 0; i < sizeof(proto_replies) / sizeof(proto_replies[0]); i++) {
		if (strcmp(method, proto_replies[i].method))
			continue;
		if (!json_is_object(result)) {
			snprintf(why, n, "reply to %s: result must be an object", method);
			return -EINVAL;
		}
		return proto_name(proto_replies[i].check(result, why, n), method, why, n);
	}
	snprintf(why, n, "reply to %.64s, a method the host does not send", method);
	return -EINVAL;
}

int proto_check_error(json_t *error, char *why, size_t n)
{
	static const char *const allowed[] = { "code", "message", "data", NULL };
	json_int_t code;
	const char *msg;
	int rc;
	if ((rc = proto_param_only(error, allowed, why, n)) < 0 ||
	    (rc = proto_param_int(error, "code", 1, INT32_MIN, INT32_MAX, &code, why, n)) < 0 ||
	    (rc = proto_param_str(error, "message", 1, &msg, NULL, why, n)) < 0)
		return proto_name(rc, "error object", why, n);
	return 0;
}
