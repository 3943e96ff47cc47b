/* The append-only JSONL audit log.
 *
 * One JSON object per line, written with O_APPEND in a single write so lines
 * from concurrent ironclaw processes never interleave. Past AUDIT_LOG_MAX_BYTES
 * the file is renamed to <path>.1 (replacing the previous one), so the log
 * costs at most twice the cap on disk. Loading skips lines that are too long
 * or not the expected shape: the log is ours, but a damaged line must not stop
 * `ironclaw audit`. */
#include "audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dirs.h"
#include "core/io.h"

const char *audit_log_path(void)
{
	const char *p = getenv("IRONCLAW_AUDIT_LOG");
	return p && p[0] == '/' ? p : AUDIT_LOG_DEFAULT;
}

static int audit_mkdir_parent(const char *path)
{
	char dir[512];
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	return dirs_make_prefixes(dir, 0700);
}

int audit_log_append(const char *path, const struct audit_event *ev, struct err *e)
{
	int rc = 0, fd = -1;
	char *line = NULL;
	json_t *o = json_pack("{s:I, s:s, s:s, s:i, s:I, s:s, s:s}", "time", (json_int_t)ev->time, "kind", ev->kind,
			      "vm", ev->vm_id, "pid", ev->pid, "syscall", (json_int_t)ev->syscall, "syscall_name",
			      ev->syscall_name, "detail", ev->detail);
	if (!o || !(line = json_dumps(o, JSON_COMPACT))) {
		rc = err_set(e, -ENOMEM, "audit: encoding an event failed");
		goto out;
	}
	if ((rc = audit_mkdir_parent(path))) {
		err_set(e, rc, "audit: creating the directory of %s: %s", path, strerror(-rc));
		goto out;
	}
	struct stat st;
	if (stat(path, &st) == 0 && st.st_size >= (off_t)AUDIT_LOG_MAX_BYTES) {
		char old[600];
		snprintf(old, sizeof(old), "%s.1", path);
		rename(path, old);
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = err_set(e, -errno, "audit: opening %s: %s", path, strerror(errno));
		goto out;
	}
	size_t n = strlen(line);
	line[n] = '\n';   /* json_dumps leaves room: we replace the NUL */
	rc = io_write_all(fd, line, n + 1);
	if (rc < 0)
		err_set(e, rc, "audit: writing %s: %s", path, strerror(-rc));
	else
		rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(line);
	json_decref(o);
	return rc;
}

static void audit_copy(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	snprintf(dst, len, "%s", s ? s : "");
}

static void audit_load_one(const char *path, struct audit_ring *r)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	char line[AUDIT_LINE_MAX];
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] != '\n' && !feof(f)) {
			/* Over-long line: skip the rest of it. */
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		json_t *o = json_loadb(line, n, 0, NULL);
		if (!json_is_object(o) || !json_is_string(json_object_get(o, "kind"))) {
			json_decref(o);
			continue;
		}
		struct audit_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.time = json_integer_value(json_object_get(o, "time"));
		ev.pid = (int)json_integer_value(json_object_get(o, "pid"));
		json_t *sc = json_object_get(o, "syscall");
		ev.syscall = json_is_integer(sc) ? (long)json_integer_value(sc) : -1;
		audit_copy(ev.kind, sizeof(ev.kind), o, "kind");
		audit_copy(ev.vm_id, sizeof(ev.vm_id), o, "vm");
		audit_copy(ev.syscall_name, sizeof(ev.syscall_name), o, "syscall_name");
		audit_copy(ev.detail, sizeof(ev.detail), o, "detail");
		audit_ring_push(r, &ev);
		json_decref(o);
	}
	fclose(f);
}

int audit_log_load(const char *path, struct audit_ring *r, struct err *e)
{
	char old[600];
	if (snprintf(old, sizeof(old), "%s.1", path) >= (int)sizeof(old))
		return err_set(e, -ENAMETOOLONG, "audit: log path too long");
	audit_load_one(old, r);
	if (access(path, R_OK) && errno != ENOENT)
		return err_set(e, -errno, "audit: reading %s: %s", path, strerror(errno));
	audit_load_one(path, r);
	return 0;
}
