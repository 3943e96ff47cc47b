/* The diff card: what the user (or an external approver) sees before deciding.
 *
 * Text diffs come from libgit2 (git_patch_from_buffers), never from a diff of
 * our own. A side is binary when it holds a NUL byte in its first 8000 bytes
 * (git's own test) or is larger than WORKSPACE_CARD_DIFF_MAX; binary and large
 * files show size and SHA-256 instead. Symlinks show their targets, mode
 * changes old and new modes, conflicts their reason. Card text is built from
 * guest-controlled names and bytes, so control characters in paths and
 * targets are escaped before they reach a terminal. */
#include "workspace/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"

#define WORKSPACE_CARD_DIFF_MAX (1u << 20)     /* per side, for a text diff */
#define WORKSPACE_CARD_PATCH_MAX (256u << 10)  /* one file's diff on the card */
#define WORKSPACE_CARD_TEXT_MAX (64u << 20)

/* Reads a whole file of at most max bytes beneath dirfd; -EFBIG above. */
static int card_read(int dirfd, const char *rel, size_t max, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	int fd = ws_open_beneath(dirfd, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	struct buf b;
	buf_init(&b, max);
	char chunk[65536];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : 0;
			break;
		}
		rc = buf_append(&b, chunk, (size_t)n);
		if (rc < 0) {
			rc = rc == -EMSGSIZE ? -EFBIG : rc;
			break;
		}
	}
	close(fd);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	*out = (char *)buf_steal(&b, len);
	return 0;
}

static int card_is_binary(const char *p, size_t n)
{
	return n && memchr(p, 0, n < 8000 ? n : 8000) != NULL;
}

static int card_text_side(const struct workspace_entry *en, int dirfd, const char *path,
			  char **data, size_t *len, int *binary)
{
	*data = NULL;
	*len = 0;
	if (!en || en->type != WORKSPACE_FILE)
		return 0;
	if (en->size > WORKSPACE_CARD_DIFF_MAX) {
		*binary = 1;
		return 0;
	}
	int rc = card_read(dirfd, path, WORKSPACE_CARD_DIFF_MAX, data, len);
	if (rc == -EFBIG) {
		*binary = 1;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (card_is_binary(*data, *len))
		*binary = 1;
	return 0;
}

int ws_card_diff(struct workspace_changes *c, struct workspace_change *ch, int rootfd, int stagefd)
{
	(void)c;
	int old_file = ch->old && ch->old->type == WORKSPACE_FILE;
	int new_file = ch->new_ && ch->new_->type == WORKSPACE_FILE;
	if (!(ch->what & (WORKSPACE_CHANGE_CONTENT | WORKSPACE_CHANGE_TYPE)) && ch->kind == WORKSPACE_MODIFIED)
		return 0;
	if (!old_file && !new_file)
		return 0;
	char *o = NULL, *n = NULL;
	size_t ol = 0, nl = 0;
	int rc = 0;
	/* The host side only shows when it is still what was copied in. */
	if (old_file && !ch->conflict)
		rc = card_text_side(ch->old, rootfd, ch->path, &o, &ol, &ch->binary);
	else if (old_file)
		ch->binary = 1;
	if (rc == 0)
		rc = card_text_side(ch->new_, stagefd, ch->path, &n, &nl, &ch->binary);
	if (rc < 0 || ch->binary)
		goto out;
	git_libgit2_init();
	git_patch *patch = NULL;
	git_diff_options opts;
	git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
	opts.context_lines = 3;
	/* libgit2 adds the a/ b/ prefixes and /dev/null for a missing side */
	if (git_patch_from_buffers(&patch, old_file ? o : NULL, ol, ch->path, new_file ? n : NULL, nl,
				   ch->path, &opts) < 0) {
		rc = -EIO;
	} else {
		size_t ctx = 0, add = 0, del = 0;
		git_patch_line_stats(&ctx, &add, &del, patch);
		ch->added = (long)add;
		ch->deleted = (long)del;
		git_buf out = { 0 };
		if (git_patch_to_buf(&out, patch) == 0 && out.ptr) {
			size_t len = out.size;
			const char *note = "";
			if (len > WORKSPACE_CARD_PATCH_MAX) {
				len = WORKSPACE_CARD_PATCH_MAX;
				note = "\n[diff cut at 256 KiB]\n";
			}
			if (asprintf(&ch->diff, "%.*s%s", (int)len, out.ptr, note) < 0)
				ch->diff = NULL;
		}
		git_buf_dispose(&out);
		/* libgit2 may still judge a side binary (e.g. invalid text) */
		const git_diff_delta *d = git_patch_get_delta(patch);
		if (d && (d->flags & GIT_DIFF_FLAG_BINARY)) {
			ch->binary = 1;
			free(ch->diff);
			ch->diff = NULL;
			ch->added = ch->deleted = 0;
		}
		git_patch_free(patch);
	}
	git_libgit2_shutdown();
out:
	free(o);
	free(n);
	return rc;
}

/* ---- rendering ---- */

/* Appends s with control bytes escaped, so a guest-chosen name cannot drive
 * the terminal. */
static void card_put_safe(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f)
			buf_printf(b, "\\x%02x", ch);
		else
			buf_append(b, s, 1);
	}
}

static void card_put_diff(struct buf *b, const char *d)
{
	for (; *d; d++) {
		unsigned char ch = (unsigned char)*d;
		if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f)
			buf_printf(b, "\\x%02x", ch);
		else
			buf_append(b, d, 1);
	}
}

static const char *card_type_name(enum workspace_type t)
{
	return t == WORKSPACE_FILE ? "file" : t == WORKSPACE_DIR ? "directory"
		: t == WORKSPACE_SYMLINK ? "symlink" : "nothing";
}

void workspace_card_summary(const struct workspace_changes *c, char *out, size_t cap)
{
	if (!c->n) {
		snprintf(out, cap, "no changes");
		return;
	}
	int n = snprintf(out, cap, "%zu file%s changed, +%ld -%ld", c->n, c->n == 1 ? "" : "s",
			 c->added, c->deleted);
	if (c->n_conflicts && n > 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, ", %zu conflict%s", c->n_conflicts,
			 c->n_conflicts == 1 ? "" : "s");
}

static void card_side(struct buf *b, const struct workspace_entry *en)
{
	char hex[65];
	if (en->type == WORKSPACE_FILE) {
		workspace_hex(en->sha256, hex);
		buf_printf(b, "%llu bytes, sha256 %.16s", (unsigned long long)en->size, hex);
	} else if (en->type == WORKSPACE_SYMLINK) {
		buf_printf(b, "symlink -> ");
		card_put_safe(b, en->target);
	} else {
		buf_printf(b, "directory");
	}
}

static void card_line(struct buf *b, size_t i, const struct workspace_change *ch)
{
	const struct workspace_entry *en = ch->new_ ? ch->new_ : ch->old;
	buf_printf(b, "  [%zu] %c ", i + 1, (char)ch->kind);
	card_put_safe(b, ch->path);
	if (en->type == WORKSPACE_DIR)
		buf_printf(b, "/");
	if (ch->what & WORKSPACE_CHANGE_TYPE)
		buf_printf(b, "  %s -> %s", card_type_name(ch->old->type), card_type_name(ch->new_->type));
	if (en->type == WORKSPACE_SYMLINK && ch->kind != WORKSPACE_DELETED) {
		buf_printf(b, "  -> ");
		card_put_safe(b, en->target);
		if (ch->what & WORKSPACE_CHANGE_TARGET) {
			buf_printf(b, " (was -> ");
			card_put_safe(b, ch->old->target);
			buf_printf(b, ")");
		}
	}
	if (ch->what & WORKSPACE_CHANGE_MODE)
		buf_printf(b, "  mode %04o -> %04o", ch->old->mode, ch->new_->mode);
	else if (ch->kind == WORKSPACE_CREATED && en->type != WORKSPACE_SYMLINK)
		buf_printf(b, "  mode %04o", en->mode);
	if (ch->binary)
		buf_printf(b, "  (binary)");
	else if (ch->added || ch->deleted)
		buf_printf(b, "  +%ld -%ld", ch->added, ch->deleted);
	if (ch->conflict)
		buf_printf(b, "  CONFLICT");
	buf_printf(b, "\n");
}

char *workspace_card_text(const struct workspace_changes *c)
{
	struct buf b;
	buf_init(&b, WORKSPACE_CARD_TEXT_MAX);
	char sum[128], hex[65];
	workspace_card_summary(c, sum, sizeof(sum));
	buf_printf(&b, "workspace changes: %s\n", sum);
	for (size_t i = 0; i < c->n; i++)
		card_line(&b, i, &c->v[i]);
	for (size_t i = 0; i < c->n; i++) {
		const struct workspace_change *ch = &c->v[i];
		if (!ch->conflict)
			continue;
		buf_printf(&b, "CONFLICT [%zu] ", i + 1);
		card_put_safe(&b, ch->path);
		buf_printf(&b, ": %s; it will not be overwritten, and nothing is applied while a "
			   "conflict remains\n", ch->conflict_why);
	}
	workspace_hex(c->effect, hex);
	if (c->n)
		buf_printf(&b, "effect sha256 %s\n", hex);
	for (size_t i = 0; i < c->n; i++) {
		const struct workspace_change *ch = &c->v[i];
		if (ch->diff) {
			buf_printf(&b, "\n");
			card_put_diff(&b, ch->diff);
		} else if (ch->binary) {
			buf_printf(&b, "\nbinary ");
			card_put_safe(&b, ch->path);
			buf_printf(&b, ": ");
			if (ch->old && ch->old->type == WORKSPACE_FILE) {
				card_side(&b, ch->old);
				buf_printf(&b, " -> ");
			}
			if (ch->new_)
				card_side(&b, ch->new_);
			else
				buf_printf(&b, "deleted");
			buf_printf(&b, "\n");
		}
	}
	size_t len;
	char *s = (char *)buf_steal(&b, &len);
	return s ? s : strdup("");
}

static json_t *card_side_json(const struct workspace_entry *en)
{
	if (!en)
		return json_null();
	json_t *o = json_pack("{s:s, s:I}", "type", card_type_name(en->type), "size", (json_int_t)en->size);
	if (!o)
		return NULL;
	if (en->type != WORKSPACE_SYMLINK) {
		char m[8];
		snprintf(m, sizeof(m), "%04o", en->mode);
		json_object_set_new(o, "mode", json_string(m));
	}
	if (en->type == WORKSPACE_FILE) {
		char hex[65];
		workspace_hex(en->sha256, hex);
		json_object_set_new(o, "sha256", json_string(hex));
	}
	if (en->type == WORKSPACE_SYMLINK)
		json_object_set_new(o, "target", json_stringn(en->target, strlen(en->target)));
	return o;
}

json_t *workspace_card_json(const struct workspace_changes *c)
{
	char sum[128], hex[65];
	workspace_card_summary(c, sum, sizeof(sum));
	workspace_hex(c->effect, hex);
	json_t *arr = json_array();
	json_t *root = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:o}", "summary", sum,
				 "files", (json_int_t)c->n, "added", (json_int_t)c->added,
				 "deleted", (json_int_t)c->deleted, "conflicts", (json_int_t)c->n_conflicts,
				 "effect_sha256", hex, "changes", arr);
	if (!root)
		return NULL;
	for (size_t i = 0; i < c->n; i++) {
		const struct workspace_change *ch = &c->v[i];
		json_t *what = json_array();
		if (ch->what & WORKSPACE_CHANGE_CONTENT)
			json_array_append_new(what, json_string("content"));
		if (ch->what & WORKSPACE_CHANGE_MODE)
			json_array_append_new(what, json_string("mode"));
		if (ch->what & WORKSPACE_CHANGE_TARGET)
			json_array_append_new(what, json_string("target"));
		if (ch->what & WORKSPACE_CHANGE_TYPE)
			json_array_append_new(what, json_string("type"));
		const char *status = ch->kind == WORKSPACE_CREATED ? "created"
			: ch->kind == WORKSPACE_DELETED ? "deleted" : "modified";
		/* A guest path may not be UTF-8; jansson refuses those, and the
		 * entry then carries a placeholder (the text card escapes it). */
		json_t *path = json_stringn(ch->path, strlen(ch->path));
		json_t *o = json_pack("{s:o, s:s, s:o, s:o, s:o, s:b, s:I, s:I, s:b}",
				      "path", path ? path : json_string("(not UTF-8)"), "status", status,
				      "what", what, "old", card_side_json(ch->old),
				      "new", card_side_json(ch->new_), "binary", ch->binary,
				      "added", (json_int_t)ch->added, "deleted", (json_int_t)ch->deleted,
				      "conflict", ch->conflict);
		if (!o)
			continue;
		if (ch->conflict)
			json_object_set_new(o, "conflict_why", json_string(ch->conflict_why));
		if (ch->diff) {
			json_t *d = json_string(ch->diff);
			json_object_set_new(o, "diff", d ? d : json_string("(diff is not UTF-8)"));
		}
		json_array_append_new(arr, o);
	}
	return root;
}
