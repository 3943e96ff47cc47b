/* PUT and GET /v1/sandboxes/{id}/files?path=...: a file's raw bytes in and
 * out of a sandbox (the guest's file.put / file.get, at most 8 MiB per
 * request, one guest call), and ?list=1: the entries of a directory.
 *
 * The guest has no listing method, so a listing is a fixed shell script run
 * in the guest with the path as its argument (never spliced into the script):
 * it prints "TYPE NAME\0" per entry. Its output is guest data, so it is
 * capped and parsed strictly: a record without the shape is an error, never
 * a guess. A guest "No such file" becomes a 404. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "core/log.h"
#include "serve/internal.h"

#define FILES_LIST_MAX (4u << 20)

struct files_op {
	struct serve_req *r;        /* NULL once the request ended */
	struct serve_sandbox *sb;
	char path[4100];
	struct buf out;             /* listing output */
	int running;
};

static const char files_list_script[] =
	"cd -- \"$1\" || exit 2\n"
	"for f in * .*; do\n"
	"  case $f in .|..) continue;; esac\n"
	"  [ -e \"$f\" ] || [ -L \"$f\" ] || continue\n"
	"  if [ -L \"$f\" ]; then t=other; elif [ -d \"$f\" ]; then t=dir;\n"
	"  elif [ -f \"$f\" ]; then t=file; else t=other; fi\n"
	"  printf '%s %s\\0' \"$t\" \"$f\"\n"
	"done\n";

static void files_free(struct files_op *op)
{
	if (op->r || op->running)
		return;
	buf_free(&op->out);
	free(op);
}

static void files_detach(void *p, enum MHD_RequestTerminationCode toe)
{
	struct files_op *op = p;
	(void)toe;
	op->r = NULL;
	files_free(op);
}

static void files_finish(struct files_op *op)
{
	op->running = 0;
	op->sb->busy--;
	if (op->r) {
		op->r->op = NULL;
		op->r->op_detach = NULL;
	}
	op->r = NULL;
	files_free(op);
}

static unsigned files_error_status(json_t *error, const char **msg)
{
	json_t *m = json_object_get(error, "message");
	*msg = json_is_string(m) ? json_string_value(m) : "the guest refused";
	return strstr(*msg, "No such file") || strstr(*msg, "Not a directory") ? 404 : 400;
}

static void serve_files_refused(struct serve_req *r, json_t *error)
{
	const char *msg = NULL;
	unsigned status = files_error_status(error, &msg);
	serve_req_answer_error(r, status, NULL, msg);
}

static void files_on_put(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	struct files_op *op = ctx;
	(void)ch;
	if (op->r) {
		if (result)
			serve_req_answer_json(op->r, 201, json_pack("{s:s, s:O}", "path", op->path,
				"size", json_object_get(result, "size")));
		else if (error)
			serve_files_refused(op->r, error);
		else
			serve_req_answer_error(op->r, 503, NULL, "the sandbox's VM went away");
	}
	files_finish(op);
}

static void files_on_get(struct channel *ch, json_t *result, json_t *error, void *ctx)
{
	struct files_op *op = ctx;
	(void)ch;
	if (op->r) {
		json_t *d = json_object_get(result, "data");
		if (result && json_is_true(json_object_get(result, "eof")) && json_is_string(d)) {
			size_t l = json_string_length(d);
			uint8_t *p = malloc(l / 4 * 3 + 1);
			long n = p ? b64_decode(json_string_value(d), l, p) : -ENOMEM;
			if (n >= 0)
				serve_req_answer_bytes(op->r, 200, "application/octet-stream", p,
						       (size_t)n);
			else
				serve_req_answer_error(op->r, 502, NULL, "the guest sent bad base64");
			free(p);
		} else if (result) {
			serve_req_answer_error(op->r, 413, NULL, "the file is over 8 MiB (hint: "
				"read it in parts with an exec of dd or split)");
		} else if (error) {
			serve_files_refused(op->r, error);
		} else {
			serve_req_answer_error(op->r, 503, NULL, "the sandbox's VM went away");
		}
	}
	files_finish(op);
}

static struct files_op *files_op_new(struct serve_req *r, struct serve_sandbox *sb,
				     const char *path)
{
	struct files_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->r = r;
	op->sb = sb;
	snprintf(op->path, sizeof(op->path), "%s", path);
	buf_init(&op->out, FILES_LIST_MAX);
	return op;
}

static int files_send(struct serve_req *r, struct files_op *op, const char *method,
		      json_t *params, channel_reply_cb cb, struct err *e)
{
	long id = vm_request(op->sb->sv->vm, method, params, cb, op);
	if (id < 0) {
		buf_free(&op->out);
		free(op);
		err_set(e, (int)id, "the sandbox cannot take requests now");
		return 409;
	}
	op->running = 1;
	op->sb->busy++;
	r->op = op;
	r->op_detach = files_detach;
	return 0;
}

int serve_files_put(struct serve_req *r, struct serve_sandbox *sb, const char *path,
		    const uint8_t *p, size_t n, struct err *e)
{
	struct files_op *op = files_op_new(r, sb, path);
	char *b = malloc(b64_encoded_len(n) + 1);
	if (!op || !b) {
		free(op);
		free(b);
		err_set(e, -ENOMEM, "out of memory");
		return 503;
	}
	b64_encode(p ? p : (const uint8_t *)"", n, b);
	json_t *params = json_pack("{s:s, s:s, s:i, s:b}", "path", path, "data", b, "mode", 0644,
				   "append", 0);
	free(b);
	return files_send(r, op, "file.put", params, files_on_put, e);
}

/* ---- listing: an exec of files_list_script ---- */

static void files_on_list_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len,
				 void *ctx)
{
	struct files_op *op = ctx;
	(void)x;
	if (stream == 1 && buf_append(&op->out, data, len) < 0)
		op->out.max = 0; /* over the cap: reported in done */
}

static json_t *files_parse_list(const struct buf *b, struct err *e)
{
	json_t *a = json_array();
	size_t i = 0;
	while (a && i < b->len) {
		const uint8_t *z = memchr(b->data + i, 0, b->len - i);
		const char *rec = (const char *)b->data + i;
		size_t n = z ? (size_t)(z - (b->data + i)) : 0;
		const char *sp = z ? memchr(rec, ' ', n) : NULL;
		if (!sp || sp == rec || (size_t)(sp - rec) + 1 >= n) {
			json_decref(a);
			err_set(e, -EPROTO, "the guest's listing is malformed");
			return NULL;
		}
		char type[8] = "other";
		size_t tl = (size_t)(sp - rec);
		if ((tl == 4 && !memcmp(rec, "file", 4)) || (tl == 3 && !memcmp(rec, "dir", 3)))
			snprintf(type, sizeof(type), "%.*s", (int)tl, rec);
		json_t *name = json_stringn(sp + 1, n - tl - 1); /* NULL if not UTF-8 */
		if (name)
			json_array_append_new(a, json_pack("{s:o, s:s}", "name", name, "type", type));
		i += n + 1;
	}
	return a;
}

static void files_on_list_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct files_op *op = ctx;
	(void)x;
	struct err e = { 0 };
	if (op->r) {
		if (res->err.code || !res->started)
			serve_req_answer_error(op->r, 503, NULL, res->err.code ? res->err.msg :
					       "the listing did not run");
		else if (op->out.max == 0)
			serve_req_answer_error(op->r, 413, NULL, "the listing is over 4 MiB");
		else if (res->code == 2)
			serve_req_answer_error(op->r, 404, NULL, "no such directory in the sandbox");
		else {
			json_t *a = files_parse_list(&op->out, &e);
			if (a)
				serve_req_answer_json(op->r, 200, json_pack("{s:s, s:o}", "path",
					op->path, "entries", a));
			else
				serve_req_answer_error(op->r, 502, NULL, e.msg);
		}
	}
	files_finish(op);
}

int serve_files_get(struct serve_req *r, struct serve_sandbox *sb, const char *path, int list,
		    struct err *e)
{
	struct files_op *op = files_op_new(r, sb, path);
	if (!op) {
		err_set(e, -ENOMEM, "out of memory");
		return 503;
	}
	if (!list)
		return files_send(r, op, "file.get",
				  json_pack("{s:s, s:i, s:I}", "path", path, "offset", 0, "length",
					    (json_int_t)SERVE_FILE_BODY_MAX),
				  files_on_get, e);
	static const struct vm_exec_handlers h = {
		.output = files_on_list_output,
		.done = files_on_list_done,
	};
	char *argv[] = { "/bin/sh", "-c", (char *)files_list_script, "sh", op->path, NULL };
	struct vm_exec *x;
	if (vm_exec_start(sb->sv->vm, &(struct vm_exec_spec){ .argv = argv, .timeout_ms = 30000 },
			  &h, op, &x, e) < 0) {
		buf_free(&op->out);
		free(op);
		return 409;
	}
	op->running = 1;
	sb->busy++;
	r->op = op;
	r->op_detach = files_detach;
	return 0;
}
