/* The API's routing and its answers (docs/api.yaml is the contract).
 *
 * libmicrohttpd calls serve_api_access several times per request: once with
 * the headers (we allocate the request and refuse an announced body over its
 * cap at once), once per body chunk (appended to a capped buffer), and once
 * at the end, where the route runs. A route answers at once, or starts
 * something on the loop (a VM boot, a guest call) and the connection is
 * suspended until serve_req_answer_* resumes it; MHD then calls us once more
 * and the stored answer is queued. Exec streams queue their own response
 * (exec.c). Every error body is {"error": ..., "field"?: ...}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "serve/internal.h"

#define API_VERSION "0.1.0"

static struct MHD_Response *api_response_json(json_t *j)
{
	size_t n = 0;
	char *p = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (p)
		n = strlen(p);
	struct MHD_Response *r = p ? MHD_create_response_from_buffer(n, p, MHD_RESPMEM_MUST_FREE)
				   : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r)
		free(p);
	else
		MHD_add_response_header(r, "Content-Type", "application/json");
	return r;
}

static void api_count_status(struct serve *s, unsigned status)
{
	if (status == 400)
		s->m.rejected_400++;
	else if (status == 413)
		s->m.rejected_413++;
	else if (status == 429)
		s->m.rejected_429++;
}

void serve_req_resume(struct serve_req *r)
{
	if (r->suspended) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
	}
	serve_http_kick(r->s);
}

static void api_store(struct serve_req *r, unsigned status, struct MHD_Response *resp)
{
	if (r->resp)
		MHD_destroy_response(r->resp);
	r->resp = resp;
	r->status = status;
	serve_req_resume(r);
}

void serve_req_answer_json(struct serve_req *r, unsigned status, json_t *body)
{
	api_store(r, status, api_response_json(body));
}

static json_t *api_error_json(const char *field, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	if (j && field)
		json_object_set_new(j, "field", json_string(field));
	return j;
}

void serve_req_answer_error(struct serve_req *r, unsigned status, const char *field,
			    const char *msg)
{
	api_count_status(r->s, status);
	serve_req_answer_json(r, status, api_error_json(field, msg));
}

void serve_req_answer_bytes(struct serve_req *r, unsigned status, const char *type,
			    const void *p, size_t n)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, (void *)p,
								    MHD_RESPMEM_MUST_COPY);
	if (resp && type)
		MHD_add_response_header(resp, "Content-Type", type);
	api_store(r, status, resp);
}

static enum MHD_Result api_queue(struct serve_req *r)
{
	struct MHD_Response *resp = r->resp;
	r->resp = NULL;
	if (!resp)
		return MHD_NO; /* out of memory: MHD closes the connection */
	enum MHD_Result ok = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return ok;
}

static enum MHD_Result api_now(struct serve_req *r, unsigned status, json_t *body)
{
	api_count_status(r->s, status);
	r->resp = api_response_json(body);
	r->status = status;
	return api_queue(r);
}

static enum MHD_Result api_error(struct serve_req *r, unsigned status, const char *field,
				 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result api_error(struct serve_req *r, unsigned status, const char *field,
				 const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return api_now(r, status, api_error_json(field, msg));
}

/* ---- routes ---- */

static enum MHD_Result api_health(struct serve_req *r)
{
	struct serve *s = r->s;
	return api_now(r, 200, json_pack("{s:s, s:s, s:I, s:I}", "status", "ok", "version",
					 API_VERSION, "sandboxes",
					 (json_int_t)serve_sandbox_count(s), "pool_ready",
					 (json_int_t)serve_pool_ready(s->pool)));
}

static enum MHD_Result api_metrics(struct serve_req *r)
{
	struct buf b;
	buf_init(&b, 1u << 20);
	if (serve_metrics_text(r->s, &b) < 0) {
		buf_free(&b);
		return api_error(r, 500, NULL, "the metrics do not fit in 1 MiB");
	}
	size_t n = 0;
	uint8_t *p = buf_steal(&b, &n);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, p ? p : (uint8_t *)"",
		p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (resp)
		MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	r->resp = resp;
	r->status = 200;
	return api_queue(r);
}

static enum MHD_Result api_list(struct serve_req *r)
{
	json_t *a = json_array();
	for (struct serve_sandbox *sb = r->s->sandboxes; sb; sb = sb->next)
		if (!sb->deleting)
			json_array_append_new(a, serve_sandbox_json(sb));
	return api_now(r, 200, json_pack("{s:o}", "sandboxes", a));
}

static enum MHD_Result api_create(struct serve_req *r)
{
	struct serve_shape shape;
	unsigned ttl = 0;
	json_t *env = NULL, *labels = NULL;
	char field[SERVE_FIELD_MAX] = "";
	struct err e = { 0 };
	struct serve_sandbox *sb = NULL;
	if (r->s->stopping)
		return api_error(r, 503, NULL, "the daemon is stopping");
	if (serve_body_create(r->s, (const char *)r->body.data, r->body.len, &shape, &ttl, &env,
			      &labels, field, &e) < 0)
		return api_error(r, 400, field, "%s", e.msg);
	int status = serve_sandbox_create(r->s, &shape, ttl, env, labels, r, &sb, &e);
	if (status) {
		json_decref(env);
		json_decref(labels);
		return api_error(r, (unsigned)status, NULL, "%s", e.msg);
	}
	if (sb->state == SB_READY)
		return api_now(r, 201, serve_sandbox_json(sb));
	return MHD_YES; /* answered by the sandbox's ready or failed */
}

static enum MHD_Result api_exec(struct serve_req *r, struct serve_sandbox *sb)
{
	struct serve_exec_req x;
	char field[SERVE_FIELD_MAX] = "";
	struct err e = { 0 };
	if (sb->state != SB_READY)
		return api_error(r, 409, NULL, "sandbox %s is %s, not ready", sb->id,
				 sb->state == SB_FAILED ? "failed" : "starting");
	if (serve_body_exec((const char *)r->body.data, r->body.len, sb->env, &x, field, &e) < 0)
		return api_error(r, 400, field, "%s", e.msg);
	return serve_exec_begin(r, sb, &x);
}

static enum MHD_Result api_files(struct serve_req *r, struct serve_sandbox *sb, const char *method)
{
	const char *path = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "path");
	const char *list = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "list");
	struct err e = { 0 };
	int status;
	if (!path || path[0] != '/' || strlen(path) > 4096)
		return api_error(r, 400, "path", "the query needs path=/absolute/guest/path");
	if (list && strcmp(list, "0") && strcmp(list, "1"))
		return api_error(r, 400, "list", "list must be 0 or 1");
	if (sb->state != SB_READY)
		return api_error(r, 409, NULL, "sandbox %s is not ready", sb->id);
	if (!strcmp(method, "PUT")) {
		if (list && !strcmp(list, "1"))
			return api_error(r, 400, "list", "list=1 is for GET");
		status = serve_files_put(r, sb, path, r->body.data, r->body.len, &e);
	} else {
		status = serve_files_get(r, sb, path, list && !strcmp(list, "1"), &e);
	}
	if (status)
		return api_error(r, (unsigned)status, NULL, "%s", e.msg);
	return MHD_YES;
}

static enum MHD_Result api_workspace(struct serve_req *r, struct serve_sandbox *sb,
				     const char *method)
{
	struct err e = { 0 };
	if (sb->state != SB_READY || sb->deleting)
		return api_error(r, 409, NULL, "sandbox %s is not ready", sb->id);
	if (!strcmp(method, "GET"))
		return serve_workspace_get(r, sb);
	int status = serve_workspace_put_end(r, sb, &e);
	if (status)
		return api_error(r, (unsigned)status, NULL, "%s", e.msg);
	return MHD_YES;
}

/* /v1/sandboxes/{id}[/exec|/files|/workspace]; the bare id takes GET, PATCH, DELETE */
static enum MHD_Result api_sandbox(struct serve_req *r, const char *rest, const char *method)
{
	char id[SERVE_ID_LEN + 2];
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *sub = slash ? slash : "";
	if (n == 0 || n > SERVE_ID_LEN)
		return api_error(r, 404, NULL, "no sandbox '%.*s'", (int)(n > 64 ? 64 : n), rest);
	memcpy(id, rest, n);
	id[n] = 0;
	struct serve_sandbox *sb = serve_sandbox_find(r->s, id);
	if (!sb)
		return api_error(r, 404, NULL, "no sandbox '%s' (hint: GET /v1/sandboxes lists them)",
				 id);
	if (!*sub) {
		if (!strcmp(method, "GET"))
			return api_now(r, 200, serve_sandbox_json(sb));
		if (!strcmp(method, "DELETE")) {
			serve_sandbox_delete_for(sb, r);
			return MHD_YES;
		}
		if (!strcmp(method, "PATCH")) {
			char field[SERVE_FIELD_MAX];
			struct err e = { 0 };
			if (serve_patch_sandbox(sb, (const char *)r->body.data, r->body.len, field, &e) < 0)
				return api_error(r, 400, field[0] ? field : NULL, "%s", e.msg);
			return api_now(r, 200, serve_sandbox_json(sb));
		}
	} else if (!strcmp(sub, "/exec")) {
		if (!strcmp(method, "POST"))
			return api_exec(r, sb);
	} else if (!strcmp(sub, "/files")) {
		if (!strcmp(method, "PUT") || !strcmp(method, "GET"))
			return api_files(r, sb, method);
	} else if (!strcmp(sub, "/workspace")) {
		if (!strcmp(method, "PUT") || !strcmp(method, "GET"))
			return api_workspace(r, sb, method);
	} else {
		return api_error(r, 404, NULL, "no such endpoint");
	}
	return api_error(r, 405, NULL, "%s is not allowed here (see docs/api.yaml)", method);
}

static enum MHD_Result api_route(struct serve_req *r, const char *url, const char *method)
{
	static const char sbs[] = "/v1/sandboxes";
	if (!strcmp(url, "/v1/health"))
		return !strcmp(method, "GET") ? api_health(r) : api_error(r, 405, NULL, "use GET");
	if (!strcmp(url, "/metrics"))
		return !strcmp(method, "GET") ? api_metrics(r) : api_error(r, 405, NULL, "use GET");
	if (!strcmp(url, sbs) || !strcmp(url, "/v1/sandboxes/")) {
		if (!strcmp(method, "POST"))
			return api_create(r);
		if (!strcmp(method, "GET"))
			return api_list(r);
		return api_error(r, 405, NULL, "use GET or POST");
	}
	if (!strncmp(url, sbs, sizeof(sbs) - 1) && url[sizeof(sbs) - 1] == '/')
		return api_sandbox(r, url + sizeof(sbs), method);
	return api_error(r, 404, NULL, "no such endpoint: %.200s (see docs/api.yaml)", url);
}

static size_t api_body_max(const char *url, const char *method)
{
	size_t n = strlen(url);
	if (!strcmp(method, "PUT") && n > 6 && !strcmp(url + n - 6, "/files"))
		return SERVE_FILE_BODY_MAX;
	return SERVE_JSON_BODY_MAX;
}

enum MHD_Result serve_api_access(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct serve_req *r = *con_cls;
	(void)version;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->s = cls;
		r->conn = c;
		r->body_max = api_body_max(url, method);
		buf_init(&r->body, r->body_max);
		*con_cls = r;
		/* A workspace archive goes to the guest as it comes (workspace.c
		 * caps it): it is never held here whole. */
		r->stream_body = serve_workspace_streams(url, method);
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		unsigned long long len = cl && !r->stream_body ? strtoull(cl, NULL, 10) : 0;
		if (len > r->body_max) {
			/* A client waiting for 100-continue gets the 413 instead, and
			 * sends nothing; one that sends at once has the body dropped
			 * first (below), else it may fail sending before it reads. */
			const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
			if ((ex && !strcasecmp(ex, "100-continue")) || len > SERVE_BODY_DRAIN_MAX) {
				r->started = 1;
				return api_error(r, 413, NULL, "the body is over %zu bytes", r->body_max);
			}
			r->too_big = 1;
			buf_free(&r->body);
		}
		return MHD_YES;
	}
	if (*upload_size && r->stream_body)
		return serve_workspace_put_data(r, url, upload, upload_size);
	if (*upload_size) {
		if (!r->too_big && buf_append(&r->body, upload, *upload_size) < 0) {
			r->too_big = 1;
			buf_free(&r->body);
		}
		if (r->too_big && (r->drained += *upload_size) > SERVE_BODY_DRAIN_MAX)
			return MHD_NO;   /* an endless body: close the connection */
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->resp)
		return api_queue(r);
	if (r->started)
		return MHD_YES; /* resumed to let a stream go on, or already answered */
	r->started = 1;
	snprintf(r->route, sizeof(r->route), "%s", method);
	if (r->too_big)
		return api_error(r, 413, NULL, "the body is over %zu bytes", r->body_max);
	enum MHD_Result ok = api_route(r, url, method);
	if (r->resp)
		return api_queue(r); /* answered while the route ran */
	if (ok == MHD_YES && !r->op_queued && (r->sb || r->op)) {
		/* Waiting on a VM or a guest call: the answer resumes us. */
		r->suspended = 1;
		MHD_suspend_connection(c);
	}
	return ok;
}

void serve_api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct serve_req *r = *con_cls;
	(void)cls;
	(void)c;
	if (!r)
		return;
	*con_cls = NULL;
	if (r->sb) {
		struct serve_sandbox *sb = r->sb;
		r->sb = NULL;
		if (sb->waiter == r)
			serve_sandbox_forget_waiter(sb);
	}
	if (r->op && r->op_detach)
		r->op_detach(r->op, toe);
	if (r->resp)
		MHD_destroy_response(r->resp);
	buf_free(&r->body);
	free(r);
}
