/* Helpers for the daemon's tests (test_serve*.c): start and stop a real
 * `ironclaw serve` on a private socket, talk HTTP to it with libcurl, and
 * check every answer against docs/api.yaml.
 *
 * The check is a small OpenAPI 3.1 / JSON Schema validator over the YAML,
 * parsed with Debian's libyaml into jansson values: $ref, type, required,
 * properties, additionalProperties, items, enum, minimum/maximum,
 * minItems/maxItems, pattern and oneOf — the keywords docs/api.yaml uses. A
 * response whose status or content type the document does not list for its
 * operation fails too. */
#ifndef IRONCLAW_TESTS_SERVE_UTIL_H
#define IRONCLAW_TESTS_SERVE_UTIL_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <jansson.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

#include "core/buf.h"
#include "lib/harness.h"

/* ---- YAML -> jansson ---- */

static json_t *oapi_scalar(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		char *end;
		if (!strcmp(v, "true"))
			return json_true();
		if (!strcmp(v, "false"))
			return json_false();
		if (!strcmp(v, "null") || !strcmp(v, "~"))
			return json_null();
		long long i = strtoll(v, &end, 10);
		if (n && !*end)
			return json_integer(i);
		double d = strtod(v, &end);
		if (n && !*end)
			return json_real(d);
	}
	return json_stringn(v, n);
}

static json_t *oapi_node(yaml_parser_t *p, yaml_event_t *first)
{
	yaml_event_t ev;
	json_t *out = NULL;
	if (first->type == YAML_SCALAR_EVENT)
		return oapi_scalar(first);
	if (first->type == YAML_SEQUENCE_START_EVENT) {
		out = json_array();
		for (;;) {
			cr_assert(yaml_parser_parse(p, &ev), "docs/api.yaml: YAML error");
			if (ev.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&ev);
				return out;
			}
			json_array_append_new(out, oapi_node(p, &ev));
			yaml_event_delete(&ev);
		}
	}
	if (first->type == YAML_MAPPING_START_EVENT) {
		out = json_object();
		for (;;) {
			cr_assert(yaml_parser_parse(p, &ev), "docs/api.yaml: YAML error");
			if (ev.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&ev);
				return out;
			}
			cr_assert_eq(ev.type, YAML_SCALAR_EVENT, "docs/api.yaml: non-scalar key");
			char *key = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
			yaml_event_delete(&ev);
			cr_assert(yaml_parser_parse(p, &ev), "docs/api.yaml: YAML error");
			json_object_set_new(out, key, oapi_node(p, &ev));
			yaml_event_delete(&ev);
			free(key);
		}
	}
	cr_assert_fail("docs/api.yaml: unexpected YAML event %d (anchors are not used)", first->type);
	return NULL;
}

static json_t *oapi_load(void)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/docs/api.yaml", harness_root());
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	yaml_parser_t p;
	yaml_event_t ev;
	json_t *doc = NULL;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	for (;;) {
		cr_assert(yaml_parser_parse(&p, &ev), "docs/api.yaml: %s at line %zu", p.problem,
			  p.problem_mark.line + 1);
		yaml_event_type_t t = ev.type;
		if (t == YAML_MAPPING_START_EVENT && !doc)
			doc = oapi_node(&p, &ev);
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
	}
	yaml_parser_delete(&p);
	fclose(f);
	cr_assert(doc);
	return doc;
}

/* ---- JSON Schema (the subset docs/api.yaml uses) ---- */

static json_t *oapi_ref(json_t *doc, json_t *node)
{
	const char *ref;
	while ((ref = json_string_value(json_object_get(node, "$ref")))) {
		cr_assert(!strncmp(ref, "#/", 2), "only local $ref: %s", ref);
		char *copy = strdup(ref + 2), *save = NULL;
		node = doc;
		for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save))
			node = json_object_get(node, t);
		free(copy);
		cr_assert(node, "unresolved $ref %s", ref);
	}
	return node;
}

/* 0 when v fits schema s; else why in `why`. */
static int oapi_check(json_t *doc, json_t *s, json_t *v, const char *at, char *why, size_t n)
{
	s = oapi_ref(doc, s);
	json_t *one = json_object_get(s, "oneOf");
	if (one) {
		size_t i, fits = 0;
		json_t *alt;
		char sub[256];
		json_array_foreach(one, i, alt)
			fits += oapi_check(doc, alt, v, at, sub, sizeof(sub)) == 0;
		if (fits != 1) {
			snprintf(why, n, "%s: matches %zu of the oneOf alternatives", at, fits);
			return -1;
		}
		return 0;
	}
	const char *type = json_string_value(json_object_get(s, "type"));
	if (type) {
		int ok = (!strcmp(type, "object") && json_is_object(v)) ||
			 (!strcmp(type, "array") && json_is_array(v)) ||
			 (!strcmp(type, "string") && json_is_string(v)) ||
			 (!strcmp(type, "integer") && json_is_integer(v)) ||
			 (!strcmp(type, "number") && json_is_number(v)) ||
			 (!strcmp(type, "boolean") && json_is_boolean(v));
		if (!ok) {
			snprintf(why, n, "%s: not of type %s", at, type);
			return -1;
		}
	}
	json_t *en = json_object_get(s, "enum");
	if (en) {
		size_t i, hit = 0;
		json_t *x;
		json_array_foreach(en, i, x)
			hit |= json_equal(x, v);
		if (!hit) {
			snprintf(why, n, "%s: not one of the enum values", at);
			return -1;
		}
	}
	json_t *mn = json_object_get(s, "minimum"), *mx = json_object_get(s, "maximum");
	if ((mn && json_number_value(v) < json_number_value(mn)) ||
	    (mx && json_number_value(v) > json_number_value(mx))) {
		snprintf(why, n, "%s: out of range", at);
		return -1;
	}
	const char *pat = json_string_value(json_object_get(s, "pattern"));
	if (pat && json_is_string(v)) {
		regex_t re;
		cr_assert_eq(regcomp(&re, pat, REG_EXTENDED | REG_NOSUB), 0, "bad pattern %s", pat);
		int m = regexec(&re, json_string_value(v), 0, NULL, 0);
		regfree(&re);
		if (m) {
			snprintf(why, n, "%s: '%s' does not match %s", at, json_string_value(v), pat);
			return -1;
		}
	}
	if (json_is_array(v)) {
		json_t *mi = json_object_get(s, "minItems"), *ma = json_object_get(s, "maxItems");
		if ((mi && json_array_size(v) < (size_t)json_integer_value(mi)) ||
		    (ma && json_array_size(v) > (size_t)json_integer_value(ma))) {
			snprintf(why, n, "%s: wrong number of items", at);
			return -1;
		}
		json_t *items = json_object_get(s, "items"), *x;
		size_t i;
		char sub[512];
		if (items)
			json_array_foreach(v, i, x) {
				snprintf(sub, sizeof(sub), "%s[%zu]", at, i);
				if (oapi_check(doc, items, x, sub, why, n))
					return -1;
			}
	}
	if (json_is_object(v)) {
		json_t *req = json_object_get(s, "required"), *props = json_object_get(s, "properties");
		json_t *addl = json_object_get(s, "additionalProperties"), *x;
		size_t i;
		const char *k;
		char sub[512];
		json_array_foreach(req, i, x)
			if (!json_object_get(v, json_string_value(x))) {
				snprintf(why, n, "%s: required '%s' missing", at, json_string_value(x));
				return -1;
			}
		json_object_foreach(v, k, x) {
			json_t *ps = json_object_get(props, k);
			snprintf(sub, sizeof(sub), "%s.%s", at, k);
			if (ps) {
				if (oapi_check(doc, ps, x, sub, why, n))
					return -1;
			} else if (json_is_false(addl)) {
				snprintf(why, n, "%.400s: not allowed (additionalProperties: false)", sub);
				return -1;
			} else if (json_is_object(addl) && oapi_check(doc, addl, x, sub, why, n)) {
				return -1;
			}
		}
	}
	return 0;
}

/* The response schema of (path template, method, status, content type), or
 * fails the test when the document does not list that answer. */
static json_t *oapi_response_schema(json_t *doc, const char *tpl, const char *method,
				    long status, const char *ctype)
{
	char st[8], m[16];
	size_t i;
	snprintf(st, sizeof(st), "%ld", status);
	for (i = 0; method[i] && i < sizeof(m) - 1; i++)
		m[i] = (char)(method[i] | 0x20);
	m[i] = 0;
	json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"), tpl), m);
	cr_assert(op, "docs/api.yaml has no %s %s", method, tpl);
	json_t *resp = json_object_get(json_object_get(op, "responses"), st);
	cr_assert(resp, "docs/api.yaml lists no %s for %s %s", st, method, tpl);
	resp = oapi_ref(doc, resp);
	json_t *content = json_object_get(resp, "content");
	if (!content)
		return NULL; /* no body documented (204) */
	json_t *c = json_object_get(content, ctype);
	cr_assert(c, "docs/api.yaml lists no %s body for %s %s %s", ctype, method, tpl, st);
	return json_object_get(c, "schema");
}

/* ---- the daemon ---- */

struct serve_d {
	pid_t pid;
	int stop_w;              /* closing it stops the daemon */
	char dir[64];
	char sock[128];
	char log[128];
	json_t *doc;
};

static void serve_d_start_at(struct serve_d *d, char *const *extra)
{
	char *argv[32];
	int n = 0, p[2];
	if (!d->dir[0]) {
		snprintf(d->dir, sizeof(d->dir), "/tmp/ic-serve-XXXXXX");
		cr_assert(mkdtemp(d->dir));
		chmod(d->dir, 0755);
		snprintf(d->sock, sizeof(d->sock), "%s/api.sock", d->dir);
	}
	snprintf(d->log, sizeof(d->log), "%s/serve.log", d->dir);
	argv[n++] = (char *)harness_ironclaw();
	argv[n++] = "serve";
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	for (size_t i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char fdv[16];
	int rfd = fcntl(p[0], F_DUPFD, 100); /* without CLOEXEC: the daemon keeps it */
	snprintf(fdv, sizeof(fdv), "%d", rfd);
	setenv("IRONCLAW_SERVE_STOP_FD", fdv, 1);
	d->pid = harness_spawn(argv, d->log, d->log);
	unsetenv("IRONCLAW_SERVE_STOP_FD");
	close(rfd);
	close(p[0]);
	d->stop_w = p[1];
	if (!d->doc)
		d->doc = oapi_load();
	/* The socket exists before it listens: retry the health check briefly.
	 * (No event tells another process that a socket started listening.) */
	for (int i = 0; i < 3000; i++) {
		int st;
		cr_assert_eq(waitpid(d->pid, &st, WNOHANG), 0, "ironclaw serve exited; see %s",
			     d->log);
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "curl -sf --unix-socket %s http://localhost/v1/health "
			 ">/dev/null 2>&1", d->sock);
		if (system(cmd) == 0)
			return;
		usleep(20000);
	}
	cr_assert_fail("ironclaw serve did not answer on %s (see %s)", d->sock, d->log);
}

static void serve_d_start(struct serve_d *d, char *const *extra)
{
	memset(d, 0, sizeof(*d));
	serve_d_start_at(d, extra);
}

/* Clean stop: closes the stop pipe and waits; the daemon must exit 0. */
static void serve_d_stop(struct serve_d *d)
{
	close(d->stop_w);
	int st = harness_wait(d->pid, 120000, NULL);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "ironclaw serve did not stop cleanly (status %d); see %s", st, d->log);
	struct stat sb;
	cr_assert(stat(d->sock, &sb) < 0, "the socket was left behind");
	unlink(d->log); /* kept when a test fails, for its message */
	rmdir(d->dir);
}

struct http_ans {
	long status;
	char ctype[128];
	char *body;           /* owned, NUL-terminated */
	size_t len;
	json_t *json;         /* parsed when the body is JSON */
};

static size_t http_on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct http_ans *a = ctx;
	a->body = realloc(a->body, a->len + sz * n + 1);
	memcpy(a->body + a->len, p, sz * n);
	a->len += sz * n;
	a->body[a->len] = 0;
	return sz * n;
}

/* One request; the answer is checked against docs/api.yaml under the path
 * template tpl (NULL: not a documented path, no check). */
static void http_do(struct serve_d *d, const char *method, const char *path, const char *tpl,
		    const void *body, long body_len, const char *ctype, struct http_ans *a)
{
	char url[4200];
	struct curl_slist *h = NULL;
	memset(a, 0, sizeof(*a));
	a->body = calloc(1, 1);
	CURL *c = curl_easy_init();
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body_len >= 0 ? body_len : (long)strlen(body)));
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
		h = curl_slist_append(h, ct);
		h = curl_slist_append(h, "Expect:");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	CURLcode rc = curl_easy_perform(c);
	cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(a->ctype, sizeof(a->ctype), "%s", ct ? ct : "");
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	char *semi = strchr(a->ctype, ';');
	if (semi)
		*semi = 0;
	if (!strcmp(a->ctype, "application/json"))
		a->json = json_loadb(a->body, a->len, 0, NULL);
	if (!tpl)
		return;
	json_t *schema = oapi_response_schema(d->doc, tpl, method, a->status,
					      a->status == 204 ? "" : a->ctype);
	if (a->status == 204) {
		cr_assert_eq(a->len, 0, "204 with a body");
		return;
	}
	if (!strcmp(a->ctype, "application/json")) {
		char why[512] = "";
		cr_assert(a->json, "%s %s: the body is not JSON: %.200s", method, path, a->body);
		cr_assert_eq(oapi_check(d->doc, schema, a->json, "$", why, sizeof(why)), 0,
			     "%s %s -> %ld does not fit docs/api.yaml: %s\n%.300s", method, path,
			     a->status, why, a->body);
	} else if (!strcmp(a->ctype, "application/x-ndjson")) {
		char *save = NULL, *copy = strdup(a->body);
		for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char why[512] = "";
			json_t *ev = json_loads(l, 0, NULL);
			cr_assert(ev, "an NDJSON line is not JSON: %.200s", l);
			cr_assert_eq(oapi_check(d->doc, schema, ev, "$", why, sizeof(why)), 0,
				     "exec event does not fit docs/api.yaml: %s: %.200s", why, l);
			json_decref(ev);
		}
		free(copy);
	}
}

static void http_free(struct http_ans *a)
{
	free(a->body);
	json_decref(a->json);
	memset(a, 0, sizeof(*a));
}

/* The ironclaw binary that uid:gid can execute: the checkout's, or a copy in
 * dir (a checkout under a 0700 directory, such as a CI clone in a mktemp
 * directory, cannot be walked by another uid). Returns out; *copied says
 * which. A copy's coverage counters belong under dir/gcov (GCOV_PREFIX). */
static inline const char *sb_binary_for(uid_t uid, gid_t gid, const char *dir, char *out, size_t n,
					int *copied)
{
	const char *bin = harness_ironclaw();
	pid_t k = fork();
	cr_assert_geq(k, 0);
	if (k == 0) {
		gid_t groups[1] = { gid };
		if (setgroups(1, groups) || setgid(gid) || setuid(uid))
			_exit(2);
		_exit(access(bin, X_OK) == 0 ? 0 : 1);
	}
	int st = 0;
	waitpid(k, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) < 2, "the probe could not become uid %u", uid);
	*copied = WEXITSTATUS(st) != 0;
	if (!*copied) {
		snprintf(out, n, "%s", bin);
		return out;
	}
	snprintf(out, n, "%s/ironclaw", dir);
	char cmd[3 * 4200];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s' && mkdir -p '%s/gcov' && "
		 "chmod 01777 '%s/gcov'", bin, out, out, dir, dir);
	cr_assert_eq(system(cmd), 0);
	return out;
}

/* Creates a sandbox (201 required); returns its id (owned). */
static char *sb_create(struct serve_d *d, const char *body, char *made_out, size_t n)
{
	struct http_ans a;
	http_do(d, "POST", "/v1/sandboxes", "/v1/sandboxes", body, -1, NULL, &a);
	cr_assert_eq(a.status, 201, "create: %ld %s", a.status, a.body);
	char *id = strdup(json_string_value(json_object_get(a.json, "id")));
	if (made_out)
		snprintf(made_out, n, "%s", json_string_value(json_object_get(a.json, "made")));
	http_free(&a);
	return id;
}

/* Runs argv_json in sandbox id; returns the concatenated stdout (owned) and the
 * exit code. */
static char *sb_exec(struct serve_d *d, const char *id, const char *argv_json, int *code,
		     size_t *out_len)
{
	char path[128], body[8192];
	struct http_ans a;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	snprintf(body, sizeof(body), "{\"argv\":%s}", argv_json);
	http_do(d, "POST", path, "/v1/sandboxes/{id}/exec", body, -1, NULL, &a);
	cr_assert_eq(a.status, 200, "exec: %ld %s", a.status, a.body);
	char *out = calloc(1, 1);
	size_t len = 0;
	*code = -1000;
	char *save = NULL;
	for (char *l = strtok_r(a.body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_t *ev = json_loads(l, 0, NULL);
		const char *t = json_string_value(json_object_get(ev, "type"));
		if (!strcmp(t, "stdout")) {
			const char *b64 = json_string_value(json_object_get(ev, "data"));
			size_t bl = strlen(b64);
			out = realloc(out, len + bl + 1);
			/* An independent decoder, not the daemon's own codec. */
			static const char tab[] =
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
			unsigned acc = 0;
			int bits = 0;
			for (size_t i = 0; i < bl && b64[i] != '='; i++) {
				const char *q = strchr(tab, b64[i]);
				cr_assert(q && *q, "bad base64 from the daemon");
				acc = (acc << 6) | (unsigned)(q - tab);
				bits += 6;
				if (bits >= 8) {
					bits -= 8;
					out[len++] = (char)((acc >> bits) & 0xff);
				}
			}
			out[len] = 0;
		} else if (!strcmp(t, "exit")) {
			*code = (int)json_integer_value(json_object_get(ev, "code"));
		}
		json_decref(ev);
	}
	http_free(&a);
	if (out_len)
		*out_len = len;
	return out;
}

static void sb_delete(struct serve_d *d, const char *id)
{
	char path[128];
	struct http_ans a;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	http_do(d, "DELETE", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 204, "delete %s: %ld %s", id, a.status, a.body);
	http_free(&a);
}

static json_t *sb_get_json(struct serve_d *d, const char *id)
{
	char path[128];
	struct http_ans a;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	http_do(d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200, "%s", a.body);
	json_t *j = json_incref(a.json);
	http_free(&a);
	return j;
}

/* VMMs descended from pid (the harness counts up to its array's size). */
static int vmm_count(pid_t pid)
{
	pid_t pids[256];
	return harness_find_processes("qemu-system-x86_64", pid, pids, 256);
}

/* Whether /run/ironclaw/<vm> still exists. */
static int vm_dir_exists(const char *vm)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "/run/ironclaw/%s", vm);
	return stat(p, &st) == 0;
}

/* A metric's value from GET /metrics (the first line that starts with name). */
static double metric(struct serve_d *d, const char *name)
{
	struct http_ans a;
	http_do(d, "GET", "/metrics", "/metrics", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200);
	size_t nl = strlen(name);
	double v = -1;
	for (char *l = a.body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, name, nl) && l[nl] == ' ') {
			v = strtod(l + nl + 1, NULL);
			break;
		}
	http_free(&a);
	return v;
}

/* A 204 to DELETE means the sandbox is unreachable and its VMM killed; the
 * teardown finishes behind it. A test that checks that nothing is left
 * waits for the daemon's own account of it: no sandbox still deleting. */
static void sb_wait_torn_down(struct serve_d *d)
{
	double n = -1;
	for (int i = 0; i < 1200 && (n = metric(d, "ironclaw_sandboxes_deleting")) != 0; i++)
		usleep(25000);
	cr_assert_eq(n, 0, "deleted sandboxes still tearing down after 30 s (see %s)", d->log);
}

#endif
