/* Reading run logs back: the list of runs and one run's events.
 *
 * The files are ours, but they may have been cut short by a crash or edited
 * by hand, so reading is forgiving where it can be and capped everywhere: a
 * line that is too long or not a JSON object is skipped and counted, a file
 * is read up to RUNLOG_FILE_MAX, and only names that are valid run ids are
 * ever opened (an id never becomes a path outside the runs directory). */
#include "audit/audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int runlog_open_run(const char *dir, const char *id, FILE **f, struct err *e)
{
	char path[640];
	if (!runlog_id_valid(id))
		return err_set(e, -EINVAL, "'%s' is not a run id (hint: `ironclaw runs` lists them)", id);
	if (snprintf(path, sizeof(path), "%s/%s.jsonl", dir, id) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "runs directory name too long");
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, errno == ENOENT ? "no run '%s' in %s (hint: `ironclaw runs` "
			       "lists them)" : "opening run '%s' in %s: %m", id, dir);
	if (!(*f = fdopen(fd, "r"))) {
		close(fd);
		return err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

int runlog_load(const char *dir, const char *id, json_t **events, size_t *skipped, struct err *e)
{
	FILE *f = NULL;
	*events = NULL;
	if (skipped)
		*skipped = 0;
	int rc = runlog_open_run(dir, id, &f, e);
	if (rc < 0)
		return rc;
	json_t *arr = json_array();
	char *line = malloc(RUNLOG_LINE_MAX + 2);
	if (!arr || !line) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	size_t total = 0;
	while (total < RUNLOG_FILE_MAX && fgets(line, RUNLOG_LINE_MAX + 2, f)) {
		size_t n = strlen(line);
		total += n;
		if (n && line[n - 1] != '\n' && !feof(f)) {
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				total++;
			if (skipped)
				(*skipped)++;
			continue;
		}
		json_t *o = json_loadb(line, n, 0, NULL);
		if (!json_is_object(o) || !json_is_string(json_object_get(o, "event"))) {
			json_decref(o);
			if (skipped && n > 1)
				(*skipped)++;
			continue;
		}
		json_array_append_new(arr, o);
	}
	*events = arr;
	arr = NULL;
out:
	free(line);
	json_decref(arr);
	fclose(f);
	return rc;
}

static void runlog_copy(char *dst, size_t len, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	size_t k = 0;
	/* A summary goes to a terminal: no control characters. */
	for (; s && *s && k + 1 < len; s++)
		dst[k++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
	/* Do not leave half a UTF-8 sequence at the cut. */
	if (s && *s)
		while (k && ((unsigned char)dst[k] & 0xc0) == 0x80)
			k--;
	dst[k] = 0;
}

void runlog_summarize(const json_t *events, const char *id, struct runlog_summary *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->status, sizeof(s->status), "unfinished");
	size_t i;
	json_t *ev;
	int ended = 0;
	json_array_foreach(events, i, ev) {
		const char *name = json_string_value(json_object_get(ev, "event"));
		if (!strcmp(name, "run.start")) {
			runlog_copy(s->started, sizeof(s->started), ev, "time");
			runlog_copy(s->task, sizeof(s->task), ev, "ironclaw.task");
			runlog_copy(s->model, sizeof(s->model), ev, "gen_ai.request.model");
		} else if (!strcmp(name, "model.request")) {
			s->steps++;
		} else if (!strcmp(name, "tool.call")) {
			s->tool_calls++;
			const char *d = json_string_value(json_object_get(ev, "ironclaw.approval.decision"));
			s->denied += d && !strcmp(d, "denied");
		} else if (!strcmp(name, "run.end")) {
			ended = 1;
			runlog_copy(s->status, sizeof(s->status), ev, "ironclaw.run.status");
			json_t *st = json_object_get(ev, "ironclaw.steps");
			if (json_is_integer(st))
				s->steps = (int)json_integer_value(st);
		}
	}
	(void)ended; /* no run.end: the status stays "unfinished" */
}

static int runlog_cmp_id(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* By start time (ms), then id: ids only have whole seconds. */
static int runlog_cmp(const void *a, const void *b)
{
	const struct runlog_summary *x = a, *y = b;
	int c = strcmp(x->started[0] ? x->started : x->id, y->started[0] ? y->started : y->id);
	return c ? c : strcmp(x->id, y->id);
}

int runlog_list(const char *dir, struct runlog_summary **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_set(e, -errno, "reading %s: %m", dir);
	char (*ids)[RUNLOG_ID_MAX + 1] = NULL;
	size_t k = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 7 || strcmp(de->d_name + len - 6, ".jsonl") || len - 6 > RUNLOG_ID_MAX)
			continue;
		char id[RUNLOG_ID_MAX + 1];
		snprintf(id, sizeof(id), "%.*s", (int)(len - 6), de->d_name);
		if (!runlog_id_valid(id))
			continue;
		if (k == cap) {
			size_t nc = cap ? cap * 2 : 64;
			void *p = realloc(ids, nc * sizeof(*ids));
			if (!p) {
				rc = err_set(e, -ENOMEM, "out of memory");
				goto out;
			}
			ids = p;
			cap = nc;
		}
		memcpy(ids[k++], id, sizeof(id));
	}
	qsort(ids, k, sizeof(*ids), runlog_cmp_id);
	size_t from = k > RUNLOG_LIST_MAX ? k - RUNLOG_LIST_MAX : 0;
	if (k - from && !(*out = calloc(k - from, sizeof(**out)))) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = from; i < k; i++) {
		json_t *events = NULL;
		if (runlog_load(dir, ids[i], &events, NULL, NULL) < 0)
			continue;
		runlog_summarize(events, ids[i], &(*out)[(*n)++]);
		json_decref(events);
	}
	qsort(*out, *n, sizeof(**out), runlog_cmp);
out:
	free(ids);
	closedir(d);
	return rc;
}
