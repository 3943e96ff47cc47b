/* Changes: what the run did to the workspace, and whether the host still looks
 * the way it did at copy-in.
 *
 * The copy-in manifest and the staging manifest are both sorted, so one merge
 * walk yields every created, modified and deleted path. Each change is then
 * checked against the host tree as it is now: a path whose type, mode, hash or
 * symlink target is no longer what was copied in (or, for a created path,
 * where something now exists) is a conflict, shown on the card and never
 * overwritten. The check is repeated by apply right before writing. */
#include "workspace/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned changes_what(const struct workspace_entry *o, const struct workspace_entry *n)
{
	if (o->type != n->type)
		return WORKSPACE_CHANGE_TYPE;
	unsigned w = 0;
	if (o->type == WORKSPACE_FILE &&
	    (o->size != n->size || memcmp(o->sha256, n->sha256, WORKSPACE_SHA256_LEN)))
		w |= WORKSPACE_CHANGE_CONTENT;
	if (o->type == WORKSPACE_SYMLINK && strcmp(o->target, n->target))
		w |= WORKSPACE_CHANGE_TARGET;
	if (o->type != WORKSPACE_SYMLINK && o->mode != n->mode)
		w |= WORKSPACE_CHANGE_MODE;
	return w;
}

/* A directory to delete must hold nothing the run did not see (excluded
 * files stay on the host, so the directory stays too). */
static int changes_dir_has_unseen(const struct workspace_changes *c, int rootfd, const char *path)
{
	int fd = ws_open_beneath(rootfd, path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return 1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 1;
	}
	int unseen = 0;
	struct dirent *de;
	char p[WORKSPACE_PATH_MAX * 2 + 2];
	while (!unseen && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		unseen = !workspace_manifest_find(c->before, p);
	}
	closedir(d);
	return unseen;
}

static void changes_check_one(const struct workspace_changes *c, int rootfd,
			      struct workspace_change *ch)
{
	struct ws_state s;
	ch->conflict = 0;
	ch->conflict_why[0] = '\0';
	int rc = ws_state_beneath(rootfd, ch->path, &s);
	const char *why = NULL;
	if (rc == -ELOOP || rc == -EXDEV || rc == -ENOTDIR) {
		why = "a symlink or file on the host is in the way of this path";
	} else if (rc < 0) {
		snprintf(ch->conflict_why, sizeof(ch->conflict_why), "cannot check the host file: %s",
			 strerror(-rc));
		ch->conflict = 1;
		return;
	} else if (!ch->old) {
		if (s.type == WORKSPACE_DIR && ch->new_->type == WORKSPACE_DIR)
			return;   /* the same directory made on both sides: harmless */
		if (s.type != WORKSPACE_NONE || s.mode)
			why = "created on the host since copy-in";
	} else if (ch->old->type == WORKSPACE_DIR) {
		if (s.type != WORKSPACE_DIR)
			why = s.type == WORKSPACE_NONE ? "removed on the host since copy-in"
						       : "replaced on the host since copy-in";
		else if (!ch->new_ || ch->new_->type != WORKSPACE_DIR) {
			if (changes_dir_has_unseen(c, rootfd, ch->path))
				why = "the host directory holds files that were not copied in";
		}
	} else if (!ws_state_is(&s, ch->old)) {
		why = s.type == WORKSPACE_NONE && !s.mode ? "removed on the host since copy-in"
							  : "changed on the host since copy-in";
	}
	if (why) {
		ch->conflict = 1;
		snprintf(ch->conflict_why, sizeof(ch->conflict_why), "%s", why);
	}
}

static size_t changes_check(struct workspace_changes *c, int rootfd)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++) {
		changes_check_one(c, rootfd, &c->v[i]);
		n += (size_t)c->v[i].conflict;
	}
	c->n_conflicts = n;
	return n;
}

size_t workspace_changes_recheck(struct workspace_changes *c)
{
	int rootfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		for (size_t i = 0; i < c->n; i++) {
			c->v[i].conflict = 1;
			snprintf(c->v[i].conflict_why, sizeof(c->v[i].conflict_why),
				 "the workspace cannot be opened: %s", strerror(errno));
		}
		c->n_conflicts = c->n;
		return c->n;
	}
	size_t n = changes_check(c, rootfd);
	close(rootfd);
	return n;
}

static int changes_push(struct workspace_changes *c, size_t *cap, const struct workspace_entry *o,
			const struct workspace_entry *n)
{
	unsigned what = o && n ? changes_what(o, n) : 0;
	if (o && n && !what)
		return 0;
	if (c->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		struct workspace_change *v = realloc(c->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		*cap = nc;
	}
	struct workspace_change *ch = &c->v[c->n++];
	memset(ch, 0, sizeof(*ch));
	ch->old = o;
	ch->new_ = n;
	ch->path = o ? o->path : n->path;
	ch->kind = !o ? WORKSPACE_CREATED : !n ? WORKSPACE_DELETED : WORKSPACE_MODIFIED;
	ch->what = what;
	return 0;
}

int workspace_changes_compute(const char *root, const struct workspace_manifest *before,
			      const char *staging, const struct workspace_manifest *after,
			      struct workspace_changes *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	out->root = root;
	out->staging = staging;
	out->before = before;
	out->after = after;
	size_t cap = 0, i = 0, j = 0;
	int rc = 0;
	while (rc == 0 && (i < before->n || j < after->n)) {
		int cmp = i == before->n ? 1 : j == after->n ? -1
			: strcmp(before->v[i].path, after->v[j].path);
		if (cmp == 0)
			rc = changes_push(out, &cap, &before->v[i++], &after->v[j++]);
		else if (cmp < 0)
			rc = changes_push(out, &cap, &before->v[i++], NULL);
		else
			rc = changes_push(out, &cap, NULL, &after->v[j++]);
	}
	if (rc < 0) {
		workspace_changes_free(out);
		return err_set(e, rc, "comparing the workspace: out of memory");
	}
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int stagefd = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0 || stagefd < 0) {
		rc = err_set(e, -errno, "opening %s: %s", rootfd < 0 ? root : staging, strerror(errno));
		goto out;
	}
	changes_check(out, rootfd);
	for (size_t k = 0; k < out->n && rc == 0; k++) {
		rc = ws_card_diff(out, &out->v[k], rootfd, stagefd);
		out->added += out->v[k].added;
		out->deleted += out->v[k].deleted;
	}
	if (rc < 0)
		err_set(e, rc, "building the diff card: %s", strerror(-rc));
	workspace_changes_hash(out, NULL, out->effect);
out:
	if (rootfd >= 0)
		close(rootfd);
	if (stagefd >= 0)
		close(stagefd);
	if (rc < 0)
		workspace_changes_free(out);
	return rc;
}

static void hash_field(EVP_MD_CTX *md, const void *p, size_t n)
{
	char len[24];
	int l = snprintf(len, sizeof(len), "%zu:", n);
	EVP_DigestUpdate(md, len, (size_t)l);
	EVP_DigestUpdate(md, p, n);
}

static void hash_side(EVP_MD_CTX *md, const struct workspace_entry *en)
{
	char f[64];
	if (!en) {
		hash_field(md, "none", 4);
		return;
	}
	int l = snprintf(f, sizeof(f), "%d %o %llu", (int)en->type, en->mode,
			 (unsigned long long)en->size);
	hash_field(md, f, (size_t)l);
	hash_field(md, en->sha256, en->type == WORKSPACE_FILE ? WORKSPACE_SHA256_LEN : 0);
	hash_field(md, en->target ? en->target : "", en->target ? strlen(en->target) : 0);
}

void workspace_changes_hash(const struct workspace_changes *c, const unsigned char *selected,
			    uint8_t out[WORKSPACE_SHA256_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned len = 0;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		memset(out, 0, WORKSPACE_SHA256_LEN);
		EVP_MD_CTX_free(md);
		return;
	}
	hash_field(md, "ironclaw.workspace.changes.v1", 29);
	for (size_t i = 0; i < c->n; i++) {
		if (selected && !selected[i])
			continue;
		const struct workspace_change *ch = &c->v[i];
		hash_field(md, ch->path, strlen(ch->path));
		char k = (char)ch->kind;
		hash_field(md, &k, 1);
		hash_side(md, ch->old);
		hash_side(md, ch->new_);
	}
	EVP_DigestFinal_ex(md, out, &len);
	EVP_MD_CTX_free(md);
}

void workspace_changes_free(struct workspace_changes *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].diff);
	free(c->v);
	memset(c, 0, sizeof(*c));
}
