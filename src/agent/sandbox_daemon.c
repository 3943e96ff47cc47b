/* The run's sandbox in a running `ironclaw serve` (sandbox.h), reached with
 * libcurl over its Unix socket on the run's own loop (src/net): nothing here
 * blocks. The daemon makes the VM (pool, snapshot or cold) as root; this
 * process, the user's, only builds and reads tar streams (tarstream.c), so
 * what `run` later applies to the workspace is written by, and belongs to,
 * the user who ran it.
 *
 *   create     POST /v1/sandboxes                      -> ready / failed
 *   exec       POST /v1/sandboxes/{id}/exec            NDJSON events, decoded
 *                                                      into vmcall's captures
 *   copy-in    PUT  /v1/sandboxes/{id}/workspace       chunked tar body
 *   copy-out   GET  /v1/sandboxes/{id}/workspace       tar body into a sink
 *   keep-alive PATCH /v1/sandboxes/{id} {"ttl_s": N}   every N/3 s on a timer
 *   destroy    every call in flight ends with an error, then DELETE
 *
 * The sandbox's TTL is short (AGENT_SANDBOX_DAEMON_TTL_S) and renewed while
 * this handle lives, rather than the run's whole time: a CLI killed with
 * SIGKILL deletes nothing, and its sandbox then expires in minutes, not hours.
 * A renewal that fails is only logged; the next one tries again, and a daemon
 * that lost the sandbox says so to the run's next call.
 *
 * The daemon's answers are parsed like any peer's: each NDJSON line capped and
 * checked, a stream without its exit event is a failure, and each call has a
 * deadline of its own here beside the one the daemon enforces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/sandbox.h"
#include "agent/tarstream.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/net.h"

#define SBD_JSON_MAX (1u << 20)         /* a JSON answer */
#define SBD_LINE_MAX (4u << 20)         /* one NDJSON event: a base64 output chunk */
#define SBD_CREATE_TIMEOUT_MS (300u * 1000)
#define SBD_DELETE_TIMEOUT_MS (60u * 1000)
#define SBD_GRACE_MS (30u * 1000)       /* past the command's own timeout */
/* The daemon's exec takes stdin inside a JSON body of 1 MiB, as base64. */
#define SBD_STDIN_MAX (768u * 1024)

#define SBD_KEEP_TIMEOUT_MS (20u * 1000)

enum sbd_kind { SBD_CREATE, SBD_EXEC, SBD_PUT, SBD_GET, SBD_DELETE, SBD_KEEP };

struct sandbox_daemon;

struct sbd_call {
	struct sandbox_daemon *d;
	enum sbd_kind kind;
	CURL *easy;
	struct curl_slist *hdr;
	char *body;                 /* owned request body (JSON) */
	struct buf resp;            /* a JSON answer, or the NDJSON line being built */
	int over;                   /* resp passed its cap */
	struct sbd_call *next;
	/* exec */
	struct vmcall_result res;
	int got_exit;
	vmcall_cb exec_cb;
	/* copy */
	agent_copy_cb copy_cb;
	void *ctx;
	struct err e;               /* first failure */
	/* put */
	struct agent_tar_source *src;
	const uint8_t *chunk;
	size_t chunk_len, chunk_off;
	int chunk_ready, chunk_eof, reading, paused;
	struct workspace_manifest *manifest;
	/* get */
	struct agent_tar_sink *sink;
	int sink_done, xfer_done, killed_for_sink;
	struct err job_e;
	struct workspace_manifest *after;
};

struct sandbox_daemon {
	struct agent_sandbox sb;    /* first: the handle callers see */
	char sock[4096];
	char sid[64];               /* the daemon's sandbox id */
	struct net_curl *m;
	struct sbd_call *calls;
	double t0;
	int created, destroying;
	int gets;                   /* copy-outs whose sink has not finished */
	int closed;                 /* the curl multi is closed; destroyed waits for gets */
	unsigned ttl_s;             /* asked at create, renewed every third of it */
	uv_timer_t keep;            /* the renewal timer */
	int keep_open;              /* keep is initialised and not closed yet */
	int keeping;                /* a renewal is in flight */
};

static void sbd_destroy_tail(struct sandbox_daemon *d);
static void sbd_maybe_destroyed(struct sandbox_daemon *d);
static void sbd_keep_tick(uv_timer_t *t);

/* ---- calls ---- */

static void sbd_unlink(struct sbd_call *c)
{
	for (struct sbd_call **p = &c->d->calls; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

static void sbd_call_free(struct sbd_call *c)
{
	if (c->easy)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->hdr);
	free(c->body);
	buf_free(&c->resp);
	vmcall_result_free(&c->res);
	free(c);
}

static size_t sbd_on_json(char *p, size_t size, size_t n, void *ctx)
{
	struct sbd_call *c = ctx;
	if (buf_append(&c->resp, p, size * n) < 0) {
		c->over = 1;
		return 0;
	}
	return size * n;
}

static void sbd_on_done(void *opaque, CURL *easy, CURLcode res);

/* A request on the daemon's socket; body (JSON) stolen. */
static struct sbd_call *sbd_call_new(struct sandbox_daemon *d, enum sbd_kind kind,
				     const char *method, const char *path, char *body,
				     unsigned timeout_ms, struct err *e)
{
	struct sbd_call *c = calloc(1, sizeof(*c));
	char url[256];
	if (!c || !(c->easy = curl_easy_init())) {
		free(c);
		free(body);
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	c->d = d;
	c->kind = kind;
	c->body = body;
	buf_init(&c->resp, kind == SBD_EXEC ? SBD_LINE_MAX : SBD_JSON_MAX);
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(c->easy, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sbd_on_json);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	if (timeout_ms)
		curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	c->hdr = curl_slist_append(c->hdr, "Expect:");
	if (body) {
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		c->hdr = curl_slist_append(c->hdr, "Content-Type: application/json");
	}
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdr);
	return c;
}

static int sbd_call_start(struct sbd_call *c, struct err *e)
{
	int rc = net_curl_add(c->d->m, c->easy, sbd_on_done, c, e);
	if (rc < 0) {
		sbd_call_free(c);
		return rc;
	}
	c->next = c->d->calls;
	c->d->calls = c;
	return 0;
}

/* The daemon's {"error": ...} of a refused call, as one line. */
static void sbd_refusal(struct sbd_call *c, long status, const char *what, struct err *e)
{
	json_t *j = c->resp.len ? json_loadb((const char *)c->resp.data, c->resp.len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "error"));
	const char *f = json_string_value(json_object_get(j, "field"));
	/* The daemon (root) resolved the image in its own store, not ours. */
	int img = status == 400 && f && !strcmp(f, "image");
	err_set(e, status == 404 ? -ENOENT : status == 429 ? -EAGAIN : -EIO,
		"%s: the daemon answered %ld: %.300s%s", what, status, m ? m : "no reason given",
		img ? " (hint: the daemon looks images up in its own store, as its user: "
		      "`sudo ironclaw image ls` lists them; build it there with `sudo ironclaw "
		      "image build NAME`, or run with --no-daemon as root)" : "");
	json_decref(j);
}

static void sbd_transport_err(struct sbd_call *c, CURLcode res, const char *what, struct err *e)
{
	if (res == CURLE_OPERATION_TIMEDOUT)
		err_set(e, -ETIMEDOUT, "%s: the daemon did not answer in time", what);
	else
		err_set(e, -EIO, "%s: talking to the daemon on %s: %s", what, c->d->sock,
			curl_easy_strerror(res));
}

/* ---- create ---- */

static void sbd_created(struct sbd_call *c, CURLcode res, long status)
{
	struct sandbox_daemon *d = c->d;
	struct err e = { 0 };
	json_t *j = NULL;
	if (res != CURLE_OK) {
		sbd_transport_err(c, res, "making the sandbox", &e);
	} else if (status != 201) {
		sbd_refusal(c, status, "making the sandbox", &e);
	} else {
		j = json_loadb((const char *)c->resp.data, c->resp.len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		const char *made = json_string_value(json_object_get(j, "made"));
		const char *vm = json_string_value(json_object_get(j, "vm"));
		if (!id || strlen(id) >= sizeof(d->sid) || strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(id))
			err_set(&e, -EPROTO, "making the sandbox: the daemon's answer has no usable id");
		else {
			snprintf(d->sid, sizeof(d->sid), "%s", id);
			snprintf(d->sb.id, sizeof(d->sb.id), "%s", vm && strlen(vm) < 64 ? vm : id);
			d->sb.made = made && !strcmp(made, "pool") ? "pool" :
				     made && !strcmp(made, "snapshot") ? "snapshot" : "cold";
			d->created = 1;
			/* The daemon may cap the TTL (--max-ttl): renew on what it gave. */
			json_t *ttl = json_object_get(j, "ttl_s");
			if (json_is_integer(ttl) && json_integer_value(ttl) >= 1 &&
			    json_integer_value(ttl) < d->ttl_s)
				d->ttl_s = (unsigned)json_integer_value(ttl);
		}
	}
	json_decref(j);
	d->sb.ready_ms = clock_now_ms() - d->t0;
	if (d->created && !d->destroying) {
		uint64_t every = (uint64_t)d->ttl_s * 1000 / 3;
		uv_timer_start(&d->keep, sbd_keep_tick, every, every);
	}
	if (d->destroying) {
		sbd_destroy_tail(d);   /* destroyed while it was being made */
		return;
	}
	if (e.code)
		d->sb.ev->failed(&d->sb, &e, d->sb.ctx);
	else
		d->sb.ev->ready(&d->sb, d->sb.ctx);
}

/* ---- keep-alive ---- */

static void sbd_keep_tick(uv_timer_t *t)
{
	struct sandbox_daemon *d = t->data;
	struct err e = { 0 };
	char path[128];
	if (d->keeping || d->destroying || !d->created)
		return;   /* one renewal at a time: a slow daemon gets no pile-up */
	json_t *b = json_pack("{s:I}", "ttl_s", (json_int_t)d->ttl_s);
	char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	if (!body)
		return;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", d->sid);
	struct sbd_call *c = sbd_call_new(d, SBD_KEEP, "PATCH", path, body, SBD_KEEP_TIMEOUT_MS, &e);
	if (!c || sbd_call_start(c, &e) < 0) {
		log_debug("run: renewing sandbox %s: %s", d->sid, e.msg);
		return;
	}
	d->keeping = 1;
}

static void sbd_kept(struct sbd_call *c, CURLcode res, long status)
{
	struct err e = { 0 };
	c->d->keeping = 0;
	if (res != CURLE_OK)
		sbd_transport_err(c, res, "renewing the sandbox's TTL", &e);
	else if (status != 200)
		sbd_refusal(c, status, "renewing the sandbox's TTL", &e);
	if (e.code)
		log_warn("run: %s", e.msg);
}

/* ---- exec ---- */

static void sbd_exec_event(struct sbd_call *c, const char *p, size_t n)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));
	if (!type) {
		err_set(&c->e, -EPROTO, "the daemon sent an exec event that is not one");
	} else if (!strcmp(type, "stdout") || !strcmp(type, "stderr")) {
		json_t *dj = json_object_get(j, "data");
		size_t l = json_string_length(dj);
		uint8_t *out = malloc(l / 4 * 3 + 1);
		long k = out && json_is_string(dj) ? b64_decode(json_string_value(dj), l, out) : -1;
		if (k < 0)
			err_set(&c->e, -EPROTO, "the daemon sent bad base64 in an exec event");
		else if (vmcall_result_add(&c->res, type[3] == 'o' ? 1 : 2, out, (size_t)k) < 0)
			c->over = 1;   /* whole mode past its cap: stop reading (the daemon kills it) */
		free(out);
	} else if (!strcmp(type, "exit")) {
		json_t *code = json_object_get(j, "code");
		const char *m = json_string_value(json_object_get(j, "message"));
		c->got_exit = json_is_integer(code);
		c->res.exit_code = (int)json_integer_value(code);
		c->res.timed_out = json_is_true(json_object_get(j, "timed_out"));
		if (m && !c->res.timed_out && (c->res.exit_code == 126 || c->res.exit_code == 127)) {
			/* The guest could not start it (bad cwd, not executable). */
			c->res.refused = 1;
			err_set(&c->res.e, -ENOENT, "%.300s", m);
			c->res.exit_code = -1;
		}
	} else if (!strcmp(type, "error")) {
		const char *m = json_string_value(json_object_get(j, "error"));
		err_set(&c->e, -EIO, "%.400s", m ? m : "the daemon's exec failed");
	}
	json_decref(j);
}

static size_t sbd_on_exec_body(char *p, size_t size, size_t n, void *ctx)
{
	struct sbd_call *c = ctx;
	long status = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return sbd_on_json(p, size, n, ctx);   /* an error body */
	if (buf_append(&c->resp, p, size * n) < 0) {
		err_set(&c->e, -EPROTO, "the daemon sent an exec event over %u bytes", SBD_LINE_MAX);
		return 0;
	}
	for (;;) {
		uint8_t *nl = memchr(c->resp.data, '\n', c->resp.len);
		if (!nl || c->e.code || c->over)
			break;
		size_t len = (size_t)(nl - c->resp.data);
		sbd_exec_event(c, (const char *)c->resp.data, len);
		buf_consume(&c->resp, len + 1);
	}
	return c->e.code || c->over ? 0 : size * n;
}

static void sbd_exec_finish(struct sbd_call *c, CURLcode res, long status)
{
	struct vmcall_result *r = &c->res;
	if (c->over) {
		r->exit_code = -1;   /* the capture is not whole: the caller says so */
	} else if (c->e.code) {
		r->e = c->e;
	} else if (res != CURLE_OK) {
		sbd_transport_err(c, res, "the command", &r->e);
	} else if (status == 413) {
		r->refused = 1;
		err_set(&r->e, -E2BIG, "its input is over the daemon's %u KiB", SBD_STDIN_MAX / 1024);
	} else if (status != 200) {
		sbd_refusal(c, status, "the command", &r->e);
	} else if (!c->got_exit && !r->refused) {
		err_set(&r->e, -EPROTO, "the daemon's exec stream ended without an exit event");
	}
	c->exec_cb(c->ctx, r);
}

static int sbd_exec(struct agent_sandbox *sb, const struct vmcall_spec *spec, vmcall_cb cb,
		    void *ctx, struct err *e)
{
	struct sandbox_daemon *d = (struct sandbox_daemon *)sb;
	char path[128];
	if (!d->created || d->destroying)
		return err_set(e, -ENOTCONN, "the sandbox is not ready");
	if (spec->stdin_data && spec->stdin_len > SBD_STDIN_MAX) {
		/* Refused like a command that cannot start: the model's to fix. */
		struct vmcall_result r;
		if (vmcall_result_init(&r, spec) < 0)
			return err_set(e, -ENOMEM, "out of memory");
		r.refused = 1;
		err_set(&r.e, -E2BIG, "its input (%zu bytes) is over the daemon's %u KiB", spec->stdin_len,
			SBD_STDIN_MAX / 1024);
		cb(ctx, &r);
		vmcall_result_free(&r);
		return 0;
	}
	json_t *b = json_object(), *av = json_array();
	for (size_t i = 0; spec->argv[i]; i++)
		json_array_append_new(av, json_string(spec->argv[i]));
	json_object_set_new(b, "argv", av);
	if (spec->cwd)
		json_object_set_new(b, "cwd", json_string(spec->cwd));
	unsigned timeout_s = (spec->timeout_ms + 999) / 1000;
	if (timeout_s)
		json_object_set_new(b, "timeout_s", json_integer(timeout_s));
	if (spec->stdin_data) {
		char *enc = malloc(b64_encoded_len(spec->stdin_len) + 1);
		if (enc) {
			b64_encode(spec->stdin_data, spec->stdin_len, enc);
			json_object_set_new(b, "stdin", json_string(enc));
		}
		free(enc);
	}
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", d->sid);
	struct sbd_call *c = sbd_call_new(d, SBD_EXEC, "POST", path, body,
					  timeout_s ? timeout_s * 1000 + SBD_GRACE_MS : 0, e);
	if (!c)
		return -ENOMEM;
	if (vmcall_result_init(&c->res, spec) < 0) {
		sbd_call_free(c);
		return err_set(e, -ENOMEM, "out of memory");
	}
	c->exec_cb = cb;
	c->ctx = ctx;
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sbd_on_exec_body);
	return sbd_call_start(c, e);
}

/* ---- copy-in: a chunked PUT fed from the tar source ---- */

static void sbd_put_on_chunk(void *ctx, const uint8_t *p, size_t n, const struct err *e)
{
	struct sbd_call *c = ctx;
	c->reading = 0;
	if (e) {
		if (!c->e.code)
			c->e = *e;
	} else {
		c->chunk = p;
		c->chunk_len = n;
		c->chunk_off = 0;
		c->chunk_ready = 1;
		c->chunk_eof = n == 0;
	}
	if (c->paused) {
		c->paused = 0;
		curl_easy_pause(c->easy, CURLPAUSE_CONT);
	}
}

/* curl's read callback, on the loop: hands over the chunk at hand, or pauses
 * the upload until the pool has read the next one. */
static size_t sbd_put_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct sbd_call *c = ctx;
	if (c->e.code)
		return CURL_READFUNC_ABORT;   /* the tree broke a cap, or a read failed */
	if (!c->chunk_ready) {
		struct err e = { 0 };
		if (!c->reading) {
			c->reading = 1;
			if (agent_tar_source_read(c->src, sbd_put_on_chunk, c, &e) < 0) {
				c->reading = 0;
				c->e = e;
				return CURL_READFUNC_ABORT;
			}
		}
		c->paused = 1;
		return CURL_READFUNC_PAUSE;
	}
	if (c->chunk_eof)
		return 0;
	size_t take = c->chunk_len - c->chunk_off < size * n ? c->chunk_len - c->chunk_off : size * n;
	memcpy(buf, c->chunk + c->chunk_off, take);
	c->chunk_off += take;
	if (c->chunk_off == c->chunk_len)
		c->chunk_ready = 0;   /* the next call reads on */
	return take;
}

static void sbd_put_finish(struct sbd_call *c, CURLcode res, long status)
{
	struct err e = { 0 };
	if (c->e.code)
		e = c->e;
	else if (res != CURLE_OK)
		sbd_transport_err(c, res, "copying the workspace in", &e);
	else if (status != 204)
		sbd_refusal(c, status, "copying the workspace in", &e);
	if (!e.code)
		agent_tar_source_take_manifest(c->src, c->manifest);
	agent_tar_source_free(c->src);
	c->src = NULL;
	c->copy_cb(c->ctx, e.code ? &e : NULL);
}

static int sbd_copy_in(struct agent_sandbox *sb, const char *root,
		       const struct workspace_pack_options *po, struct workspace_manifest *manifest,
		       agent_copy_cb cb, void *ctx, struct err *e)
{
	struct sandbox_daemon *d = (struct sandbox_daemon *)sb;
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/workspace", d->sid);
	struct sbd_call *c = sbd_call_new(d, SBD_PUT, "PUT", path, NULL, AGENT_COPY_TIMEOUT_MS, e);
	if (!c)
		return -ENOMEM;
	int rc = agent_tar_source_new(sb->loop, root, po, &c->src, e);
	if (rc < 0) {
		sbd_call_free(c);
		return rc;
	}
	c->manifest = manifest;
	c->copy_cb = cb;
	c->ctx = ctx;
	c->hdr = curl_slist_append(c->hdr, "Content-Type: application/x-tar");
	c->hdr = curl_slist_append(c->hdr, "Transfer-Encoding: chunked");
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdr);
	curl_easy_setopt(c->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, NULL);   /* UPLOAD is a PUT */
	curl_easy_setopt(c->easy, CURLOPT_READFUNCTION, sbd_put_read);
	curl_easy_setopt(c->easy, CURLOPT_READDATA, c);
	rc = sbd_call_start(c, e);
	return rc;
}

/* ---- copy-out: a GET into a sink ---- */

static size_t sbd_get_body(char *p, size_t size, size_t n, void *ctx)
{
	struct sbd_call *c = ctx;
	long status = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return sbd_on_json(p, size, n, ctx);
	if (c->sink_done)
		return c->job_e.code ? 0 : size * n;   /* refused: stop; accepted: drop a trailer */
	int rc = agent_tar_sink_feed(c->sink, p, size * n);
	if (rc < 0) {
		err_set(&c->e, rc, rc == -EFBIG ? "copying the workspace out: the guest's tar stream "
			"passed %llu MiB" : "copying the workspace out: out of memory",
			(unsigned long long)(AGENT_COPY_OUT_MAX >> 20));
		return 0;
	}
	return size * n;
}

static void sbd_get_try_finish(struct sbd_call *c)
{
	if (!c->xfer_done || !c->sink_done)
		return;
	const struct err *e = agent_copy_out_verdict(&c->e, &c->job_e, c->killed_for_sink, c->after);
	agent_tar_sink_free(c->sink);
	c->sink = NULL;
	agent_copy_cb cb = c->copy_cb;
	void *ctx = c->ctx;
	struct sandbox_daemon *d = c->d;
	struct err copy = e ? *e : (struct err){ 0 };
	sbd_call_free(c);
	cb(ctx, e ? &copy : NULL);
	d->gets--;
	sbd_maybe_destroyed(d);
}

static void sbd_get_on_sink(void *ctx, const struct err *e)
{
	struct sbd_call *c = ctx;
	c->sink_done = 1;
	if (e) {
		c->job_e = *e;
		if (!c->xfer_done) {
			/* The unpacker refused the stream: the rest is not wanted. */
			c->killed_for_sink = 1;
			net_curl_remove(c->d->m, c->easy);
			sbd_unlink(c);
			c->xfer_done = 1;
		}
	}
	sbd_get_try_finish(c);
}

static void sbd_get_finish(struct sbd_call *c, CURLcode res, long status)
{
	if (!c->e.code && res != CURLE_OK)
		sbd_transport_err(c, res, "copying the workspace out (the stream was cut; the "
				  "daemon's log says why)", &c->e);
	else if (!c->e.code && status != 200)
		sbd_refusal(c, status, "copying the workspace out", &c->e);
	c->xfer_done = 1;
	agent_tar_sink_end(c->sink, c->e.code != 0);
	sbd_get_try_finish(c);
}

static int sbd_copy_out(struct agent_sandbox *sb, const char *staging,
			const struct workspace_manifest *before, struct workspace_manifest *after,
			agent_copy_cb cb, void *ctx, struct err *e)
{
	struct sandbox_daemon *d = (struct sandbox_daemon *)sb;
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/workspace", d->sid);
	struct sbd_call *c = sbd_call_new(d, SBD_GET, "GET", path, NULL, AGENT_COPY_TIMEOUT_MS, e);
	if (!c)
		return -ENOMEM;
	c->after = after;
	c->copy_cb = cb;
	c->ctx = ctx;
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sbd_get_body);
	int rc = agent_tar_sink_new(sb->loop, staging, before, after, sbd_get_on_sink, c, &c->sink, e);
	if (rc < 0) {
		sbd_call_free(c);
		return rc;
	}
	d->gets++;
	if ((rc = net_curl_add(d->m, c->easy, sbd_on_done, c, e)) < 0) {
		/* The sink's job ends on a cut stream; its cb frees c and reports. */
		c->xfer_done = 1;
		c->e = *e;
		agent_tar_sink_end(c->sink, 1);
		return 0;
	}
	c->next = d->calls;
	d->calls = c;
	return 0;
}

/* ---- completions and teardown ---- */

static void sbd_keep_closed(uv_handle_t *h)
{
	struct sandbox_daemon *d = h->data;
	d->keep_open = 0;
	sbd_maybe_destroyed(d);
}

/* destroyed only once nothing can call back: a copy-out's unpacking job
 * may outlive its transfer, and the renewal timer must be closed. */
static void sbd_maybe_destroyed(struct sandbox_daemon *d)
{
	if (!d->closed || d->gets)
		return;
	if (d->keep_open) {
		if (!uv_is_closing((uv_handle_t *)&d->keep))
			uv_close((uv_handle_t *)&d->keep, sbd_keep_closed);
		return;
	}
	d->sb.ev->destroyed(&d->sb, d->sb.ctx);
	free(d);
}

static void sbd_closed(void *opaque)
{
	struct sandbox_daemon *d = opaque;
	d->closed = 1;
	sbd_maybe_destroyed(d);
}

static void sbd_deleted(struct sandbox_daemon *d)
{
	net_curl_close(d->m, sbd_closed, d);
}

static void sbd_on_done(void *opaque, CURL *easy, CURLcode res)
{
	struct sbd_call *c = opaque;
	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	sbd_unlink(c);
	switch (c->kind) {
	case SBD_CREATE:
		sbd_created(c, res, status);
		break;
	case SBD_EXEC:
		sbd_exec_finish(c, res, status);
		break;
	case SBD_PUT:
		sbd_put_finish(c, res, status);
		break;
	case SBD_GET:
		sbd_get_finish(c, res, status);
		return;   /* freed when the sink is done too */
	case SBD_DELETE:
		sbd_deleted(c->d);
		break;
	case SBD_KEEP:
		sbd_kept(c, res, status);
		break;
	}
	sbd_call_free(c);
}

/* A call cut short by destroy: its caller hears an error, as with a VM that
 * goes away under an exec. */
static void sbd_abort(struct sbd_call *c)
{
	struct err e = { 0 };
	err_set(&e, -ECANCELED, "the sandbox was destroyed");
	net_curl_remove(c->d->m, c->easy);
	switch (c->kind) {
	case SBD_EXEC:
		c->res.e = e;
		c->exec_cb(c->ctx, &c->res);
		break;
	case SBD_PUT:
		c->e = e;
		sbd_put_finish(c, CURLE_OK, 0);
		break;
	case SBD_GET:
		if (!c->e.code)
			c->e = e;
		c->xfer_done = 1;
		agent_tar_sink_end(c->sink, 1);
		sbd_get_try_finish(c);
		return;
	default:
		break;
	}
	sbd_call_free(c);
}

static void sbd_destroy(struct agent_sandbox *sb)
{
	struct sandbox_daemon *d = (struct sandbox_daemon *)sb;
	if (d->destroying)
		return;
	d->destroying = 1;
	uv_timer_stop(&d->keep);
	struct sbd_call *create = NULL;
	while (d->calls) {
		struct sbd_call *c = d->calls;
		d->calls = c->next;
		if (c->kind == SBD_CREATE) {
			/* Let the create finish: its sandbox is deleted then. */
			create = c;
			continue;
		}
		sbd_abort(c);
	}
	if (create) {
		create->next = NULL;
		d->calls = create;
		return;
	}
	sbd_destroy_tail(d);
}

static void sbd_destroy_tail(struct sandbox_daemon *d)
{
	struct err e = { 0 };
	char path[128];
	if (!d->created) {
		sbd_deleted(d);   /* the daemon made nothing */
		return;
	}
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", d->sid);
	struct sbd_call *c = sbd_call_new(d, SBD_DELETE, "DELETE", path, NULL, SBD_DELETE_TIMEOUT_MS, &e);
	if (!c || sbd_call_start(c, &e) < 0)
		sbd_deleted(d);
}

static const struct agent_sandbox_ops sbd_ops = {
	.exec = sbd_exec,
	.copy_in = sbd_copy_in,
	.copy_out = sbd_copy_out,
	.destroy = sbd_destroy,
};

int agent_sandbox_daemon_new(uv_loop_t *loop, const struct agent_sandbox_daemon_spec *s,
			     const struct agent_sandbox_events *ev, void *ctx,
			     struct agent_sandbox **out, struct err *e)
{
	struct sandbox_daemon *d = calloc(1, sizeof(*d));
	if (!d)
		return err_set(e, -ENOMEM, "out of memory");
	d->sb.ops = &sbd_ops;
	d->sb.loop = loop;
	d->sb.made = "cold";
	d->sb.via = "via daemon";
	d->sb.ev = ev;
	d->sb.ctx = ctx;
	d->t0 = clock_now_ms();
	snprintf(d->sock, sizeof(d->sock), "%s", s->socket);
	int rc = net_curl_new(loop, NULL, NULL, &d->m, e);
	if (rc < 0) {
		free(d);
		return rc;
	}
	json_t *b = json_object();
	if (s->cpus)
		json_object_set_new(b, "cpus", json_integer(s->cpus));
	if (s->memory_mib)
		json_object_set_new(b, "memory_mib", json_integer(s->memory_mib));
	if (s->net)
		json_object_set_new(b, "net", json_string(s->net));
	if (s->image)
		json_object_set_new(b, "image", json_string(s->image));
	d->ttl_s = s->ttl_s ? s->ttl_s : AGENT_SANDBOX_DAEMON_TTL_S;
	json_object_set_new(b, "ttl_s", json_integer(d->ttl_s));
	json_object_set_new(b, "labels", json_pack("{s:s}", "ironclaw", "run"));
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	struct sbd_call *c = body ? sbd_call_new(d, SBD_CREATE, "POST", "/v1/sandboxes", body,
						 SBD_CREATE_TIMEOUT_MS, e) : NULL;
	if (!c || (rc = sbd_call_start(c, e)) < 0) {
		if (!body)
			err_set(e, -ENOMEM, "out of memory");
		net_curl_close(d->m, NULL, NULL);
		free(d);
		return rc < 0 ? rc : -ENOMEM;
	}
	uv_timer_init(loop, &d->keep);
	d->keep.data = d;
	d->keep_open = 1;
	*out = &d->sb;
	return 0;
}
