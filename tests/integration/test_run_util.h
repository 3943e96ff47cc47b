/* Helpers for the `ironclaw run` integration tests (test_run*.c): a temp
 * directory per test holding the host workspace, a sentinel directory beside
 * it that nothing may touch, the config file and the runs directory; aimock on
 * a free port with the fixtures of tests/peers/aimock/run-tests.json; the real
 * binary run as a user would; a byte-for-byte snapshot of a tree; and the tool
 * results the model really received, read from aimock's journal.
 * Header-only: each test binary includes it once. */
#ifndef IRONCLAW_TEST_RUN_UTIL_H
#define IRONCLAW_TEST_RUN_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/io.h"
#include "integration/lib/aimock.h"
#include "lib/harness.h"

#define RT_FIXTURES "run-tests.json"
#define RT_RUN_MS 180000u
#define RT_ARGS_MAX 48

struct rt {
	char dir[64];           /* /tmp/ironclaw-rt-XXXXXX */
	char ws[128];           /* dir/ws: the host workspace */
	char sentinel[128];     /* dir/sentinel: beside it, must never change */
	char config[128];       /* dir/config.json */
	char runs[128];         /* dir/runs */
	char key[96];           /* OPENAI_API_KEY / ANTHROPIC_API_KEY for this test */
	struct aimock mock;
	int mock_up;
};

static inline void rt_write(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(io_write_all(fd, content, strlen(content)), 0);
	fchmod(fd, mode);
	close(fd);
}

static inline void rt_writef(const char *dir, const char *rel, const char *content, mode_t mode)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	rt_write(p, content, mode);
}

/* The file's bytes (NUL-terminated), or NULL when it does not exist. */
static inline char *rt_read(const char *path)
{
	char *d = NULL;
	size_t n = 0;
	if (io_read_file(path, 64u << 20, &d, &n) < 0)
		return NULL;
	return d;
}

static inline char *rt_readf(const char *dir, const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return rt_read(p);
}

/* The test's temp tree: a small workspace (text, a script, a binary file, a
 * subdirectory), the sentinel, an empty config unless config_json is given. */
static inline void rt_setup(struct rt *t, const char *config_json)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/ironclaw-rt-XXXXXX");
	cr_assert(mkdtemp(t->dir), "mkdtemp: %s", strerror(errno));
	snprintf(t->ws, sizeof(t->ws), "%s/ws", t->dir);
	snprintf(t->sentinel, sizeof(t->sentinel), "%s/sentinel", t->dir);
	snprintf(t->config, sizeof(t->config), "%s/config.json", t->dir);
	snprintf(t->runs, sizeof(t->runs), "%s/runs", t->dir);
	cr_assert_eq(mkdir(t->ws, 0755), 0);
	cr_assert_eq(mkdir(t->sentinel, 0755), 0);
	char p[256];
	snprintf(p, sizeof(p), "%s/src", t->ws);
	cr_assert_eq(mkdir(p, 0755), 0);
	rt_writef(t->ws, "notes.txt", "hello\n", 0644);
	rt_writef(t->ws, "src/main.c", "int main(void) { return 0; }\n", 0644);
	rt_writef(t->ws, "run.sh", "#!/bin/sh\necho run\n", 0755);
	rt_writef(t->ws, "blob.bin", "\x01\x02\x03\xff\xfe binary", 0600);
	rt_writef(t->sentinel, "keep.txt", "the sentinel\n", 0644);
	rt_write(t->config, config_json ? config_json : "{}\n", 0600);
	snprintf(t->key, sizeof(t->key), "sk-leakcheck-%d-%08lx%08lx", (int)getpid(), random(),
		 random());
	setenv("IRONCLAW_CONFIG", t->config, 1);
	setenv("IRONCLAW_RUNS_DIR", t->runs, 1);
	setenv("OPENAI_API_KEY", t->key, 1);
	setenv("ANTHROPIC_API_KEY", t->key, 1);
	unsetenv("OPENAI_BASE_URL");
	unsetenv("ANTHROPIC_BASE_URL");
}

static inline void rt_mock(struct rt *t, const char *fixtures)
{
	cr_assert_eq(aimock_start(&t->mock, fixtures ? fixtures : RT_FIXTURES, NULL), 0, "%s",
		     t->mock.why);
	t->mock_up = 1;
}

static inline void rt_teardown(struct rt *t)
{
	if (t->mock_up)
		aimock_stop(&t->mock);
	t->mock_up = 0;
	if (t->dir[0]) {
		char cmd[160];
		/* rm does not follow the symlinks a run may have left in ws. */
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t->dir);
	}
}

/* argv for `ironclaw run` against this test's aimock: provider ("openai" or
 * "anthropic", with the base URL each SDK expects), then the extra arguments
 * (NULL-terminated), then the task. argv points into static storage. */
static inline char **rt_argv(struct rt *t, const char *provider, const char *task, va_list ap)
{
	static char *argv[RT_ARGS_MAX];
	static char base[160];
	int anthropic = provider && !strcmp(provider, "anthropic");
	snprintf(base, sizeof(base), "%s%s", t->mock.url, anthropic ? "" : "/v1");
	int n = 0;
	argv[n++] = (char *)harness_ironclaw();
	argv[n++] = "run";
	argv[n++] = "--workspace";
	argv[n++] = t->ws;
	argv[n++] = "--provider";
	argv[n++] = anthropic ? "anthropic" : "openai";
	argv[n++] = "--base-url";
	argv[n++] = base;
	argv[n++] = "--model";
	argv[n++] = "test-model";
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < RT_ARGS_MAX - 2)
		argv[n++] = (char *)a;
	argv[n++] = (char *)task;
	argv[n] = NULL;
	return argv;
}

/* Runs `ironclaw run ... task` to the end (stdin empty, no terminal). */
static inline struct run_result rt_run(struct rt *t, const char *provider, const char *task, ...)
{
	va_list ap;
	va_start(ap, task);
	char **argv = rt_argv(t, provider, task, ap);
	va_end(ap);
	struct run_result r;
	cr_assert_eq(harness_run(argv, "", 0, RT_RUN_MS, &r), 0);
	cr_assert_not(r.timed_out, "ironclaw run did not finish; stderr:\n%s", r.err);
	return r;
}

/* Starts `ironclaw run ... task` in the background, stdout/stderr in dir/out, dir/err. */
static inline pid_t rt_spawn(struct rt *t, const char *provider, const char *task, ...)
{
	va_list ap;
	va_start(ap, task);
	char **argv = rt_argv(t, provider, task, ap);
	va_end(ap);
	char o[160], e[160];
	snprintf(o, sizeof(o), "%s/out", t->dir);
	snprintf(e, sizeof(e), "%s/err", t->dir);
	pid_t pid = harness_spawn(argv, o, e);
	cr_assert_gt(pid, 0);
	return pid;
}

/* ---- a tree, byte for byte ---- */

static inline int rt_cmp_names(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static inline void rt_tree_walk(struct buf *b, const char *root, const char *rel)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s%s%s", root, rel[0] ? "/" : "", rel);
	struct stat st;
	cr_assert_eq(lstat(p, &st), 0, "lstat %s", p);
	char line[1400];
	int n = snprintf(line, sizeof(line), "%s mode=%o size=%lld mtime=%lld.%09ld\n", rel[0] ? rel : ".",
			 (unsigned)st.st_mode, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec);
	buf_append(b, line, (size_t)n);
	if (S_ISLNK(st.st_mode)) {
		char tgt[512];
		ssize_t k = readlink(p, tgt, sizeof(tgt) - 1);
		cr_assert_geq(k, 0);
		buf_append(b, "-> ", 3);
		buf_append(b, tgt, (size_t)k);
		buf_append(b, "\n", 1);
	} else if (S_ISREG(st.st_mode)) {
		char *d = NULL;
		size_t len = 0;
		cr_assert_eq(io_read_file(p, 64u << 20, &d, &len), 0);
		buf_append(b, d, len);
		buf_append(b, "\n", 1);
		free(d);
	} else if (S_ISDIR(st.st_mode)) {
		struct dirent **ents;
		int k = scandir(p, &ents, NULL, rt_cmp_names);
		cr_assert_geq(k, 0);
		for (int i = 0; i < k; i++) {
			const char *nm = ents[i]->d_name;
			if (strcmp(nm, ".") && strcmp(nm, "..")) {
				char sub[1024];
				snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", nm);
				rt_tree_walk(b, root, sub);
			}
			free(ents[i]);
		}
		free(ents);
	}
}

/* Every path, mode, size, mtime, content and link target under root, as one
 * string: two snapshots are equal iff nothing in the tree was touched. */
static inline char *rt_tree(const char *root)
{
	struct buf b;
	buf_init(&b, 256u << 20);
	rt_tree_walk(&b, root, "");
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* ---- what the model received ---- */

/* The content of the tool result for call id in the LAST request of the
 * journal (it carries the whole conversation), either wire format; NULL if
 * that request does not carry it. Owned by the journal. */
static inline const char *rt_tool_result(json_t *journal, const char *id)
{
	json_t *last = json_array_get(journal, json_array_size(journal) - 1);
	json_t *msgs = json_object_get(json_object_get(last, "body"), "messages");
	size_t i, k;
	json_t *m, *blk;
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role && !strcmp(role, "tool")) {   /* OpenAI */
			const char *tid = json_string_value(json_object_get(m, "tool_call_id"));
			if (tid && !strcmp(tid, id))
				return json_string_value(json_object_get(m, "content"));
		}
		json_t *content = json_object_get(m, "content");
		if (!json_is_array(content))
			continue;
		json_array_foreach(content, k, blk) {   /* Anthropic */
			const char *ty = json_string_value(json_object_get(blk, "type"));
			const char *tid = json_string_value(json_object_get(blk, "tool_use_id"));
			if (!ty || strcmp(ty, "tool_result") || !tid || strcmp(tid, id))
				continue;
			json_t *c = json_object_get(blk, "content");
			if (json_is_string(c))
				return json_string_value(c);
			json_t *first = json_array_get(c, 0);
			return json_string_value(json_object_get(first, "text"));
		}
	}
	return NULL;
}

/* Every run-log line under the runs directory, concatenated. */
static inline char *rt_runlogs(struct rt *t)
{
	struct buf b;
	buf_init(&b, 64u << 20);
	DIR *d = opendir(t->runs);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 6, ".jsonl"))
			continue;
		char *c = rt_readf(t->runs, de->d_name);
		if (c) {
			buf_append(&b, c, strlen(c));
			free(c);
		}
	}
	if (d)
		closedir(d);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* The run id from the run log's file name (the run of this test). */
static inline void rt_run_id(struct rt *t, char *id, size_t cap)
{
	id[0] = '\0';
	DIR *d = opendir(t->runs);
	cr_assert(d, "no runs directory %s", t->runs);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 6 && !strcmp(de->d_name + l - 6, ".jsonl"))
			snprintf(id, cap, "%.*s", (int)(l - 6), de->d_name);
	}
	closedir(d);
	cr_assert(id[0], "no run log in %s", t->runs);
}

#endif
