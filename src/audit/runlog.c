/* The run log writer: one append-only JSONL file per agent run.
 *
 * The log is the record of what an agent did and who allowed it, so it is
 * written as it happens (O_APPEND, one write per event, never rewritten) and
 * synced when the run ends or fails. It is also a place where a secret could
 * leak (an API key echoed in an error, a token in a tool's arguments), so
 * every event passes the redactor before it is encoded, and the encoded line
 * is checked once more before it is written. A bounded ring keeps the recent
 * events in memory for the live view, and counts what it had to drop. */
#include "audit/audit.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/dirs.h"
#include "core/io.h"

#define RUNLOG_DEPTH_MAX 64
#define RUNLOG_REDACTED "[REDACTED]"

struct runlog {
	int fd;
	char id[RUNLOG_ID_MAX + 1];
	char path[640];
	long long seq;
	char *secrets[RUNLOG_SECRETS_MAX];
	size_t n_secrets;
	char *ring[RUNLOG_RING_MAX];   /* owned lines */
	size_t ring_start, ring_count, ring_bytes;
	uint64_t ring_dropped;
};

char *runlog_dir_default(void)
{
	const char *env = getenv("IRONCLAW_RUNS_DIR");
	char *out = NULL;
	if (env && env[0] == '/')
		return strdup(env);
	if (geteuid() == 0)
		return strdup(RUNLOG_DIR_ROOT);
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	if (xdg && xdg[0] == '/') {
		if (asprintf(&out, "%s/ironclaw/runs", xdg) < 0)
			return NULL;
	} else if (asprintf(&out, "%s/.local/state/ironclaw/runs", home && *home ? home : "/tmp") < 0) {
		return NULL;
	}
	return out;
}

int runlog_id_valid(const char *id)
{
	size_t n = 0;
	for (; id && id[n]; n++) {
		char c = id[n];
		if (n >= RUNLOG_ID_MAX || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
					    (c >= 'A' && c <= 'Z') || c == '-'))
			return 0;
	}
	return n > 0;
}

static int runlog_mkdirs(const char *dir)
{
	char p[600];
	if (snprintf(p, sizeof(p), "%s/", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	return dirs_make_prefixes(p, 0700);
}

int runlog_open(const char *dir, struct runlog **out, struct err *e)
{
	*out = NULL;
	char *def = dir ? NULL : runlog_dir_default();
	const char *d = dir ? dir : def;
	int rc = 0;
	struct runlog *rl = NULL;
	if (!d) {
		rc = err_set(e, -ENOMEM, "run log: out of memory");
		goto out;
	}
	if ((rc = runlog_mkdirs(d)) < 0) {
		err_set(e, rc, "run log: creating %s: %s (hint: set IRONCLAW_RUNS_DIR to a writable "
			"directory)", d, strerror(-rc));
		goto out;
	}
	if (!(rl = calloc(1, sizeof(*rl)))) {
		rc = err_set(e, -ENOMEM, "run log: out of memory");
		goto out;
	}
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		rc = err_set(e, -EIO, "run log: no randomness for a run id: %s", strerror(errno));
		goto out;
	}
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
	snprintf(rl->id, sizeof(rl->id), "%s-%08x", stamp, rnd);
	if (snprintf(rl->path, sizeof(rl->path), "%s/%s.jsonl", d, rl->id) >= (int)sizeof(rl->path)) {
		rc = err_set(e, -ENAMETOOLONG, "run log: directory name too long: %s", d);
		goto out;
	}
	rl->fd = open(rl->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (rl->fd < 0) {
		rc = err_set(e, -errno, "run log: creating %s: %s", rl->path, strerror(errno));
		goto out;
	}
out:
	if (rc < 0)
		free(rl);
	else
		*out = rl;
	free(def);
	return rc;
}

const char *runlog_id(const struct runlog *rl)
{
	return rl->id;
}

const char *runlog_path(const struct runlog *rl)
{
	return rl->path;
}

int runlog_add_secret(struct runlog *rl, const char *secret)
{
	if (!secret || strlen(secret) < 4)
		return -EINVAL;
	if (rl->n_secrets == RUNLOG_SECRETS_MAX)
		return -E2BIG;
	if (!(rl->secrets[rl->n_secrets] = strdup(secret)))
		return -ENOMEM;
	rl->n_secrets++;
	return 0;
}

/* s with every secret replaced and cut at RUNLOG_TEXT_MAX (owned), or NULL
 * when nothing needs changing. */
static char *runlog_clean(const struct runlog *rl, const char *s, size_t len)
{
	char *cur = NULL;
	for (size_t k = 0; k < rl->n_secrets; k++) {
		const char *src = cur ? cur : s;
		const char *sec = rl->secrets[k];
		size_t sl = strlen(sec), n = 0;
		for (const char *p = src; (p = strstr(p, sec)); p += sl)
			n++;
		if (!n)
			continue;
		size_t srclen = strlen(src);
		char *dst = malloc(srclen - n * sl + n * strlen(RUNLOG_REDACTED) + 1);
		if (!dst) {
			free(cur);
			return strdup(RUNLOG_REDACTED); /* fail closed: drop the whole string */
		}
		char *o = dst;
		for (const char *p = src, *hit; ; p = hit + sl) {
			hit = strstr(p, sec);
			size_t keep = hit ? (size_t)(hit - p) : strlen(p);
			memcpy(o, p, keep);
			o += keep;
			if (!hit)
				break;
			memcpy(o, RUNLOG_REDACTED, strlen(RUNLOG_REDACTED));
			o += strlen(RUNLOG_REDACTED);
		}
		*o = 0;
		free(cur);
		cur = dst;
	}
	const char *now = cur ? cur : s;
	size_t nl = cur ? strlen(cur) : len;
	if (nl > RUNLOG_TEXT_MAX) {
		/* Cut on a UTF-8 boundary so that the string stays valid. */
		size_t cut = RUNLOG_TEXT_MAX;
		while (cut && ((unsigned char)now[cut] & 0xc0) == 0x80)
			cut--;
		char *t = NULL;
		if (asprintf(&t, "%.*s... [%zu bytes cut]", (int)cut, now, nl - cut) < 0)
			t = strdup(RUNLOG_REDACTED);
		free(cur);
		cur = t;
	}
	return cur;
}

/* Redacts every string and key under v, in place. Returns v or a replacement
 * (the caller swaps it in). */
static json_t *runlog_redact(const struct runlog *rl, json_t *v, int depth)
{
	if (depth > RUNLOG_DEPTH_MAX) {
		json_decref(v);
		return json_string("[too deep]");
	}
	if (json_is_string(v)) {
		char *c = runlog_clean(rl, json_string_value(v), json_string_length(v));
		if (c) {
			json_string_set(v, c);
			free(c);
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *x = json_incref(json_array_get(v, i));
			json_array_set_new(v, i, runlog_redact(rl, x, depth + 1));
		}
	} else if (json_is_object(v)) {
		json_t *copy = json_object();
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) {
			char *ck = runlog_clean(rl, k, strlen(k));
			json_object_set_new(copy, ck ? ck : k, runlog_redact(rl, json_incref(x), depth + 1));
			free(ck);
		}
		json_decref(v);
		return copy;
	}
	return v;
}

static void runlog_ring_push(struct runlog *rl, char *line)
{
	size_t len = strlen(line);
	while (rl->ring_count && (rl->ring_count == RUNLOG_RING_MAX ||
				  rl->ring_bytes + len > RUNLOG_RING_BYTES)) {
		char *old = rl->ring[rl->ring_start];
		rl->ring_bytes -= strlen(old);
		free(old);
		rl->ring_start = (rl->ring_start + 1) % RUNLOG_RING_MAX;
		rl->ring_count--;
		rl->ring_dropped++;
	}
	rl->ring[(rl->ring_start + rl->ring_count) % RUNLOG_RING_MAX] = line;
	rl->ring_count++;
	rl->ring_bytes += len;
}

size_t runlog_ring_count(const struct runlog *rl)
{
	return rl->ring_count;
}

const char *runlog_ring_get(const struct runlog *rl, size_t i)
{
	return i < rl->ring_count ? rl->ring[(rl->ring_start + i) % RUNLOG_RING_MAX] : NULL;
}

uint64_t runlog_ring_dropped(const struct runlog *rl)
{
	return rl->ring_dropped;
}

static int runlog_line_leaks(const struct runlog *rl, const char *line)
{
	for (size_t k = 0; k < rl->n_secrets; k++)
		if (strstr(line, rl->secrets[k]))
			return 1;
	return 0;
}

static char *runlog_encode(struct runlog *rl, const char *event, json_t *fields)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	char when[40];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts.tv_sec, &tm));
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ", ts.tv_nsec / 1000000);
	json_t *o = fields && json_is_object(fields) ? fields : json_object();
	if (fields && o != fields)
		json_decref(fields);
	o = runlog_redact(rl, o, 0);
	json_t *head = json_pack("{s:s, s:I, s:I, s:s, s:s}", "time", when, "time_unix_ms",
				 (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, "seq",
				 (json_int_t)++rl->seq, "ironclaw.run.id", rl->id, "event", event);
	char *line = NULL;
	if (!head) {
		json_decref(o);
		return NULL;
	}
	if (o) {
		json_object_update_missing(head, o);
		line = json_dumps(head, JSON_COMPACT);
	}
	if (!line || strlen(line) > RUNLOG_LINE_MAX || runlog_line_leaks(rl, line)) {
		size_t was = line ? strlen(line) : 0;
		free(line);
		json_decref(o);
		o = json_pack("{s:s, s:b, s:I}", "ironclaw.replaced_event", event, "ironclaw.truncated",
			      1, "ironclaw.original_bytes", (json_int_t)was);
		json_object_del(head, "event");
		json_object_set_new(head, "event", json_string("log.replaced"));
		json_object_update(head, o);
		line = json_dumps(head, JSON_COMPACT);
	}
	json_decref(o);
	json_decref(head);
	return line;
}

int runlog_write(struct runlog *rl, const char *event, json_t *fields, struct err *e)
{
	char *line = runlog_encode(rl, event, fields);
	if (!line)
		return err_set(e, -ENOMEM, "run log: out of memory encoding %s", event);
	size_t n = strlen(line);
	char *framed = malloc(n + 2);
	int rc = -ENOMEM;
	if (framed) {
		memcpy(framed, line, n);
		framed[n] = '\n';
		rc = rl->fd >= 0 ? io_write_all(rl->fd, framed, n + 1) : -EBADF;
		free(framed);
	}
	runlog_ring_push(rl, line);
	if (rc < 0) {
		if (rl->fd >= 0)
			fsync(rl->fd);
		return err_set(e, rc, "run log: writing %s: %s", rl->path, strerror(-rc));
	}
	return 0;
}

/* Adds a string or an integer only when present. */
static void runlog_s(json_t *o, const char *k, const char *v)
{
	if (!v)
		return;
	json_t *j = json_string(v);
	json_object_set_new(o, k, j ? j : json_string("[not UTF-8]"));
}

static void runlog_i(json_t *o, const char *k, long long v)
{
	if (v >= 0)
		json_object_set_new(o, k, json_integer(v));
}

/* The endpoint without what could carry a key: user, password, query. */
static char *runlog_clean_url(const char *url)
{
	CURLU *h = curl_url();
	char *out = NULL, *s = NULL;
	if (h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK) {
		curl_url_set(h, CURLUPART_USER, NULL, 0);
		curl_url_set(h, CURLUPART_PASSWORD, NULL, 0);
		curl_url_set(h, CURLUPART_QUERY, NULL, 0);
		curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
		if (curl_url_get(h, CURLUPART_URL, &s, 0) == CURLUE_OK)
			out = strdup(s);
	} else {
		out = strdup("[unparsable URL]");
	}
	curl_free(s);
	curl_url_cleanup(h);
	return out;
}

int runlog_run_start(struct runlog *rl, const struct runlog_start *s, struct err *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "gen_ai.operation.name", json_string("invoke_agent"));
	json_object_set_new(o, "gen_ai.agent.name", json_string("ironclaw"));
	runlog_s(o, "ironclaw.task", s->task);
	runlog_s(o, "gen_ai.provider.name", s->provider);
	runlog_s(o, "gen_ai.request.model", s->model);
	if (s->base_url) {
		char *u = runlog_clean_url(s->base_url);
		runlog_s(o, "url.full", u);
		free(u);
	}
	runlog_s(o, "ironclaw.approval.mode", s->approval_mode);
	if (s->approval_mode && !strcmp(s->approval_mode, "yes"))
		json_object_set_new(o, "ironclaw.approval.warning",
				    json_string("--approve yes: every red action is approved without asking"));
	runlog_s(o, "ironclaw.workspace", s->workspace);
	runlog_i(o, "ironclaw.max_steps", s->max_steps > 0 ? s->max_steps : -1);
	json_object_set_new(o, "process.pid", json_integer(getpid()));
	return runlog_write(rl, "run.start", o, e);
}

int runlog_model_request(struct runlog *rl, const struct runlog_model *m, struct err *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "gen_ai.operation.name", json_string("chat"));
	runlog_i(o, "ironclaw.step", m->step);
	runlog_s(o, "gen_ai.request.model", m->model);
	runlog_s(o, "gen_ai.response.model", m->response_model);
	if (m->finish_reason)
		json_object_set_new(o, "gen_ai.response.finish_reasons",
				    json_pack("[s]", m->finish_reason));
	runlog_i(o, "gen_ai.usage.input_tokens", m->input_tokens);
	runlog_i(o, "gen_ai.usage.output_tokens", m->output_tokens);
	runlog_i(o, "ironclaw.request.bytes", m->request_bytes);
	runlog_i(o, "ironclaw.response.bytes", m->response_bytes);
	json_object_set_new(o, "ironclaw.latency_ms", json_real(m->latency_ms));
	runlog_s(o, "ironclaw.response.text", m->text);
	runlog_s(o, "error.type", m->error);
	return runlog_write(rl, "model.request", o, e);
}

int runlog_tool_call(struct runlog *rl, const struct runlog_tool *t, struct err *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "gen_ai.operation.name", json_string("execute_tool"));
	runlog_i(o, "ironclaw.step", t->step);
	runlog_s(o, "gen_ai.tool.call.id", t->call_id);
	runlog_s(o, "gen_ai.tool.name", t->name);
	if (t->arguments)
		json_object_set_new(o, "gen_ai.tool.call.arguments", json_deep_copy(t->arguments));
	runlog_s(o, "ironclaw.classification", t->classification);
	runlog_s(o, "ironclaw.classification.reason", t->class_reason);
	runlog_s(o, "ironclaw.approval.decision", t->decision);
	runlog_s(o, "ironclaw.approval.decider", t->decider);
	runlog_s(o, "ironclaw.approval.reason", t->decision_reason);
	runlog_s(o, "ironclaw.approval.scope", t->scope);
	runlog_s(o, "ironclaw.approval.effect_sha256", t->effect_sha256);
	runlog_s(o, "ironclaw.tool.status", t->status);
	json_object_set_new(o, "ironclaw.duration_ms", json_real(t->duration_ms));
	runlog_s(o, "gen_ai.tool.call.result", t->result);
	return runlog_write(rl, "tool.call", o, e);
}

int runlog_diff(struct runlog *rl, const char *summary, const json_t *files, const char *sha256,
		struct err *e)
{
	json_t *o = json_object();
	runlog_s(o, "ironclaw.diff.summary", summary);
	if (files)
		json_object_set_new(o, "ironclaw.diff.files", json_deep_copy(files));
	runlog_s(o, "ironclaw.diff.sha256", sha256);
	return runlog_write(rl, "workspace.diff", o, e);
}

int runlog_changes_decision(struct runlog *rl, const char *decision, const char *decider,
			    const char *reason, const char *sha256, const json_t *selected,
			    struct err *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "ironclaw.approval.kind", json_string("workspace_changes"));
	json_object_set_new(o, "ironclaw.classification", json_string("red"));
	runlog_s(o, "ironclaw.approval.decision", decision);
	runlog_s(o, "ironclaw.approval.decider", decider);
	runlog_s(o, "ironclaw.approval.reason", reason);
	runlog_s(o, "ironclaw.approval.effect_sha256", sha256);
	if (selected)
		json_object_set_new(o, "ironclaw.approval.files", json_deep_copy(selected));
	return runlog_write(rl, "approval", o, e);
}

int runlog_applied(struct runlog *rl, const json_t *files, const char *status, struct err *e)
{
	json_t *o = json_object();
	if (files)
		json_object_set_new(o, "ironclaw.applied.files", json_deep_copy(files));
	runlog_s(o, "ironclaw.applied.status", status);
	return runlog_write(rl, "workspace.apply", o, e);
}

int runlog_vm(struct runlog *rl, const char *vm_id, struct err *e)
{
	json_t *o = json_object();
	runlog_s(o, "ironclaw.vm.id", vm_id);
	return runlog_write(rl, "vm.start", o, e);
}

int runlog_run_end(struct runlog *rl, const char *status, int exit_code, int steps,
		   const char *answer, struct err *e)
{
	json_t *o = json_object();
	runlog_s(o, "ironclaw.run.status", status);
	runlog_i(o, "ironclaw.exit_code", exit_code);
	runlog_i(o, "ironclaw.steps", steps);
	runlog_s(o, "ironclaw.answer", answer);
	int rc = runlog_write(rl, "run.end", o, e);
	int src = runlog_sync(rl, rc < 0 ? NULL : e);
	return rc < 0 ? rc : src;
}

int runlog_sync(struct runlog *rl, struct err *e)
{
	if (rl->fd < 0)
		return 0;
	if (fsync(rl->fd) < 0)
		return err_set(e, -errno, "run log: syncing %s: %s", rl->path, strerror(errno));
	return 0;
}

void runlog_close(struct runlog *rl)
{
	if (!rl)
		return;
	if (rl->fd >= 0) {
		fsync(rl->fd);
		close(rl->fd);
	}
	for (size_t i = 0; i < rl->n_secrets; i++) {
		/* The copy of a key should not outlive the run in freed memory. */
		explicit_bzero(rl->secrets[i], strlen(rl->secrets[i]));
		free(rl->secrets[i]);
	}
	for (size_t i = 0; i < rl->ring_count; i++)
		free(rl->ring[(rl->ring_start + i) % RUNLOG_RING_MAX]);
	free(rl);
}
