/* Apply: the approved changes onto the host workspace, all or nothing.
 *
 * Every change becomes host steps, run in an order that always has a place to
 * write: removals of files and symlinks, then removals of directories (deepest
 * first), then new directories (shallowest first), then files and symlinks put
 * in place and modes changed. Each step re-checks the host path against the
 * copy-in manifest right before it writes, resolves it beneath the root's fd
 * without symlinks or "..", and records what it replaced in a journal (file
 * bytes copied to a backup first). A file goes in as a temp file in its own
 * directory, written from staging (its hash checked against the card), given
 * its mode and owner, fsynced and renamed over the old name, then the
 * directory is fsynced. If any step fails, the journal is played back in
 * reverse, so the host is as it was; if all succeed, the journal is saved for
 * `ironclaw undo`. */
#include "workspace/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum op_kind { OP_REMOVE, OP_RMDIR, OP_MKDIR, OP_PUT, OP_CHMOD };

struct apply {
	struct workspace_changes *c;
	const struct workspace_apply_options *o;
	int rootfd, stagefd, backupfd;
	struct ws_journal jn;
	unsigned step;
	unsigned long tmp_seq;
	struct err *e;
};

int ws_state_same(const struct ws_state *a, const struct ws_state *b)
{
	if (a->type != b->type || a->mode != b->mode)
		return 0;
	if (a->type == WORKSPACE_FILE)
		return a->size == b->size && !memcmp(a->sha256, b->sha256, WORKSPACE_SHA256_LEN);
	if (a->type == WORKSPACE_SYMLINK)
		return !strcmp(a->target, b->target);
	return 1;
}

static int apply_journal_add(struct ws_journal *jn, const char *path, const struct ws_state *before,
			     const struct ws_state *after, long backup)
{
	if (jn->n == jn->cap) {
		size_t cap = jn->cap ? jn->cap * 2 : 32;
		struct ws_jent *v = realloc(jn->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		jn->v = v;
		jn->cap = cap;
	}
	struct ws_jent *j = &jn->v[jn->n];
	j->path = strdup(path);
	if (!j->path)
		return -ENOMEM;
	j->before = *before;
	j->after = *after;
	j->backup = backup;
	jn->n++;
	return 0;
}

void ws_journal_free(struct ws_journal *jn)
{
	for (size_t i = 0; i < jn->n; i++)
		free(jn->v[i].path);
	free(jn->v);
	jn->v = NULL;
	jn->n = jn->cap = 0;
}

/* Copies from src to a new file dst (in dstdir), returning its hash. */
static int apply_copy(int src, int dstdir, const char *dst, unsigned mode, uint8_t sha[32],
		      uint64_t *size, int *out_fd)
{
	int fd = openat(dstdir, dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = ws_sha256_copy(src, fd, sha, size);
	if (rc == 0 && fchmod(fd, mode) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc < 0 || !out_fd) {
		close(fd);
		if (rc < 0)
			unlinkat(dstdir, dst, 0);
	} else {
		*out_fd = fd;
	}
	return rc;
}

static int apply_owner(int fd, uid_t uid, gid_t gid)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid == uid && st.st_gid == gid)
		return 0;
	return fchown(fd, uid, gid) < 0 ? -errno : 0;
}

/* Backs up the file at (dfd, name) into the journal's dir; returns its index. */
static long apply_backup(struct apply *a, int dfd, const char *name, const struct ws_state *s)
{
	if (s->type != WORKSPACE_FILE)
		return -1;
	int src = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (src < 0)
		return -errno;
	long idx = (long)a->jn.n;
	char bn[32];
	snprintf(bn, sizeof(bn), "%ld", idx);
	unlinkat(a->backupfd, bn, 0);
	uint8_t sha[32];
	uint64_t size;
	int rc = apply_copy(src, a->backupfd, bn, 0600, sha, &size, NULL);
	close(src);
	if (rc < 0)
		return rc;
	if (size != s->size || memcmp(sha, s->sha256, 32))
		return -EBUSY;   /* it changed under us while we copied it */
	return idx;
}

static int apply_fault(struct apply *a, const char *path)
{
	unsigned step = a->step++;
	return a->o->fault ? a->o->fault(path, step, a->o->fault_ctx) : 0;
}

static int apply_conflict(struct apply *a, const char *path)
{
	return err_set(a->e, -EBUSY, "%s changed on the host while applying; nothing was applied",
		       path);
}

static void apply_tmpname(struct apply *a, char *out, size_t cap)
{
	snprintf(out, cap, ".ironclaw-%ld-%lu.tmp", (long)getpid(), a->tmp_seq++);
}

static int apply_mkdir_at(struct apply *a, int pfd, const char *name, const char *path, unsigned mode)
{
	struct stat pst;
	if (fstat(pfd, &pst) < 0)
		return -errno;
	if (mkdirat(pfd, name, 0700) < 0)
		return -errno;
	struct ws_state before = { 0 }, after = { .type = WORKSPACE_DIR, .mode = mode & 0777 };
	int rc = apply_journal_add(&a->jn, path, &before, &after, -1);
	if (rc < 0) {
		unlinkat(pfd, name, AT_REMOVEDIR);
		return rc;
	}
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = apply_owner(fd, pst.st_uid, pst.st_gid);
	if (rc == 0 && fchmod(fd, mode & 0777) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && fsync(pfd) < 0)
		rc = -errno;
	return rc;
}

/* Opens the parent of path, creating missing directories (a file approved
 * without the new directory it lives in still needs one). */
static int apply_parent(struct apply *a, const char *path, const char **name)
{
	int pfd = ws_open_parent(a->rootfd, path, name);
	if (pfd != -ENOENT)
		return pfd;
	char dir[WORKSPACE_PATH_MAX + 1];
	snprintf(dir, sizeof(dir), "%.*s", (int)(*name - path - 1), path);
	const char *dname;
	int gp = apply_parent(a, dir, &dname);
	if (gp < 0)
		return gp;
	const struct workspace_entry *d = workspace_manifest_find(a->c->after, dir);
	int rc = apply_mkdir_at(a, gp, dname, dir, d && d->type == WORKSPACE_DIR ? d->mode : 0755);
	close(gp);
	if (rc < 0)
		return rc;
	return ws_open_parent(a->rootfd, path, name);
}

static int apply_put(struct apply *a, const struct workspace_change *ch, int pfd, const char *name,
		     const struct ws_state *before)
{
	const struct workspace_entry *n = ch->new_;
	struct stat pst;
	if (fstat(pfd, &pst) < 0)
		return -errno;
	/* ownership follows the workspace, not this process */
	uid_t uid = before->type != WORKSPACE_NONE ? before->uid : pst.st_uid;
	gid_t gid = before->type != WORKSPACE_NONE ? before->gid : pst.st_gid;
	long backup = apply_backup(a, pfd, name, before);
	if (backup < -1)
		return (int)backup;
	char tmp[64];
	apply_tmpname(a, tmp, sizeof(tmp));
	struct ws_state after = { .type = n->type, .mode = n->type == WORKSPACE_SYMLINK ? 0777 : n->mode,
				  .size = n->size, .uid = uid, .gid = gid };
	int rc;
	if (n->type == WORKSPACE_SYMLINK) {
		snprintf(after.target, sizeof(after.target), "%s", n->target);
		rc = symlinkat(n->target, pfd, tmp) < 0 ? -errno : 0;
		if (rc == 0 && fchownat(pfd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			unlinkat(pfd, tmp, 0);
		}
	} else {
		int src = ws_open_beneath(a->stagefd, ch->path, O_RDONLY, 0);
		if (src < 0)
			return src;
		int fd = -1;
		uint64_t size;
		rc = apply_copy(src, pfd, tmp, n->mode, after.sha256, &size, &fd);
		close(src);
		if (rc == 0 && (size != n->size || memcmp(after.sha256, n->sha256, 32)))
			rc = -EIO;   /* staging is not what the card showed */
		if (rc == 0)
			rc = apply_owner(fd, uid, gid);
		if (fd >= 0) {
			close(fd);
			if (rc < 0)
				unlinkat(pfd, tmp, 0);
		}
	}
	if (rc < 0)
		return rc;
	/* Record first: if the rename happened but the journal could not grow,
	 * rollback would not know to undo it. */
	rc = apply_journal_add(&a->jn, ch->path, before, &after, backup);
	if (rc == 0 && renameat(pfd, tmp, pfd, name) < 0) {
		rc = -errno;
		free(a->jn.v[--a->jn.n].path);
	}
	if (rc < 0) {
		unlinkat(pfd, tmp, 0);
		return rc;
	}
	return fsync(pfd) < 0 ? -errno : 0;
}

static int apply_chmod(struct apply *a, const struct workspace_change *ch, int pfd, const char *name,
		       const struct ws_state *before)
{
	int dir = before->type == WORKSPACE_DIR;
	int fd = openat(pfd, name, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) |
			O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ws_state after = *before;
	after.mode = ch->new_->mode;
	int rc = apply_journal_add(&a->jn, ch->path, before, &after, -1);
	if (rc == 0 && fchmod(fd, ch->new_->mode) < 0) {
		rc = -errno;
		free(a->jn.v[--a->jn.n].path);
	}
	close(fd);
	return rc;
}

static int apply_step(struct apply *a, const struct workspace_change *ch, enum op_kind op)
{
	int rc = apply_fault(a, ch->path);
	if (rc < 0)
		return err_set(a->e, rc, "applying %s: %s (injected)", ch->path, strerror(-rc));
	const char *name;
	int pfd = op == OP_PUT || op == OP_MKDIR ? apply_parent(a, ch->path, &name)
						 : ws_open_parent(a->rootfd, ch->path, &name);
	if (pfd < 0)
		return err_set(a->e, pfd, "applying %s: %s", ch->path,
			       pfd == -ELOOP || pfd == -EXDEV ? "the path goes through a symlink on the host"
							      : strerror(-pfd));
	struct ws_state before;
	rc = ws_state_at(pfd, name, &before);
	if (rc < 0) {
		err_set(a->e, rc, "applying %s: %s", ch->path, strerror(-rc));
		goto out;
	}
	/* What must be there now: the copy-in entry for the first step touching
	 * a path; nothing, once an earlier step (type change) removed it. */
	const struct workspace_entry *want = ch->old;
	if (want && ((op == OP_PUT && want->type == WORKSPACE_DIR) ||
		     (op == OP_MKDIR && want->type != WORKSPACE_DIR)))
		want = NULL;
	int ok = want ? (want->type == WORKSPACE_DIR ? before.type == WORKSPACE_DIR
			 : ws_state_is(&before, want))
		      : before.type == WORKSPACE_NONE && !before.mode;
	if (op == OP_MKDIR && !want && before.type == WORKSPACE_DIR)
		goto out;   /* the host made the same directory: nothing to do */
	if (!ok) {
		rc = apply_conflict(a, ch->path);
		goto out;
	}
	switch (op) {
	case OP_REMOVE:
	case OP_RMDIR: {
		long backup = apply_backup(a, pfd, name, &before);
		struct ws_state none = { 0 };
		rc = backup < -1 ? (int)backup : apply_journal_add(&a->jn, ch->path, &before, &none, backup);
		if (rc == 0 && unlinkat(pfd, name, op == OP_RMDIR ? AT_REMOVEDIR : 0) < 0) {
			rc = -errno;
			free(a->jn.v[--a->jn.n].path);
		}
		if (rc == 0 && fsync(pfd) < 0)
			rc = -errno;
		break;
	}
	case OP_MKDIR:
		rc = apply_mkdir_at(a, pfd, name, ch->path, ch->new_->mode);
		break;
	case OP_PUT:
		rc = apply_put(a, ch, pfd, name, &before);
		break;
	case OP_CHMOD:
		rc = apply_chmod(a, ch, pfd, name, &before);
		break;
	}
	if (rc == -EBUSY)
		rc = apply_conflict(a, ch->path);
	else if (rc < 0)
		err_set(a->e, rc, "applying %s: %s", ch->path, strerror(-rc));
out:
	close(pfd);
	return rc;
}

/* Which step a change needs in a phase, or -1. */
static int apply_op_for(const struct workspace_change *ch, enum op_kind phase)
{
	enum workspace_type o = ch->old ? ch->old->type : WORKSPACE_NONE;
	enum workspace_type n = ch->new_ ? ch->new_->type : WORKSPACE_NONE;
	int retype = o != n;
	switch (phase) {
	case OP_REMOVE:
		return o != WORKSPACE_NONE && o != WORKSPACE_DIR && (retype || n == WORKSPACE_NONE) &&
		       n != WORKSPACE_FILE && n != WORKSPACE_SYMLINK ? OP_REMOVE : -1;
	case OP_RMDIR:
		return o == WORKSPACE_DIR && n != WORKSPACE_DIR ? OP_RMDIR : -1;
	case OP_MKDIR:
		return n == WORKSPACE_DIR && o != WORKSPACE_DIR ? OP_MKDIR : -1;
	default:
		if (n == WORKSPACE_NONE || (n == WORKSPACE_DIR && o != WORKSPACE_DIR))
			return -1;
		if (o == n && !(ch->what & (WORKSPACE_CHANGE_CONTENT | WORKSPACE_CHANGE_TARGET)))
			return OP_CHMOD;
		return OP_PUT;
	}
}

static int apply_all(struct apply *a)
{
	const unsigned char *sel = a->o->selected;
	struct workspace_changes *c = a->c;
	int rc = 0;
	for (size_t i = 0; i < c->n && rc == 0; i++)
		if ((!sel || sel[i]) && apply_op_for(&c->v[i], OP_REMOVE) >= 0)
			rc = apply_step(a, &c->v[i], OP_REMOVE);
	for (size_t i = c->n; i-- > 0 && rc == 0;)
		if ((!sel || sel[i]) && apply_op_for(&c->v[i], OP_RMDIR) >= 0)
			rc = apply_step(a, &c->v[i], OP_RMDIR);
	for (size_t i = 0; i < c->n && rc == 0; i++)
		if ((!sel || sel[i]) && apply_op_for(&c->v[i], OP_MKDIR) >= 0)
			rc = apply_step(a, &c->v[i], OP_MKDIR);
	for (size_t i = 0; i < c->n && rc == 0; i++) {
		int op = (!sel || sel[i]) ? apply_op_for(&c->v[i], OP_PUT) : -1;
		if (op >= 0)
			rc = apply_step(a, &c->v[i], (enum op_kind)op);
	}
	return rc;
}

static void apply_rollback(struct apply *a)
{
	for (size_t i = a->jn.n; i-- > 0;)
		ws_journal_restore(a->rootfd, &a->jn, &a->jn.v[i]);
}

static int apply_backup_dir(struct apply *a)
{
	const char *dir = a->o->undo_dir;
	if (dir) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return err_set(a->e, -errno, "creating %s: %s", dir, strerror(errno));
		snprintf(a->jn.dir, sizeof(a->jn.dir), "%s", dir);
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(a->jn.dir, sizeof(a->jn.dir), "%s/ironclaw-apply-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(a->jn.dir))
			return err_set(a->e, -errno, "creating a backup dir: %s", strerror(errno));
	}
	char files[4200];
	snprintf(files, sizeof(files), "%s/files", a->jn.dir);
	if (mkdir(files, 0700) < 0 && errno != EEXIST)
		return err_set(a->e, -errno, "creating %s: %s", files, strerror(errno));
	a->backupfd = open(files, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (a->backupfd < 0)
		return err_set(a->e, -errno, "opening %s: %s", files, strerror(errno));
	return 0;
}

int workspace_apply(struct workspace_changes *c, const struct workspace_apply_options *o,
		    struct err *e)
{
	static const struct workspace_apply_options none = { 0 };
	struct apply a = { .c = c, .o = o ? o : &none, .rootfd = -1, .stagefd = -1, .backupfd = -1,
			   .e = e };
	int rc, n = 0;
	const unsigned char *sel = a.o->selected;
	/* conflicts first: with one, nothing is written at all */
	workspace_changes_recheck(c);
	char list[512] = "";
	size_t nconf = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (sel && !sel[i])
			continue;
		n++;
		if (c->v[i].conflict && nconf++ < 8) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%s", l ? ", " : "", c->v[i].path);
		}
	}
	if (nconf)
		return err_set(e, -EBUSY, "%zu conflict%s, nothing was applied: %s changed on the host "
			       "since copy-in", nconf, nconf == 1 ? "" : "s", list);
	if (!n)
		return 0;
	a.rootfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	a.stagefd = open(c->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (a.rootfd < 0 || a.stagefd < 0) {
		rc = err_set(e, -errno, "opening %s: %s", a.rootfd < 0 ? c->root : c->staging,
			     strerror(errno));
		goto out;
	}
	rc = apply_backup_dir(&a);
	if (rc == 0)
		rc = apply_all(&a);
	if (rc == 0 && o && o->undo_dir) {
		char root[4096];
		if (!realpath(c->root, root))
			snprintf(root, sizeof(root), "%s", c->root);
		rc = ws_journal_save(&a.jn, root, e);
	}
	if (rc < 0) {
		apply_rollback(&a);
		err_wrap(e, "the workspace is unchanged");
	}
out:
	if (a.backupfd >= 0)
		close(a.backupfd);
	/* backups are only worth keeping when undo can use them */
	if (a.jn.dir[0] && (rc < 0 || !(o && o->undo_dir))) {
		char files[4200];
		snprintf(files, sizeof(files), "%s/files", a.jn.dir);
		workspace_remove_tree(files);
		if (!(o && o->undo_dir))
			rmdir(a.jn.dir);
	}
	ws_journal_free(&a.jn);
	if (a.rootfd >= 0)
		close(a.rootfd);
	if (a.stagefd >= 0)
		close(a.stagefd);
	return rc < 0 ? rc : n;
}
