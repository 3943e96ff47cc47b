/* Copy-out against the copy-in manifest: a small file that comes back with
 * its copy-in bytes and mode is recorded unchanged and never written to
 * staging; every difference (content of the same size, mode) is still a
 * change, a file over WORKSPACE_UNCHANGED_MAX is still staged, and the
 * checks staging's O_EXCL used to make (duplicates, entries beneath a file)
 * and the hardlink rules still refuse a hostile stream. */
#include "test_workspace_fixture.h"

static int staged(const struct fx_run *r, const char *rel)
{
	char p[4400];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", r->staging, rel);
	return lstat(p, &st) == 0;
}

Test(workspace_unchanged, unchanged_files_are_not_staged_and_every_change_still_shows)
{
	struct fx_run r;
	struct err e = { 0 };
	fx_run_start(&r);
	fx_mkdir(r.host, "d", 0755);
	fx_put(r.host, "same.txt", "left alone\n");
	fx_put(r.host, "d/same.txt", "left alone too\n");
	fx_put(r.host, "edit.txt", "aaaa\n");
	fx_put(r.host, "mode.sh", "echo hi\n");
	fx_put(r.host, "gone.txt", "bye\n");
	fx_run_copy_in(&r);
	fx_put(r.vm, "edit.txt", "bbbb\n");   /* same size, other bytes */
	char p[4300];
	snprintf(p, sizeof(p), "%s/mode.sh", r.vm);
	cr_assert(chmod(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/gone.txt", r.vm);
	cr_assert(unlink(p) == 0);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);

	cr_assert(!staged(&r, "same.txt") && !staged(&r, "d/same.txt"), "unchanged files were staged");
	const struct workspace_entry *s = workspace_manifest_find(&r.after, "d/same.txt");
	cr_assert(s && s->unchanged && s->type == WORKSPACE_FILE && s->mode == 0644);
	cr_assert(staged(&r, "edit.txt") && staged(&r, "mode.sh"));
	cr_assert(!workspace_manifest_find(&r.after, "edit.txt")->unchanged);

	cr_assert_eq(r.c.n, 3, "exactly edit, mode and gone change (got %zu)", r.c.n);
	const struct workspace_change *c = fx_change(&r.c, "edit.txt");
	cr_assert(c && c->kind == WORKSPACE_MODIFIED && c->what == WORKSPACE_CHANGE_CONTENT);
	c = fx_change(&r.c, "mode.sh");
	cr_assert(c && c->kind == WORKSPACE_MODIFIED && c->what == WORKSPACE_CHANGE_MODE);
	c = fx_change(&r.c, "gone.txt");
	cr_assert(c && c->kind == WORKSPACE_DELETED);
	cr_assert(!fx_change(&r.c, "same.txt") && !fx_change(&r.c, "d/same.txt"),
		  "an unstaged unchanged file must not read as deleted");

	/* The card and the apply read staging only for real changes. */
	char *card = workspace_card_text(&r.c);
	cr_assert(card && strstr(card, "+bbbb"), "%s", card ? card : "(null)");
	free(card);
	cr_assert_eq(workspace_apply(&r.c, NULL, &e), 3, "%s", e.msg);
	char *want = fx_tree(r.vm), *got = fx_tree(r.host);
	cr_assert_str_eq(got, want);
	free(want);
	free(got);
	fx_run_end(&r);
}

Test(workspace_unchanged, a_file_over_the_buffer_bound_is_still_staged)
{
	struct fx_run r;
	struct err e = { 0 };
	fx_run_start(&r);
	size_t n = WORKSPACE_UNCHANGED_MAX + 1;
	char *big = malloc(n);
	memset(big, 'x', n);
	fx_write(r.host, "big.bin", big, n, 0644);
	fx_write(r.host, "edge.bin", big, n - 1, 0644);   /* exactly the bound */
	free(big);
	fx_run_copy_in(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	cr_assert(staged(&r, "big.bin"), "a file over the bound goes to staging as before");
	cr_assert(!workspace_manifest_find(&r.after, "big.bin")->unchanged);
	cr_assert(!staged(&r, "edge.bin"), "a file of exactly the bound is buffered");
	cr_assert_eq(r.c.n, 0);
	fx_run_end(&r);
}

/* ---- hostile streams against a before manifest ---- */

struct against {
	char *base, host[4200], staging[4200];
	struct workspace_manifest before, m;
	struct err e;
};

/* before: host files "a" ("same") and "l" ("other"), both 0644. */
static int against_unpack(struct against *t, struct buf *b)
{
	memset(t, 0, sizeof(*t));
	t->base = fx_tmpdir();
	snprintf(t->host, sizeof(t->host), "%s/host", t->base);
	snprintf(t->staging, sizeof(t->staging), "%s/staging", t->base);
	cr_assert(mkdir(t->host, 0755) == 0);
	fx_put(t->host, "a", "same");
	fx_put(t->host, "l", "other");
	fx_put(t->host, "k", "same");
	uint8_t *tar;
	size_t len;
	cr_assert(fx_pack(t->host, NULL, &tar, &len, &t->before, &t->e) == 0);
	free(tar);
	struct fx_mem mem = { b->data, b->len };
	int rc = workspace_unpack_against(fx_mem_read, &mem, t->staging, NULL, &t->before, &t->m,
					  &t->e);
	buf_free(b);
	return rc;
}

static void against_end(struct against *t)
{
	workspace_manifest_free(&t->before);
	workspace_manifest_free(&t->m);
	workspace_remove_tree(t->base);
	free(t->base);
}

Test(workspace_unchanged, hostile_streams_are_still_refused)
{
	struct against t;
	struct buf b;

	buf_init(&b, 1 << 20);   /* an unchanged file, then an entry beneath it */
	fx_tar_file(&b, "a", "same");
	fx_tar_file(&b, "a/x", "planted");
	fx_tar_end(&b);
	cr_assert_lt(against_unpack(&t, &b), 0, "an entry beneath an unstaged file was accepted");
	cr_assert(strstr(t.e.msg, "beneath a file"), "%s", t.e.msg);
	cr_assert_eq(t.m.n, 0);
	against_end(&t);

	buf_init(&b, 1 << 20);   /* the same unchanged file twice */
	fx_tar_file(&b, "a", "same");
	fx_tar_file(&b, "a", "same");
	fx_tar_end(&b);
	cr_assert_lt(against_unpack(&t, &b), 0, "a duplicate of an unstaged file was accepted");
	cr_assert(strstr(t.e.msg, "twice"), "%s", t.e.msg);
	against_end(&t);

	buf_init(&b, 1 << 20);   /* an unchanged file, then a directory of its name */
	fx_tar_file(&b, "a", "same");
	fx_tar_hdr(&b, "a", '5', 0, NULL, 0755);
	fx_tar_end(&b);
	cr_assert_lt(against_unpack(&t, &b), 0);
	against_end(&t);

	buf_init(&b, 1 << 20);   /* a hardlink giving "l" the unchanged "a"'s bytes */
	fx_tar_file(&b, "a", "same");
	fx_tar_hdr(&b, "l", '1', 0, "a", 0644);
	fx_tar_end(&b);
	cr_assert_lt(against_unpack(&t, &b), 0, "a hardlink to an unstaged file changed a path");
	cr_assert(strstr(t.e.msg, "hardlink"), "%s", t.e.msg);
	against_end(&t);
}

Test(workspace_unchanged, a_hardlink_between_unchanged_files_is_unchanged)
{
	struct against t;
	struct buf b;
	buf_init(&b, 1 << 20);
	fx_tar_file(&b, "a", "same");
	fx_tar_hdr(&b, "k", '1', 0, "a", 0644);
	fx_tar_file(&b, "l", "OTHER");   /* same size, other bytes: staged */
	fx_tar_end(&b);
	cr_assert_eq(against_unpack(&t, &b), 0, "%s", t.e.msg);
	const struct workspace_entry *k = workspace_manifest_find(&t.m, "k");
	cr_assert(k && k->unchanged);
	cr_assert(!fx_exists(t.staging, "a") && !fx_exists(t.staging, "k"));
	char *s = fx_read(t.staging, "l");
	cr_assert_str_eq(s, "OTHER");
	free(s);
	against_end(&t);
}
