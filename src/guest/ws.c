/* Workspace builtins (@ws-unpack, @ws-pack): see ws.h.
 *
 * One builtin at a time, kept in this file's one static slot (there is one
 * agent per process). Its wire behaviour mirrors exec.c's for a command:
 * the exec.start reply carries a pid (the agent's own), each exec.stdin frame
 * is answered once its bytes are written, output goes in binary frames with
 * the exec's id, and exec.exit is the last message. */
#include "guest/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "guest/untar.h"
#include "guest/wspack.h"
#include "proto/rpc.h"

enum { WS_NONE, WS_UNPACK, WS_PACK };

static struct guest_ws {
	int kind;
	json_int_t id;
	int rootfd;
	struct guest_untar un;
	struct guest_wspack pk;
	uint8_t *frame;          /* @ws-pack: one output frame, prefix + data */
} ws = { .rootfd = -1 };

static void ws_free(void)
{
	if (ws.kind == WS_UNPACK)
		guest_untar_free(&ws.un);
	if (ws.kind == WS_PACK)
		guest_wspack_close(&ws.pk);
	if (ws.rootfd >= 0)
		close(ws.rootfd);
	free(ws.frame);
	memset(&ws, 0, sizeof(ws));
	ws.rootfd = -1;
}

void guest_ws_abort(void)
{
	ws_free();
}

static int ws_output(struct guest *g, int stream, const uint8_t *data, size_t len)
{
	uint8_t prefix[FRAME_BIN_PREFIX];
	struct frame_bin b = { .type = FRAME_BIN_OUTPUT, .arg = (uint8_t)stream,
			       .exec = (uint64_t)ws.id, .len = len };
	if (frame_bin_header(&b, prefix) < 0)
		return -EINVAL;
	int rc = guest_chan_append(g, prefix, sizeof(prefix));
	return rc < 0 ? rc : guest_chan_append(g, data, len);
}

/* Ends the builtin: its reason on stderr when it failed, then exec.exit. */
static int ws_end(struct guest *g, int code, int signal, const char *why)
{
	int rc = 0;
	if (why && why[0]) {
		char line[400];
		int n = snprintf(line, sizeof(line), "%s\n", why);
		rc = ws_output(g, 2, (const uint8_t *)line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
	json_t *p = json_pack("{s:I}", "exec", (json_int_t)ws.id);
	json_object_set_new(p, signal ? "signal" : "code", json_integer(signal ? signal : code));
	ws_free();
	if (rc < 0) {
		json_decref(p);
		return rc;
	}
	return guest_chan_send(g, rpc_notification("exec.exit", p));
}

/* mkdir -p of an absolute path. */
static int ws_mkdirs(const char *path)
{
	char d[PATH_MAX];
	snprintf(d, sizeof(d), "%s", path);
	for (char *p = d + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(d, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				return 0;
		}
	}
}

static int ws_is_builtin(json_t *params)
{
	const char *a0 = json_string_value(json_array_get(json_object_get(params, "argv"), 0));
	return a0 && a0[0] == '@';
}

int guest_ws_exec_start(struct guest *g, json_int_t id, json_t *params)
{
	if (!ws_is_builtin(params))
		return 1;
	static const char *const allowed[] = { "argv", "env", "cwd", "timeout_ms", "stdin", NULL };
	char why[256];
	json_int_t timeout = 0;
	int want_stdin = 0;
	if (proto_param_only(params, allowed, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "timeout_ms", 0, 0, INT32_MAX, &timeout, why, sizeof(why)) < 0 ||
	    proto_param_bool(params, "stdin", &want_stdin, why, sizeof(why)) < 0)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	json_t *argv = json_object_get(params, "argv");
	const char *a0 = json_string_value(json_array_get(argv, 0));
	const char *dir = json_string_value(json_array_get(argv, 1));
	int kind = !strcmp(a0, "@ws-unpack") ? WS_UNPACK : !strcmp(a0, "@ws-pack") ? WS_PACK : WS_NONE;
	if (kind == WS_NONE)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS,
					 "unknown builtin \"%.64s\" (builtins: @ws-unpack, @ws-pack)", a0);
	if (json_array_size(argv) != 2 || !dir || dir[0] != '/' || strlen(dir) >= PATH_MAX)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS,
					 "\"argv\": %s takes one absolute directory", a0);
	if (kind == WS_UNPACK && !want_stdin)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "@ws-unpack needs \"stdin\":true");
	if (ws.kind != WS_NONE)
		return guest_reply_error(g, id, -32000, "a workspace builtin is already running (exec %lld)",
					 (long long)ws.id);
	int rc = kind == WS_UNPACK ? ws_mkdirs(dir) : 0;
	int fd = rc < 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return guest_reply_error(g, id, -32000, "%s: %.200s: %s", a0, dir,
					 strerror(rc < 0 ? -rc : errno));
	ws.kind = kind;
	ws.id = id;
	ws.rootfd = fd;
	if (kind == WS_UNPACK) {
		guest_untar_init(&ws.un, fd);
	} else {
		ws.frame = malloc(FRAME_BIN_PREFIX + GUEST_WS_CHUNK);
		rc = ws.frame ? guest_wspack_open(&ws.pk, dir) : -ENOMEM;
		if (rc < 0) {
			ws.kind = WS_NONE;   /* nothing of the packer to close */
			ws_free();
			return guest_reply_error(g, id, -32000, "%s: %.200s: %s", a0, dir, strerror(-rc));
		}
	}
	return guest_reply(g, id, json_pack("{s:I}", "pid", (json_int_t)getpid()));
}

int guest_ws_exec_kill(struct guest *g, json_int_t id, json_t *params)
{
	json_int_t exec = -1, sig = 0;
	if (ws.kind == WS_NONE || json_integer_value(json_object_get(params, "exec")) != ws.id)
		return 1;
	static const char *const allowed[] = { "exec", "signal", NULL };
	char why[256];
	if (proto_param_only(params, allowed, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "exec", 1, 0, INT64_MAX, &exec, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "signal", 1, 1, 64, &sig, why, sizeof(why)) < 0)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	int rc = guest_reply(g, id, json_object());
	return rc < 0 ? rc : ws_end(g, 0, (int)sig, NULL);
}

int guest_ws_stdin(struct guest *g, const struct frame_bin *b)
{
	if (ws.kind == WS_NONE || (json_int_t)b->exec != ws.id)
		return 1;
	if (ws.kind != WS_UNPACK)
		return guest_reply_error(g, (json_int_t)b->id, -32000, "@ws-pack takes no stdin");
	int rc = guest_untar_feed(&ws.un, b->data, b->len);
	if (rc == 0 && (b->arg & FRAME_BIN_EOF))
		rc = guest_untar_finish(&ws.un);
	if (rc < 0) {
		char why[400];
		snprintf(why, sizeof(why), "@ws-unpack: %s", ws.un.err);
		int r = guest_reply_error(g, (json_int_t)b->id, -32000, "stdin closed: %s", why);
		return r < 0 ? r : ws_end(g, 1, 0, why);
	}
	rc = guest_reply(g, (json_int_t)b->id, json_object());
	if (rc < 0 || !(b->arg & FRAME_BIN_EOF))
		return rc;
	return ws_end(g, 0, 0, NULL);
}

int guest_ws_pump(struct guest *g)
{
	/* A few frames per turn, then the loop serves the host again. */
	for (int i = 0; i < 4; i++) {
		if (ws.kind != WS_PACK || guest_chan_pending(g) >= GUEST_OUTQ_HIGH)
			return 0;
		char why[320] = "";
		long n = guest_wspack_read(&ws.pk, ws.frame + FRAME_BIN_PREFIX, GUEST_WS_CHUNK, why,
					   sizeof(why));
		if (n < 0) {
			char line[400];
			snprintf(line, sizeof(line), "@ws-pack: %s", why);
			return ws_end(g, 1, 0, line);
		}
		if (n == 0) {
			if (ws.pk.skipped)
				log_info("@ws-pack: skipped %zu fifos, sockets or devices", ws.pk.skipped);
			return ws_end(g, 0, 0, NULL);
		}
		struct frame_bin b = { .type = FRAME_BIN_OUTPUT, .arg = 1, .exec = (uint64_t)ws.id,
				       .len = (size_t)n };
		int rc = frame_bin_header(&b, ws.frame);
		if (rc == 0)
			rc = guest_chan_append(g, ws.frame, FRAME_BIN_PREFIX + (size_t)n);
		if (rc < 0)
			return rc;
	}
	return ws.kind == WS_PACK && guest_chan_pending(g) < GUEST_OUTQ_HIGH;
}
