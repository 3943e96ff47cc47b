/* The CLI's exec over the daemon: POST /v1/sandboxes/{id}/exec, its NDJSON
 * events decoded as they arrive (stdout and stderr chunks written through,
 * then the exit), and the one-shot form `ironclaw exec` uses (create, exec,
 * delete). The daemon is trusted less than nothing here would suggest: each
 * line is capped and parsed strictly, and a stream that ends without an exit
 * event is a failure (125), never a success. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "core/io.h"
#include "serve/serve.h"

#include <jansson.h>

#define CLIENT_LINE_MAX (24u << 20)

struct exec_read {
	struct buf line;
	int code;           /* -1 until the exit event */
	int bad;
	char msg[512];
};

static void exec_event(struct exec_read *x, const char *p, size_t n)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));
	if (!type) {
		x->bad = 1;
	} else if (!strcmp(type, "stdout") || !strcmp(type, "stderr")) {
		json_t *d = json_object_get(j, "data");
		size_t l = json_string_length(d);
		uint8_t *out = malloc(l / 4 * 3 + 1);
		long k = out && json_is_string(d) ? b64_decode(json_string_value(d), l, out) : -1;
		if (k >= 0)
			io_write_all(!strcmp(type, "stdout") ? 1 : 2, out, (size_t)k);
		else
			x->bad = 1;
		free(out);
	} else if (!strcmp(type, "exit")) {
		x->code = (int)json_integer_value(json_object_get(j, "code"));
		const char *m = json_string_value(json_object_get(j, "message"));
		if (m && x->code != 124)
			snprintf(x->msg, sizeof(x->msg), "%s", m);
	} else if (!strcmp(type, "error")) {
		const char *m = json_string_value(json_object_get(j, "error"));
		snprintf(x->msg, sizeof(x->msg), "%s", m ? m : "the exec failed");
		x->code = -2;
	}
	json_decref(j);
}

static void exec_chunk(void *ctx, const char *p, size_t n)
{
	struct exec_read *x = ctx;
	if (buf_append(&x->line, p, n) < 0) {
		x->bad = 1;
		buf_reset(&x->line);
		return;
	}
	for (;;) {
		uint8_t *nl = memchr(x->line.data, '\n', x->line.len);
		if (!nl)
			break;
		size_t len = (size_t)(nl - x->line.data);
		exec_event(x, (const char *)x->line.data, len);
		buf_consume(&x->line, len + 1);
	}
}

/* Runs the exec; returns the command's exit status as `ironclaw exec` would,
 * or 125 with e set. body is the ExecRequest JSON. */
int serve_client_exec(const char *sock, const char *id, const char *body, struct err *e)
{
	struct exec_read x = { .code = -1 };
	char path[128];
	long status = 0;
	struct buf errbody;
	buf_init(&x.line, CLIENT_LINE_MAX);
	buf_init(&errbody, 65536);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	int rc = serve_client_do(sock, &(struct serve_client_req){ .method = "POST", .path = path,
				 .body = body, .body_len = strlen(body), .chunk = exec_chunk,
				 .ctx = &x }, &status, NULL, e);
	if (rc == 0 && status != 200) {
		buf_append(&x.line, "", 1);
		json_t *j = json_loads((const char *)x.line.data, 0, NULL);
		err_set(e, -EIO, "the daemon refused the exec (%ld): %s", status,
			json_string_value(json_object_get(j, "error")) ?
			json_string_value(json_object_get(j, "error")) : "no reason given");
		json_decref(j);
		rc = 125;
	} else if (rc < 0) {
		rc = 125;
	} else if (x.bad || x.code == -1) {
		err_set(e, -EPROTO, "the daemon's exec stream ended without an exit event");
		rc = 125;
	} else if (x.code == -2) {
		err_set(e, -EIO, "%s", x.msg);
		rc = 125;
	} else {
		if (x.msg[0])
			fprintf(stderr, "ironclaw: %s\n", x.msg);
		rc = x.code;
	}
	buf_free(&x.line);
	buf_free(&errbody);
	return rc;
}

int serve_client_exec_once(const char *sock, const char *create_body, const char *exec_body,
			   struct err *e)
{
	struct buf b;
	long status = 0;
	char path[128], id[80];
	buf_init(&b, 65536);
	int rc = serve_client_do(sock, &(struct serve_client_req){ .method = "POST",
				 .path = "/v1/sandboxes", .body = create_body,
				 .body_len = strlen(create_body) }, &status, &b, e);
	json_t *j = rc == 0 ? json_loadb((const char *)b.data, b.len, 0, NULL) : NULL;
	buf_free(&b);
	if (rc < 0)
		return 125;
	const char *sid = json_string_value(json_object_get(j, "id"));
	if (status != 201 || !sid || strlen(sid) >= sizeof(id)) {
		const char *m = json_string_value(json_object_get(j, "error"));
		const char *f = json_string_value(json_object_get(j, "field"));
		/* The daemon runs as root and resolves an image in ITS store,
		 * not the caller's: say so, rather than leave "no image". */
		int img = status == 400 && f && !strcmp(f, "image");
		err_set(e, -EIO, "the daemon could not make a sandbox (%ld): %.600s%s", status,
			m ? m : "no reason given",
			img ? " (hint: the daemon looks images up in its own store, as its user: "
			      "`sudo ironclaw image ls` lists them; build it there with "
			      "`sudo ironclaw image build NAME`, or run with --no-daemon as root)" : "");
		json_decref(j);
		return 125;
	}
	snprintf(id, sizeof(id), "%s", sid);
	json_decref(j);
	rc = serve_client_exec(sock, id, exec_body, e);
	struct err de = { 0 };
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	serve_client_do(sock, &(struct serve_client_req){ .method = "DELETE", .path = path },
			&status, NULL, &de);
	return rc;
}

#define CLIENT_STDIN_MAX (768u * 1024)  /* fits a JSON body of 1 MiB as base64 */

int serve_client_exec_cmd(const char *sock, const struct serve_client_exec_spec *x,
			  struct err *e)
{
	json_t *c = json_object(), *b = json_object(), *av = json_array(), *env = json_object();
	int rc = 125;
	if (x->cpus)
		json_object_set_new(c, "cpus", json_integer(x->cpus));
	if (x->memory_mib)
		json_object_set_new(c, "memory_mib", json_integer(x->memory_mib));
	if (x->net)
		json_object_set_new(c, "net", json_string(x->net));
	if (x->image)
		json_object_set_new(c, "image", json_string(x->image));
	for (size_t i = 0; x->argv[i]; i++)
		json_array_append_new(av, json_string(x->argv[i]));
	for (size_t i = 0; x->env && x->env[i]; i++) {
		const char *eq = strchr(x->env[i], '=');
		char k[257];
		snprintf(k, sizeof(k), "%.*s", (int)(eq - x->env[i]), x->env[i]);
		json_object_set_new(env, k, json_string(eq + 1));
	}
	json_object_set(b, "argv", av);
	json_object_set(b, "env", env);
	if (x->cwd)
		json_object_set_new(b, "cwd", json_string(x->cwd));
	if (x->timeout_s)
		json_object_set_new(b, "timeout_s", json_integer(x->timeout_s));
	if (x->stdin_fd >= 0) {
		struct buf in;
		char chunk[65536];
		ssize_t n;
		buf_init(&in, CLIENT_STDIN_MAX);
		while ((n = io_read(x->stdin_fd, chunk, sizeof(chunk))) > 0) {
			if (buf_append(&in, chunk, (size_t)n) < 0) {
				err_set(e, -EMSGSIZE, "over the daemon's %u KiB of stdin (hint: "
					"--no-daemon streams any amount)", CLIENT_STDIN_MAX / 1024);
				buf_free(&in);
				goto out;
			}
		}
		char *enc = malloc(b64_encoded_len(in.len) + 1);
		if (enc) {
			b64_encode(in.data ? in.data : (const uint8_t *)"", in.len, enc);
			json_object_set_new(b, "stdin", json_string(enc));
		}
		free(enc);
		buf_free(&in);
	}
	char *cb = json_dumps(c, JSON_COMPACT), *eb = json_dumps(b, JSON_COMPACT);
	if (cb && eb)
		rc = serve_client_exec_once(sock, cb, eb, e);
	free(cb);
	free(eb);
out:
	json_decref(c);
	json_decref(b);
	json_decref(av);
	json_decref(env);
	return rc;
}
