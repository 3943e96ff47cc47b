/* Undo: the journal an apply leaves with the run, and putting it back.
 *
 * undo.json (in the run's undo dir) lists, in the order apply did them, each
 * host step: the path, what was there before (type, mode, owner, hash or
 * target; a file's bytes in files/<N>) and what apply left. Undo walks it
 * newest first; a path whose host state is no longer what apply left was
 * changed since, so it is refused and left alone, and stays in the journal.
 * The same restore step rolls back a failed apply. The journal is our own
 * file in the user's state dir, but it is still read defensively: paths are
 * checked like any other, and the restore is confined beneath the root's fd. */
#include "workspace/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io.h"

#define UNDO_JSON_MAX (64u << 20)

static int undo_copy_backup(const struct ws_journal *jn, const struct ws_jent *j, int pfd,
			    const char *tmp)
{
	char bp[4200];
	snprintf(bp, sizeof(bp), "%s/files/%ld", jn->dir, j->backup);
	int src = open(bp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return -errno;
	int fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -errno : 0;
	uint8_t sha[32];
	if (rc == 0)
		rc = ws_sha256_copy(src, fd, sha, NULL);
	if (rc == 0 && memcmp(sha, j->before.sha256, 32))
		rc = -EIO;   /* the backup is damaged: do not put it in place */
	if (rc == 0 && fchmod(fd, j->before.mode) < 0)
		rc = -errno;
	if (rc == 0 && fchown(fd, j->before.uid, j->before.gid) < 0 && geteuid() == 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	close(src);
	if (rc < 0 && fd >= 0)
		unlinkat(pfd, tmp, 0);
	return rc;
}

int ws_journal_restore(int rootfd, const struct ws_journal *jn, const struct ws_jent *j)
{
	const char *name;
	int pfd = ws_open_parent(rootfd, j->path, &name);
	if (pfd < 0)
		return pfd == -ENOENT && j->after.type == WORKSPACE_NONE ? -EBUSY : pfd;
	struct ws_state now;
	int rc = ws_state_at(pfd, name, &now);
	if (rc == 0 && !ws_state_same(&now, &j->after))
		rc = -EBUSY;
	if (rc < 0)
		goto out;
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".ironclaw-undo-%ld.tmp", (long)getpid());
	unlinkat(pfd, tmp, 0);
	const struct ws_state *b = &j->before;
	if (now.type == WORKSPACE_DIR && b->type != WORKSPACE_DIR) {
		if (unlinkat(pfd, name, AT_REMOVEDIR) < 0) {
			rc = errno == ENOTEMPTY || errno == EEXIST ? -EBUSY : -errno;
			goto out;
		}
	} else if (now.type != WORKSPACE_NONE && now.type != WORKSPACE_DIR &&
		   (b->type == WORKSPACE_NONE || b->type == WORKSPACE_DIR)) {
		if (unlinkat(pfd, name, 0) < 0) {
			rc = -errno;
			goto out;
		}
	}
	if (b->type == WORKSPACE_FILE && now.type == WORKSPACE_FILE && j->backup < 0 &&
	    !memcmp(now.sha256, b->sha256, WORKSPACE_SHA256_LEN)) {
		/* a mode change: the bytes are still the original ones */
		int fd = openat(pfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
		rc = fd < 0 ? -errno : fchmod(fd, b->mode) < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	} else if (b->type == WORKSPACE_FILE) {
		rc = undo_copy_backup(jn, j, pfd, tmp);
		if (rc == 0 && renameat(pfd, tmp, pfd, name) < 0) {
			rc = -errno;
			unlinkat(pfd, tmp, 0);
		}
	} else if (b->type == WORKSPACE_SYMLINK) {
		rc = symlinkat(b->target, pfd, tmp) < 0 ? -errno : 0;
		if (rc == 0)
			fchownat(pfd, tmp, b->uid, b->gid, AT_SYMLINK_NOFOLLOW);
		if (rc == 0 && renameat(pfd, tmp, pfd, name) < 0) {
			rc = -errno;
			unlinkat(pfd, tmp, 0);
		}
	} else if (b->type == WORKSPACE_DIR) {
		if (now.type != WORKSPACE_DIR && mkdirat(pfd, name, 0700) < 0) {
			rc = -errno;
			goto out;
		}
		int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			goto out;
		}
		if (fchown(fd, b->uid, b->gid) < 0 && geteuid() == 0)
			rc = -errno;
		if (rc == 0 && fchmod(fd, b->mode) < 0)
			rc = -errno;
		close(fd);
	}
	if (rc == 0)
		fsync(pfd);
out:
	close(pfd);
	return rc;
}

/* ---- undo.json ---- */

static const char *undo_type_name(enum workspace_type t)
{
	return t == WORKSPACE_FILE ? "file" : t == WORKSPACE_DIR ? "dir"
		: t == WORKSPACE_SYMLINK ? "symlink" : "none";
}

static json_t *undo_state_json(const struct ws_state *s)
{
	char hex[65];
	workspace_hex(s->sha256, hex);
	json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I}", "type", undo_type_name(s->type),
			      "mode", (int)s->mode, "uid", (json_int_t)s->uid, "gid", (json_int_t)s->gid,
			      "size", (json_int_t)s->size);
	if (o && s->type == WORKSPACE_FILE)
		json_object_set_new(o, "sha256", json_string(hex));
	if (o && s->type == WORKSPACE_SYMLINK)
		json_object_set_new(o, "target", json_stringn(s->target, strlen(s->target)));
	return o;
}

int ws_journal_save(const struct ws_journal *jn, const char *root, struct err *e)
{
	json_t *arr = json_array();
	json_t *doc = json_pack("{s:i, s:s, s:o}", "version", 1, "root", root, "entries", arr);
	int rc = doc ? 0 : -ENOMEM;
	for (size_t i = 0; i < jn->n && rc == 0; i++) {
		const struct ws_jent *j = &jn->v[i];
		json_t *o = json_pack("{s:s, s:o, s:o, s:I}", "path", j->path,
				      "before", undo_state_json(&j->before),
				      "after", undo_state_json(&j->after), "backup", (json_int_t)j->backup);
		if (!o || json_array_append_new(arr, o) < 0)
			rc = -ENOMEM;
	}
	char *text = rc == 0 ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return err_set(e, -ENOMEM, "saving the undo journal: a path is not UTF-8 or out of memory");
	char path[4200];
	snprintf(path, sizeof(path), "%s/undo.json", jn->dir);
	rc = io_write_file(path, text, strlen(text), 0600);
	free(text);
	if (rc < 0)
		return err_set(e, rc, "saving the undo journal %s: %s", path, strerror(-rc));
	return 0;
}

static int undo_state_parse(json_t *o, struct ws_state *s)
{
	const char *type = json_string_value(json_object_get(o, "type"));
	json_t *mode = json_object_get(o, "mode"), *uid = json_object_get(o, "uid");
	json_t *gid = json_object_get(o, "gid"), *size = json_object_get(o, "size");
	memset(s, 0, sizeof(*s));
	if (!type || !json_is_integer(mode) || !json_is_integer(uid) || !json_is_integer(gid) ||
	    !json_is_integer(size))
		return -EINVAL;
	s->type = !strcmp(type, "file") ? WORKSPACE_FILE : !strcmp(type, "dir") ? WORKSPACE_DIR
		: !strcmp(type, "symlink") ? WORKSPACE_SYMLINK : WORKSPACE_NONE;
	s->mode = (unsigned)json_integer_value(mode) & 0777;
	s->uid = (uid_t)json_integer_value(uid);
	s->gid = (gid_t)json_integer_value(gid);
	s->size = (uint64_t)json_integer_value(size);
	if (s->type == WORKSPACE_FILE) {
		const char *hex = json_string_value(json_object_get(o, "sha256"));
		if (!hex || strlen(hex) != 64)
			return -EINVAL;
		for (size_t i = 0; i < 32; i++) {
			unsigned v;
			if (sscanf(hex + 2 * i, "%2x", &v) != 1)
				return -EINVAL;
			s->sha256[i] = (uint8_t)v;
		}
	}
	if (s->type == WORKSPACE_SYMLINK) {
		const char *t = json_string_value(json_object_get(o, "target"));
		if (!t || strlen(t) > WORKSPACE_PATH_MAX)
			return -EINVAL;
		snprintf(s->target, sizeof(s->target), "%s", t);
	}
	return 0;
}

int ws_journal_load(struct ws_journal *jn, const char *dir, char *root, size_t root_cap,
		    struct err *e)
{
	memset(jn, 0, sizeof(*jn));
	snprintf(jn->dir, sizeof(jn->dir), "%s", dir);
	char path[4200];
	snprintf(path, sizeof(path), "%s/undo.json", dir);
	char *text = NULL;
	size_t len = 0;
	int rc = io_read_file(path, UNDO_JSON_MAX, &text, &len);
	if (rc == -ENOENT)
		return err_set(e, -ENOENT, "nothing to undo: %s has no undo journal (the run applied "
			       "nothing, or it was undone already)", dir);
	if (rc < 0)
		return err_set(e, rc, "reading %s: %s", path, strerror(-rc));
	json_error_t je;
	json_t *doc = json_loadb(text, len, 0, &je);
	free(text);
	json_t *entries = json_object_get(doc, "entries");
	const char *r = json_string_value(json_object_get(doc, "root"));
	if (!doc || !json_is_array(entries) || !r || json_integer_value(json_object_get(doc, "version")) != 1) {
		json_decref(doc);
		return err_set(e, -EINVAL, "%s is not an undo journal IronClaw wrote", path);
	}
	snprintf(root, root_cap, "%s", r);
	size_t i;
	json_t *o;
	json_array_foreach(entries, i, o) {
		const char *p = json_string_value(json_object_get(o, "path"));
		json_t *bk = json_object_get(o, "backup");
		struct ws_state before, after;
		if (!p || workspace_path_check(p, strlen(p)) < 0 || !json_is_integer(bk) ||
		    json_integer_value(bk) < -1 || json_integer_value(bk) > (1 << 30) ||
		    undo_state_parse(json_object_get(o, "before"), &before) < 0 ||
		    undo_state_parse(json_object_get(o, "after"), &after) < 0) {
			rc = err_set(e, -EINVAL, "%s: entry %zu is malformed", path, i);
			break;
		}
		if (jn->n == jn->cap) {
			size_t cap = jn->cap ? jn->cap * 2 : 32;
			struct ws_jent *v = realloc(jn->v, cap * sizeof(*v));
			if (!v) {
				rc = err_set(e, -ENOMEM, "out of memory");
				break;
			}
			jn->v = v;
			jn->cap = cap;
		}
		struct ws_jent *j = &jn->v[jn->n];
		j->path = strdup(p);
		if (!j->path) {
			rc = err_set(e, -ENOMEM, "out of memory");
			break;
		}
		j->before = before;
		j->after = after;
		j->backup = (long)json_integer_value(bk);
		jn->n++;
	}
	json_decref(doc);
	if (rc < 0)
		ws_journal_free(jn);
	return rc;
}

int workspace_undo(const char *undo_dir, struct workspace_undo_report *r, struct err *e)
{
	struct ws_journal jn;
	char root[4096];
	memset(r, 0, sizeof(*r));
	int rc = ws_journal_load(&jn, undo_dir, root, sizeof(root), e);
	if (rc < 0)
		return rc;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = err_set(e, -errno, "opening the workspace %s: %s", root, strerror(errno));
		ws_journal_free(&jn);
		return rc;
	}
	unsigned char *keep = calloc(jn.n ? jn.n : 1, 1);
	if (!keep) {
		close(rootfd);
		ws_journal_free(&jn);
		return err_set(e, -ENOMEM, "out of memory");
	}
	for (size_t i = jn.n; i-- > 0;) {
		int one = ws_journal_restore(rootfd, &jn, &jn.v[i]);
		if (one == 0) {
			r->restored++;
			continue;
		}
		keep[i] = 1;
		/* a directory apply created that still holds what the user added
		 * is not a change of its own worth listing */
		if (!(one == -EBUSY && jn.v[i].before.type == WORKSPACE_NONE &&
		      jn.v[i].after.type == WORKSPACE_DIR && r->refused)) {
			size_t l = strlen(r->refused_paths);
			snprintf(r->refused_paths + l, sizeof(r->refused_paths) - l, "%s%s", l ? ", " : "",
				 jn.v[i].path);
		}
		r->refused++;
	}
	close(rootfd);
	/* keep only what is still to be undone */
	size_t w = 0;
	for (size_t i = 0; i < jn.n; i++) {
		if (keep[i])
			jn.v[w++] = jn.v[i];
		else
			free(jn.v[i].path);
	}
	jn.n = w;
	free(keep);
	char path[4200], done[4200];
	snprintf(path, sizeof(path), "%s/undo.json", undo_dir);
	if (w) {
		rc = ws_journal_save(&jn, root, e);
		if (rc == 0)
			rc = err_set(e, -EBUSY, "%zu path%s changed since the apply and %s left alone: %s",
				     r->refused, r->refused == 1 ? "" : "s", r->refused == 1 ? "was" : "were",
				     r->refused_paths);
	} else {
		snprintf(done, sizeof(done), "%s/undone.json", undo_dir);
		if (rename(path, done) < 0)
			rc = err_set(e, -errno, "marking %s undone: %s", path, strerror(errno));
		snprintf(done, sizeof(done), "%s/files", undo_dir);
		workspace_remove_tree(done);
	}
	ws_journal_free(&jn);
	return rc;
}
