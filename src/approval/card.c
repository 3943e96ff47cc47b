/* The approval card: what a decider sees, and the hash a decision is tied to.
 *
 * The hash is of the exact effect: for a tool call, the canonical JSON of
 * {"arguments": ..., "name": ...} (keys sorted, compact, as jansson writes
 * them); for workspace changes, the diff card's bytes. A decision records the
 * hash, so the run log shows what exactly was approved, and an external
 * approver that answers with a hash must answer for this card and no other.
 *
 * The text form goes to a terminal. Arguments come from the model and diffs
 * from the guest, both hostile: every control character except newline and
 * tab is written as a visible escape, so a card cannot move the cursor, clear
 * the screen or hide a line from the person reading it. */
#include "approval/approval.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define CARD_TEXT_MAX (1u << 20)      /* the whole rendered card */
#define CARD_DIFF_SHOWN (768u << 10)  /* diff bytes shown; the hash covers all */

void approval_sha256_hex(const void *p, size_t n, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		/* Never a hash that could match anything. */
		memset(hex, '-', 64);
		hex[64] = 0;
		return;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static char *card_canonical_call(const struct approval_card *c)
{
	json_t *o = json_object();
	json_t *args = c->arguments ? json_deep_copy(c->arguments) : json_object();
	char *s = NULL;
	if (o && args && !json_object_set_new(o, "arguments", args) &&
	    !json_object_set_new(o, "name", json_string(c->tool)))
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	else if (!o)
		json_decref(args);
	json_decref(o);
	return s;
}

int approval_card_seal(struct approval_card *c)
{
	c->effect_sha256[0] = 0;
	if (c->kind == APPROVAL_KIND_TOOL) {
		if (!c->tool || !*c->tool || (c->arguments && !json_is_object(c->arguments)))
			return -EINVAL;
		char *s = card_canonical_call(c);
		if (!s)
			return -ENOMEM;
		approval_sha256_hex(s, strlen(s), c->effect_sha256);
		free(s);
		return 0;
	}
	if (c->kind != APPROVAL_KIND_CHANGES || !c->diff || c->n_files > APPROVAL_FILES_MAX ||
	    (c->n_files && !c->files))
		return -EINVAL;
	for (size_t i = 0; i < c->n_files; i++)
		if (!c->files[i].path)
			return -EINVAL;
	approval_sha256_hex(c->diff, c->diff_len, c->effect_sha256);
	return 0;
}

json_t *approval_card_to_json(const struct approval_card *c)
{
	int tool = c->kind == APPROVAL_KIND_TOOL;
	json_t *o = json_pack("{s:s, s:i, s:s, s:s?, s:s?, s:s, s:[s]}",
			      "type", "ironclaw.approval", "version", 1,
			      "kind", tool ? "tool_call" : "workspace_changes",
			      "title", c->title, "reason", c->reason,
			      "effect_sha256", c->effect_sha256, "scopes", "call");
	if (!o)
		return NULL;
	if (tool && c->offer_tool_scope)
		json_array_append_new(json_object_get(o, "scopes"), json_string("tool"));
	if (tool) {
		json_object_set_new(o, "tool", json_string(c->tool));
		json_object_set_new(o, "arguments",
				    c->arguments ? json_deep_copy(c->arguments) : json_object());
		return o;
	}
	/* A diff that is not UTF-8 (binary bytes in a hunk) still reaches the
	 * approver, as the same bytes with invalid sequences replaced. */
	json_t *d = json_stringn(c->diff, c->diff_len);
	if (!d) {
		char *copy = malloc(c->diff_len + 1);
		if (copy) {
			for (size_t i = 0; i < c->diff_len; i++)
				copy[i] = (unsigned char)c->diff[i] < 0x80 ? c->diff[i] : '?';
			d = json_stringn(copy, c->diff_len);
			free(copy);
		}
	}
	json_object_set_new(o, "diff", d ? d : json_string(""));
	json_t *files = json_array();
	for (size_t i = 0; files && i < c->n_files; i++)
		json_array_append_new(files, json_pack("{s:s%, s:s?, s:b}", "path", c->files[i].path,
						       strlen(c->files[i].path), "summary",
						       c->files[i].summary, "conflict",
						       c->files[i].conflict));
	json_object_set_new(o, "files", files);
	return o;
}

/* Appends s, escaping what could drive a terminal: C0 (but \n and \t), DEL,
 * and the C1 range in its UTF-8 form (U+0080..U+009F: U+009B is a CSI). */
static int card_put_safe(struct buf *b, const char *s, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			rc = buf_printf(b, "\\u%04x", (unsigned char)s[i + 1]);
			i++;
		} else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
			rc = buf_printf(b, "\\x%02x", c);
		} else {
			rc = buf_append(b, &s[i], 1);
		}
	}
	return rc;
}

static int card_render_tool(struct buf *b, const struct approval_card *c)
{
	char *args = c->arguments ? json_dumps(c->arguments, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	int rc = buf_printf(b, "tool: ");
	if (!rc)
		rc = card_put_safe(b, c->tool, strlen(c->tool));
	if (!rc)
		rc = buf_printf(b, "\narguments:\n");
	if (!rc)
		rc = args ? card_put_safe(b, args, strlen(args)) : buf_printf(b, "{}");
	free(args);
	if (!rc)
		rc = buf_printf(b, "\nscope: y = this call only%s\n",
				c->offer_tool_scope ? ", a = this tool for the rest of the run" : "");
	return rc;
}

static int card_render_changes(struct buf *b, const struct approval_card *c)
{
	size_t shown = c->diff_len < CARD_DIFF_SHOWN ? c->diff_len : CARD_DIFF_SHOWN;
	int rc = card_put_safe(b, c->diff, shown);
	if (!rc && shown < c->diff_len)
		rc = buf_printf(b, "\n... %zu more bytes of the diff not shown (the hash covers them)\n",
				c->diff_len - shown);
	if (!rc && c->diff_len && c->diff[shown - 1] != '\n')
		rc = buf_printf(b, "\n");
	if (!rc)
		rc = buf_printf(b, "files:\n");
	for (size_t i = 0; i < c->n_files && !rc; i++) {
		const struct approval_file *f = &c->files[i];
		rc = buf_printf(b, "  %zu. ", i + 1);
		if (!rc)
			rc = card_put_safe(b, f->path, strlen(f->path));
		if (!rc && f->summary) {
			rc = buf_printf(b, "  ");
			if (!rc)
				rc = card_put_safe(b, f->summary, strlen(f->summary));
		}
		if (!rc && f->conflict)
			rc = buf_printf(b, "  CONFLICT: changed on the host since the copy-in, "
					   "will not be applied");
		if (!rc)
			rc = buf_printf(b, "\n");
	}
	if (!rc)
		rc = buf_printf(b, "scope: this apply only\n");
	return rc;
}

char *approval_card_render(const struct approval_card *c)
{
	struct buf b;
	buf_init(&b, CARD_TEXT_MAX);
	int tool = c->kind == APPROVAL_KIND_TOOL;
	int rc = buf_printf(&b, "\n=== approval needed: %s ===\n", tool ? "tool call" : "workspace changes");
	if (!rc && c->title) {
		rc = card_put_safe(&b, c->title, strlen(c->title));
		if (!rc)
			rc = buf_printf(&b, "\n");
	}
	if (!rc && c->reason) {
		rc = buf_printf(&b, "why: ");
		if (!rc)
			rc = card_put_safe(&b, c->reason, strlen(c->reason));
		if (!rc)
			rc = buf_printf(&b, "\n");
	}
	if (!rc)
		rc = tool ? card_render_tool(&b, c) : card_render_changes(&b, c);
	if (!rc)
		rc = buf_printf(&b, "effect sha256: %s\n", c->effect_sha256);
	if (rc) {
		buf_free(&b);
		return NULL;
	}
	size_t len;
	return (char *)buf_steal(&b, &len);
}
