/* The in-VM tools: see tools.h.
 *
 * Each tool is one or two commands in the VM (busybox sh), with the model's
 * strings passed as positional arguments, never spliced into the script, so no
 * argument can change what the script does. The scripts share one prologue that
 * refuses a path resolving outside /workspace; its exit codes 90-94 mean "tool
 * error, message on stderr". */
#include "agent/tools.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sandbox.h"

#define TOOL_ERR_FIRST 90
#define TOOL_ERR_LAST 94

/* $1 is the path relative to /workspace (checked lexically on the host). */
#define CONFINE                                                                              \
	"p=\"/workspace/$1\"; a=\"$p\"; "                                                    \
	"while [ ! -e \"$a\" ] && [ ! -L \"$a\" ]; do a=\"${a%/*}\"; [ -n \"$a\" ] || a=/; done; " \
	"r=\"$(realpath \"$a\" 2>/dev/null)\" || { echo \"$1: cannot be resolved (a broken symlink?)\" >&2; exit 90; }; " \
	"case \"$r\" in /workspace|/workspace/*) ;; *) echo \"$1 resolves outside /workspace\" >&2; exit 91;; esac; "

static const char script_read[] = CONFINE
	"if [ -d \"$p\" ]; then echo \"$1 is a directory (use list_dir)\" >&2; exit 92; fi; "
	"[ -f \"$p\" ] || { echo \"$1: no such file\" >&2; exit 93; }; "
	"exec cat -- \"$p\"";
static const char script_write[] = CONFINE
	"if [ -d \"$p\" ]; then echo \"$1 is a directory\" >&2; exit 92; fi; "
	"mkdir -p -- \"${p%/*}\" && exec cat > \"$p\"";
static const char script_list[] = CONFINE
	"[ -d \"$p\" ] || { echo \"$1: not a directory\" >&2; exit 94; }; "
	"exec ls -lA -- \"$p\"";

enum tool_kind { T_RUN, T_READ, T_WRITE, T_EDIT, T_LIST };

struct tool_call {
	struct agent_sandbox *sb;
	enum tool_kind kind;
	agent_tool_cb cb;
	void *ctx;
	char *path;
	char *content;           /* write: the bytes; edit: the new file */
	size_t content_len;
	char *old_s, *new_s;
	int replace_all;
	long offset, limit;
	unsigned timeout_s;
	int edit_writing;        /* edit_file's second step */
	size_t replaced;
};

static void tool_finish(struct tool_call *t, int is_error, char *text, int fatal, int code)
{
	struct agent_tool_result r = { .is_error = is_error, .text = text, .fatal = fatal, .exit_code = code };
	if (!r.text)
		r.text = strdup(is_error ? "tool failed (out of memory)" : "");
	t->cb(t->ctx, &r);
	free(r.text);
	free(t->path);
	free(t->content);
	free(t->old_s);
	free(t->new_s);
	free(t);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

int agent_path_check(const char *path, struct err *e)
{
	if (!path[0])
		return err_set(e, -EINVAL, "path is empty (use \".\" for the workspace itself)");
	if (path[0] == '/')
		return err_set(e, -EINVAL, "path '%.200s' is absolute; paths are relative to /workspace", path);
	if (strlen(path) > 4000)
		return err_set(e, -EINVAL, "path is longer than 4000 bytes");
	const char *p = path;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return err_set(e, -EINVAL, "path '%.200s' has a '..' component; it must stay inside /workspace", path);
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* ---- arguments ---- */

struct arg_spec {
	const char *name;
	int type;      /* JSON_STRING, JSON_INTEGER, JSON_TRUE (boolean) */
	int required;
};

static int args_check(json_t *args, const struct arg_spec *spec, size_t n, struct err *e)
{
	if (!json_is_object(args))
		return err_set(e, -EINVAL, "arguments must be a JSON object");
	const char *key;
	json_t *v;
	json_object_foreach(args, key, v) {
		size_t i = 0;
		while (i < n && strcmp(spec[i].name, key))
			i++;
		if (i == n)
			return err_set(e, -EINVAL, "unknown argument '%.64s'", key);
	}
	for (size_t i = 0; i < n; i++) {
		v = json_object_get(args, spec[i].name);
		if (!v || json_is_null(v)) {
			if (spec[i].required)
				return err_set(e, -EINVAL, "missing required argument '%s'", spec[i].name);
			continue;
		}
		int ok = spec[i].type == JSON_TRUE ? json_is_boolean(v) : (int)json_typeof(v) == spec[i].type;
		if (!ok)
			return err_set(e, -EINVAL, "argument '%s' must be %s", spec[i].name,
				       spec[i].type == JSON_STRING ? "a string" :
				       spec[i].type == JSON_INTEGER ? "an integer" : "a boolean");
	}
	return 0;
}

static const char *arg_str(json_t *args, const char *k)
{
	return json_string_value(json_object_get(args, k));
}

static long arg_int(json_t *args, const char *k, long dflt)
{
	json_t *v = json_object_get(args, k);
	return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

/* ---- results ---- */

static int is_text(const char *s, size_t n)
{
	/* NUL bytes or invalid UTF-8 make it binary for the model's purposes. */
	if (memchr(s, '\0', n))
		return 0;
	json_t *j = json_stringn(s, n);
	int ok = j != NULL;
	json_decref(j);
	return ok;
}

static char *numbered_lines(const char *s, size_t n, long offset, long limit, struct err *e)
{
	size_t cap = n + (n / 8 + 16) * 8 + 128, len = 0;
	char *out = malloc(cap);
	if (!out) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	long line = 1, shown = 0, total = 0;
	const char *p = s, *end = s + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (line >= offset && shown < limit) {
			if (len + ln + 16 >= cap) {
				cap = (len + ln + 16) * 2;
				char *grown = realloc(out, cap);
				if (!grown) {
					free(out);
					err_set(e, -ENOMEM, "out of memory");
					return NULL;
				}
				out = grown;
			}
			len += (size_t)snprintf(out + len, cap - len, "%6ld\t", line);
			memcpy(out + len, p, ln);
			len += ln;
			out[len++] = '\n';
			shown++;
		}
		total++;
		line++;
		p = nl ? nl + 1 : end;
	}
	out[len] = '\0';
	if (shown == 0) {
		free(out);
		return fmt(total ? "(no lines at offset %ld: the file has %ld lines)" : "(empty file)", offset, total);
	}
	if (offset + shown - 1 < total) {
		char *more = fmt("%s(lines %ld-%ld of %ld; read on with offset %ld)\n", out, offset,
				 offset + shown - 1, total, offset + shown);
		free(out);
		return more;
	}
	return out;
}

/* A confine/lookup failure (exit 90-94) is the model's to fix. */
static int tool_script_error(struct tool_call *t, struct vmcall_result *r)
{
	if (r->exit_code < TOOL_ERR_FIRST || r->exit_code > TOOL_ERR_LAST)
		return 0;
	char *msg = vmcall_capture_text(&r->err, NULL);
	if (msg)
		msg[strcspn(msg, "\n")] = '\0';
	tool_finish(t, 1, msg, 0, 0);
	return 1;
}

static int tool_vm_failed(struct tool_call *t, struct vmcall_result *r)
{
	if (!r->e.code)
		return 0;
	if (r->refused) {
		/* e.g. /workspace removed by an earlier command: the model's to fix. */
		tool_finish(t, 1, fmt("the command could not start: %s", r->e.msg), 0, 0);
		return 1;
	}
	tool_finish(t, 1, fmt("the sandbox failed: %s", r->e.msg), 1, 0);
	return 1;
}

static void tool_run_cmd(struct tool_call *t, const char *script, const char *path, const void *in,
			 size_t in_len, size_t out_cap, int whole, vmcall_cb cb);

static void on_run_done(void *ctx, struct vmcall_result *r)
{
	struct tool_call *t = ctx;
	if (tool_vm_failed(t, r))
		return;
	char *out = vmcall_capture_text(&r->out, NULL);
	char *err = vmcall_capture_text(&r->err, NULL);
	char status[96];
	if (r->timed_out)
		snprintf(status, sizeof(status), "killed after the %u s timeout", t->timeout_s);
	else
		snprintf(status, sizeof(status), "exit code %d", r->exit_code);
	char *text = fmt("%s\n<stdout>\n%s</stdout>\n<stderr>\n%s</stderr>\n", status, out ? out : "",
			 err ? err : "");
	free(out);
	free(err);
	/* A failing command is information for the model, not a tool error. */
	tool_finish(t, 0, text, 0, r->exit_code);
}

static void on_edit_written(void *ctx, struct vmcall_result *r);

static void on_read_done(void *ctx, struct vmcall_result *r)
{
	struct tool_call *t = ctx;
	struct err e = { 0 };
	if (tool_vm_failed(t, r) || tool_script_error(t, r))
		return;
	if (r->over_cap) {
		tool_finish(t, 1, fmt("%s is larger than %u bytes; read it in parts with run_command (head, tail, sed -n)",
				      t->path, AGENT_FILE_CAP), 0, 0);
		return;
	}
	if (r->exit_code != 0) {
		char *msg = vmcall_capture_text(&r->err, NULL);
		tool_finish(t, 1, fmt("reading %s failed: %s", t->path, msg ? msg : "?"), 0, 0);
		free(msg);
		return;
	}
	const char *s = (const char *)r->out.head;
	size_t n = r->out.head_len;
	if (!is_text(s, n)) {
		tool_finish(t, t->kind == T_EDIT, fmt("%s is a binary file (%zu bytes)%s", t->path, n,
						      t->kind == T_EDIT ? "; edit_file works on text only" : ""), 0, 0);
		return;
	}
	if (t->kind == T_READ) {
		char *text = numbered_lines(s, n, t->offset, t->limit, &e);
		tool_finish(t, text == NULL, text ? text : strdup(e.msg), 0, 0);
		return;
	}
	/* edit_file: exact replacement, unique unless replace_all. */
	size_t on = strlen(t->old_s), nn = strlen(t->new_s), count = 0;
	for (const char *p = s; (p = memmem(p, (size_t)(s + n - p), t->old_s, on)); p += on)
		count++;
	if (count == 0) {
		tool_finish(t, 1, fmt("old_string was not found in %s (it must match exactly, whitespace included)", t->path), 0, 0);
		return;
	}
	if (count > 1 && !t->replace_all) {
		tool_finish(t, 1, fmt("old_string occurs %zu times in %s; give more context to make it unique, or set replace_all", count, t->path), 0, 0);
		return;
	}
	size_t out_len = n - count * on + count * nn;
	char *buf = malloc(out_len + 1);
	if (!buf) {
		tool_finish(t, 1, NULL, 0, 0);
		return;
	}
	size_t w = 0;
	const char *p = s;
	for (size_t i = 0; i < count; i++) {
		const char *hit = memmem(p, (size_t)(s + n - p), t->old_s, on);
		memcpy(buf + w, p, (size_t)(hit - p));
		w += (size_t)(hit - p);
		memcpy(buf + w, t->new_s, nn);
		w += nn;
		p = hit + on;
	}
	memcpy(buf + w, p, (size_t)(s + n - p));
	w += (size_t)(s + n - p);
	t->content = buf;
	t->content_len = w;
	t->replaced = count;
	t->edit_writing = 1;
	tool_run_cmd(t, script_write, t->path, buf, w, 4096, 0, on_edit_written);
}

static void on_edit_written(void *ctx, struct vmcall_result *r)
{
	struct tool_call *t = ctx;
	if (tool_vm_failed(t, r) || tool_script_error(t, r))
		return;
	if (r->exit_code != 0) {
		char *msg = vmcall_capture_text(&r->err, NULL);
		tool_finish(t, 1, fmt("writing %s failed: %s", t->path, msg ? msg : "?"), 0, 0);
		free(msg);
		return;
	}
	if (t->kind == T_EDIT)
		tool_finish(t, 0, fmt("replaced %zu occurrence%s in %s", t->replaced, t->replaced == 1 ? "" : "s", t->path), 0, 0);
	else
		tool_finish(t, 0, fmt("wrote %zu bytes to %s", t->content_len, t->path), 0, 0);
}

static void on_list_done(void *ctx, struct vmcall_result *r)
{
	struct tool_call *t = ctx;
	if (tool_vm_failed(t, r) || tool_script_error(t, r))
		return;
	char *out = vmcall_capture_text(&r->out, NULL);
	tool_finish(t, r->exit_code != 0, out, 0, 0);
}

static void tool_run_cmd(struct tool_call *t, const char *script, const char *path, const void *in,
			 size_t in_len, size_t out_cap, int whole, vmcall_cb cb)
{
	char *argv[] = { "sh", "-c", (char *)script, "sh", (char *)path, NULL };
	struct vmcall_spec spec = {
		.argv = argv, .cwd = "/workspace", .timeout_ms = 60000,
		.stdin_data = in, .stdin_len = in_len,
		.out_cap = out_cap, .err_cap = 4096, .out_whole = whole,
	};
	/* write_file with empty content still needs a stdin to close. */
	static const uint8_t none[1];
	if (in && !in_len)
		spec.stdin_data = none;
	struct err e = { 0 };
	if (agent_sandbox_exec(t->sb, &spec, cb, t, &e) < 0)
		tool_finish(t, 1, fmt("the sandbox failed: %s", e.msg), 1, 0);
}

static const struct arg_spec run_args[] = { { "command", JSON_STRING, 1 }, { "timeout_s", JSON_INTEGER, 0 } };
static const struct arg_spec read_args[] = { { "path", JSON_STRING, 1 }, { "offset", JSON_INTEGER, 0 }, { "limit", JSON_INTEGER, 0 } };
static const struct arg_spec write_args[] = { { "path", JSON_STRING, 1 }, { "content", JSON_STRING, 1 } };
static const struct arg_spec edit_args[] = { { "path", JSON_STRING, 1 }, { "old_string", JSON_STRING, 1 },
					     { "new_string", JSON_STRING, 1 }, { "replace_all", JSON_TRUE, 0 } };
static const struct arg_spec list_args[] = { { "path", JSON_STRING, 1 } };

#define N(a) (sizeof(a) / sizeof(a[0]))

static const struct tool_def {
	const char *name;
	enum tool_kind kind;
	const struct arg_spec *args;
	size_t n_args;
	const char *description;
	const char *schema;
} tool_defs[] = {
	{ "run_command", T_RUN, run_args, N(run_args),
	  "Run a shell command (sh -c) in /workspace inside the sandbox VM. Returns the exit code, stdout and stderr (long output is cut in the middle).",
	  "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\",\"description\":\"the shell command\"},"
	  "\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":600,\"description\":\"seconds before it is killed (default 120)\"}},"
	  "\"required\":[\"command\"],\"additionalProperties\":false}" },
	{ "read_file", T_READ, read_args, N(read_args),
	  "Read a text file under /workspace, with line numbers. offset is the first line (1-based), limit the number of lines.",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"relative to /workspace\"},"
	  "\"offset\":{\"type\":\"integer\",\"minimum\":1},\"limit\":{\"type\":\"integer\",\"minimum\":1}},"
	  "\"required\":[\"path\"],\"additionalProperties\":false}" },
	{ "write_file", T_WRITE, write_args, N(write_args),
	  "Create or overwrite a file under /workspace with the given content; parent directories are created.",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"relative to /workspace\"},"
	  "\"content\":{\"type\":\"string\"}},\"required\":[\"path\",\"content\"],\"additionalProperties\":false}" },
	{ "edit_file", T_EDIT, edit_args, N(edit_args),
	  "Replace old_string with new_string in a file under /workspace. old_string must match exactly and be unique unless replace_all is true.",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"relative to /workspace\"},"
	  "\"old_string\":{\"type\":\"string\"},\"new_string\":{\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\"}},"
	  "\"required\":[\"path\",\"old_string\",\"new_string\"],\"additionalProperties\":false}" },
	{ "list_dir", T_LIST, list_args, N(list_args),
	  "List a directory under /workspace (\".\" for the workspace itself).",
	  "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"relative to /workspace\"}},"
	  "\"required\":[\"path\"],\"additionalProperties\":false}" },
};

json_t *agent_vm_tools(void)
{
	json_t *a = json_array();
	for (size_t i = 0; i < N(tool_defs); i++)
		json_array_append_new(a, json_pack("{s:s,s:s,s:o}", "name", tool_defs[i].name, "description",
						   tool_defs[i].description, "input_schema",
						   json_loads(tool_defs[i].schema, 0, NULL)));
	return a;
}

int agent_is_vm_tool(const char *name)
{
	for (size_t i = 0; i < N(tool_defs); i++)
		if (!strcmp(tool_defs[i].name, name))
			return 1;
	return 0;
}

void agent_vm_tool_call(struct agent_sandbox *sb, const char *name, json_t *args, unsigned timeout_s_default,
			agent_tool_cb cb, void *ctx)
{
	struct err e = { 0 };
	const struct tool_def *d = NULL;
	for (size_t i = 0; i < N(tool_defs) && !d; i++)
		if (!strcmp(tool_defs[i].name, name))
			d = &tool_defs[i];
	struct tool_call *t = calloc(1, sizeof(*t));
	if (!t) {
		struct agent_tool_result r = { .is_error = 1, .text = strdup("out of memory"), .fatal = 1 };
		cb(ctx, &r);
		free(r.text);
		return;
	}
	t->sb = sb;
	t->cb = cb;
	t->ctx = ctx;
	if (!d) {
		tool_finish(t, 1, fmt("unknown tool '%.64s'", name), 0, 0);
		return;
	}
	t->kind = d->kind;
	if (args_check(args, d->args, d->n_args, &e) < 0) {
		tool_finish(t, 1, fmt("%s: %s", name, e.msg), 0, 0);
		return;
	}
	const char *path = arg_str(args, "path");
	if (path && agent_path_check(path, &e) < 0) {
		tool_finish(t, 1, fmt("%s: %s", name, e.msg), 0, 0);
		return;
	}
	if (path && !(t->path = strdup(path))) {
		tool_finish(t, 1, NULL, 0, 0);
		return;
	}
	switch (d->kind) {
	case T_RUN: {
		long s = arg_int(args, "timeout_s", timeout_s_default ? timeout_s_default : AGENT_TOOL_TIMEOUT_S_DEFAULT);
		if (s < 1 || s > AGENT_TOOL_TIMEOUT_S_MAX) {
			tool_finish(t, 1, fmt("run_command: timeout_s must be 1..%d", AGENT_TOOL_TIMEOUT_S_MAX), 0, 0);
			return;
		}
		t->timeout_s = (unsigned)s;
		char *argv[] = { "sh", "-c", (char *)arg_str(args, "command"), NULL };
		struct vmcall_spec spec = {
			.argv = argv, .cwd = "/workspace", .timeout_ms = t->timeout_s * 1000u,
			.out_cap = AGENT_OUTPUT_CAP, .err_cap = AGENT_OUTPUT_CAP,
		};
		if (agent_sandbox_exec(sb, &spec, on_run_done, t, &e) < 0)
			tool_finish(t, 1, fmt("the sandbox failed: %s", e.msg), 1, 0);
		return;
	}
	case T_READ:
		t->offset = arg_int(args, "offset", 1);
		t->limit = arg_int(args, "limit", AGENT_READ_LINES_DEFAULT);
		if (t->offset < 1 || t->limit < 1) {
			tool_finish(t, 1, strdup("read_file: offset and limit must be at least 1"), 0, 0);
			return;
		}
		tool_run_cmd(t, script_read, t->path, NULL, 0, AGENT_FILE_CAP, 1, on_read_done);
		return;
	case T_EDIT:
		t->old_s = strdup(arg_str(args, "old_string"));
		t->new_s = strdup(arg_str(args, "new_string"));
		t->replace_all = json_is_true(json_object_get(args, "replace_all"));
		if (!t->old_s || !t->new_s || !t->old_s[0]) {
			tool_finish(t, 1, strdup(t->old_s && !t->old_s[0] ? "edit_file: old_string is empty (use write_file to create a file)" : "out of memory"), 0, 0);
			return;
		}
		tool_run_cmd(t, script_read, t->path, NULL, 0, AGENT_FILE_CAP, 1, on_read_done);
		return;
	case T_WRITE: {
		json_t *c = json_object_get(args, "content");
		t->content_len = json_string_length(c);
		if (!(t->content = malloc(t->content_len + 1))) {
			tool_finish(t, 1, NULL, 0, 0);
			return;
		}
		memcpy(t->content, json_string_value(c), t->content_len + 1);
		tool_run_cmd(t, script_write, t->path, t->content, t->content_len, 4096, 0, on_edit_written);
		return;
	}
	case T_LIST:
		tool_run_cmd(t, script_list, t->path, NULL, 0, AGENT_OUTPUT_CAP, 0, on_list_done);
		return;
	}
}
