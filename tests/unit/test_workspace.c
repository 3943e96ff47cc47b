/* Workspace copy-in and copy-out: pack/unpack round trip with modes and
 * symlinks, excludes, caps, hostile tar streams (nothing written outside
 * staging), and the change set + diff card on a fixture. */
#include "test_workspace_fixture.h"

static void build_tree(const char *root)
{
	fx_put(root, "notes.txt", "one\ntwo\nthree\n");
	fx_write(root, "run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	fx_write(root, "empty", "", 0, 0600);
	fx_mkdir(root, "src", 0750);
	fx_put(root, "src/main.c", "int main(void) { return 0; }\n");
	fx_mkdir(root, "src/deep", 0755);
	fx_write(root, "src/deep/blob.bin", "\x00\x01\x02\x03", 4, 0644);
	fx_symlink(root, "link-in", "notes.txt");
	fx_symlink(root, "link-out", "/etc");
}

Test(workspace_pack, round_trip_keeps_types_modes_hashes_and_symlinks)
{
	char *a = fx_tmpdir();
	build_tree(a);
	struct err e = { 0 };
	uint8_t *tar;
	size_t len;
	struct workspace_manifest m1 = { 0 }, m2 = { 0 };
	cr_assert_eq(fx_pack(a, NULL, &tar, &len, &m1, &e), 0, "%s", e.msg);
	cr_assert_eq(m1.n, 9);
	char st[4200];
	snprintf(st, sizeof(st), "%s-staging", a);
	cr_assert_eq(workspace_unpack_mem(tar, len, st, NULL, &m2, &e), 0, "%s", e.msg);
	cr_assert_eq(m2.n, m1.n);
	for (size_t i = 0; i < m1.n; i++) {
		const struct workspace_entry *x = &m1.v[i], *y = &m2.v[i];
		cr_assert_str_eq(x->path, y->path);
		cr_assert_eq(x->type, y->type, "%s", x->path);
		if (x->type != WORKSPACE_SYMLINK)
			cr_assert_eq(x->mode, y->mode, "%s: %o vs %o", x->path, x->mode, y->mode);
		cr_assert_eq(memcmp(x->sha256, y->sha256, 32), 0, "%s", x->path);
		if (x->target)
			cr_assert_str_eq(x->target, y->target);
	}
	const struct workspace_entry *run = workspace_manifest_find(&m2, "run.sh");
	cr_assert(run && run->mode == 0755);
	cr_assert_eq(workspace_manifest_find(&m2, "src")->mode, 0750);
	const struct workspace_entry *out = workspace_manifest_find(&m2, "link-out");
	cr_assert(out && out->type == WORKSPACE_SYMLINK && !strcmp(out->target, "/etc"),
		  "a symlink out is packed as a symlink, not followed");
	/* staging is private, whatever the archive's modes */
	struct stat sb;
	char p[4300];
	snprintf(p, sizeof(p), "%s/run.sh", st);
	cr_assert(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	char *s1 = fx_read(st, "src/main.c");
	cr_assert_str_eq(s1, "int main(void) { return 0; }\n");
	free(s1);
	free(tar);
	workspace_manifest_free(&m1);
	workspace_manifest_free(&m2);
	workspace_remove_tree(st);
	workspace_remove_tree(a);
	free(a);
}

Test(workspace_pack, excludes_by_name_path_and_directory)
{
	char *a = fx_tmpdir();
	build_tree(a);
	fx_mkdir(a, "node_modules", 0755);
	fx_put(a, "node_modules/x.js", "x");
	fx_put(a, "src/obj.o", "o");
	fx_mkdir(a, "build", 0755);
	fx_put(a, "build/out", "o");
	fx_put(a, "src/build", "a file named build stays: build/ is for directories");
	const char *ex[] = { "node_modules", "*.o", "build/", "src/deep" };
	struct workspace_pack_options o = { .excludes = ex, .n_excludes = 4 };
	struct err e = { 0 };
	uint8_t *tar;
	size_t len;
	struct workspace_manifest m = { 0 };
	cr_assert_eq(fx_pack(a, &o, &tar, &len, &m, &e), 0, "%s", e.msg);
	cr_assert_null(workspace_manifest_find(&m, "node_modules"));
	cr_assert_null(workspace_manifest_find(&m, "node_modules/x.js"));
	cr_assert_null(workspace_manifest_find(&m, "src/obj.o"));
	cr_assert_null(workspace_manifest_find(&m, "build"));
	cr_assert_null(workspace_manifest_find(&m, "src/deep/blob.bin"));
	cr_assert_not_null(workspace_manifest_find(&m, "src/build"));
	cr_assert_not_null(workspace_manifest_find(&m, "src/main.c"));
	cr_assert_null(memmem(tar, len, "node_modules", 12), "not even a header");
	free(tar);
	workspace_manifest_free(&m);
	workspace_remove_tree(a);
	free(a);
}

Test(workspace_pack, caps_fail_early_with_a_hint)
{
	char *a = fx_tmpdir();
	build_tree(a);
	struct workspace_pack *p = NULL;
	struct err e = { 0 };
	struct workspace_pack_options o = { .limits.max_files = 3 };
	cr_assert_eq(workspace_pack_open(a, &o, &p, &e), -EFBIG);
	cr_assert_null(p);
	cr_assert(strstr(e.msg, "copy-in cap") && strstr(e.msg, "--exclude"), "%s", e.msg);
	cr_assert_null(strchr(e.msg, '\n'), "one line");
	struct workspace_pack_options o2 = { .limits.max_bytes = 20 };
	err_clear(&e);
	cr_assert_eq(workspace_pack_open(a, &o2, &p, &e), -EFBIG);
	struct workspace_pack_options o3 = { .limits.max_bytes = 1000 };
	cr_assert_eq(workspace_pack_open(a, &o3, &p, &e), 0);
	workspace_pack_free(p);
	workspace_remove_tree(a);
	free(a);
}

Test(workspace_pack, a_file_that_changes_during_copy_in_fails_the_copy)
{
	char *a = fx_tmpdir();
	fx_put(a, "f", "short");
	struct workspace_pack *p;
	struct err e = { 0 };
	cr_assert_eq(workspace_pack_open(a, NULL, &p, &e), 0);
	fx_put(a, "f", "much longer now");
	uint8_t chunk[4096];
	long n;
	while ((n = workspace_pack_read(p, chunk, sizeof(chunk), &e)) > 0)
		;
	cr_assert_eq(n, -EAGAIN, "%ld %s", n, e.msg);
	cr_assert(strstr(e.msg, "changed during copy-in"));
	workspace_pack_free(p);
	workspace_remove_tree(a);
	free(a);
}

/* ---- hostile copy-out ---- */

struct hostile {
	char *base, staging[4200], outside[4200];
	struct workspace_manifest m;
	struct err e;
};

static int hostile_unpack(struct hostile *h, struct buf *b, const struct workspace_limits *lim)
{
	memset(h, 0, sizeof(*h));
	h->base = fx_tmpdir();
	snprintf(h->staging, sizeof(h->staging), "%s/staging", h->base);
	snprintf(h->outside, sizeof(h->outside), "%s/outside", h->base);
	cr_assert(mkdir(h->outside, 0755) == 0);
	int rc = workspace_unpack_mem(b->data, b->len, h->staging, lim, &h->m, &h->e);
	buf_free(b);
	return rc;
}

static void hostile_end(struct hostile *h)
{
	DIR *d = opendir(h->outside);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	cr_assert_eq(n, 0, "something was written outside staging");
	cr_assert_eq(h->m.n, 0, "no manifest after a refusal");
	workspace_remove_tree(h->base);
	free(h->base);
}

static void expect_refused(struct buf *b, const char *what)
{
	struct hostile h;
	int rc = hostile_unpack(&h, b, NULL);
	cr_assert_lt(rc, 0, "%s was accepted", what);
	cr_assert(strstr(h.e.msg, "copy-out"), "%s: %s", what, h.e.msg);
	hostile_end(&h);
}

Test(workspace_unpack, refuses_absolute_and_dotdot_paths)
{
	char abs[4300];
	struct buf b;
	buf_init(&b, 1 << 20);
	char *t = fx_tmpdir();
	snprintf(abs, sizeof(abs), "%s/pwned", t);
	fx_tar_file(&b, abs, "x");
	fx_tar_end(&b);
	expect_refused(&b, "an absolute path");
	cr_assert(!fx_exists(t, "pwned"));
	workspace_remove_tree(t);
	free(t);
	const char *bad[] = { "../outside/pwned", "a/../../outside/pwned", "./../outside/x", "a//b" };
	for (size_t i = 0; i < 4; i++) {
		buf_init(&b, 1 << 20);
		fx_tar_file(&b, bad[i], "x");
		fx_tar_end(&b);
		expect_refused(&b, bad[i]);
	}
}

Test(workspace_unpack, refuses_a_file_through_a_symlink_it_planted)
{
	struct buf b;
	struct hostile h;
	buf_init(&b, 1 << 20);
	/* "../outside" relative to staging is the sentinel dir */
	fx_tar_hdr(&b, "l", '2', 0, "../outside", 0777);
	fx_tar_file(&b, "l/pwned", "x");
	fx_tar_end(&b);
	cr_assert_lt(hostile_unpack(&h, &b, NULL), 0);
	cr_assert(strstr(h.e.msg, "symlink"), "%s", h.e.msg);
	hostile_end(&h);
	/* and a symlink replacing a path, then a file through it */
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "d", '5', 0, NULL, 0755);
	fx_tar_hdr(&b, "d", '2', 0, "../outside", 0777);
	fx_tar_file(&b, "d/pwned", "x");
	fx_tar_end(&b);
	cr_assert_lt(hostile_unpack(&h, &b, NULL), 0);
	hostile_end(&h);
}

Test(workspace_unpack, refuses_hardlinks_out_devices_fifos_and_duplicates)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "pw", '1', 0, "/etc/passwd", 0644);
	fx_tar_end(&b);
	expect_refused(&b, "a hardlink to /etc/passwd");
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "pw", '1', 0, "../outside/x", 0644);
	fx_tar_end(&b);
	expect_refused(&b, "a hardlink with ..");
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "dev", '3', 0, NULL, 0644);
	fx_tar_end(&b);
	expect_refused(&b, "a character device");
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "blk", '4', 0, NULL, 0644);
	fx_tar_end(&b);
	expect_refused(&b, "a block device");
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "fifo", '6', 0, NULL, 0644);
	fx_tar_end(&b);
	expect_refused(&b, "a fifo");
	buf_init(&b, 1 << 20);
	fx_tar_file(&b, "a", "one");
	fx_tar_file(&b, "a", "two");
	fx_tar_end(&b);
	expect_refused(&b, "a duplicate");
}

Test(workspace_unpack, an_in_stream_hardlink_becomes_a_copy)
{
	struct buf b;
	struct hostile h;
	buf_init(&b, 1 << 20);
	fx_tar_file(&b, "a", "shared bytes");
	fx_tar_hdr(&b, "b", '1', 0, "a", 0644);
	fx_tar_end(&b);
	cr_assert_eq(hostile_unpack(&h, &b, NULL), 0, "%s", h.e.msg);
	const struct workspace_entry *x = workspace_manifest_find(&h.m, "a");
	const struct workspace_entry *y = workspace_manifest_find(&h.m, "b");
	cr_assert(x && y && !memcmp(x->sha256, y->sha256, 32));
	char *s = fx_read(h.staging, "b");
	cr_assert_str_eq(s, "shared bytes");
	free(s);
	struct stat s1, s2;
	char p1[4300], p2[4300];
	snprintf(p1, sizeof(p1), "%s/a", h.staging);
	snprintf(p2, sizeof(p2), "%s/b", h.staging);
	cr_assert(stat(p1, &s1) == 0 && stat(p2, &s2) == 0 && s1.st_ino != s2.st_ino);
	workspace_manifest_free(&h.m);
	hostile_end(&h);
}

Test(workspace_unpack, caps_on_sizes_entries_and_depth)
{
	struct buf b;
	struct hostile h;
	/* a header claiming 8 GiB, with no data: refused before reading any */
	buf_init(&b, 1 << 20);
	fx_tar_hdr(&b, "huge", '0', 077777777777ull, NULL, 0644);
	fx_tar_end(&b);
	cr_assert_eq(hostile_unpack(&h, &b, NULL), -EFBIG, "%s", h.e.msg);
	cr_assert(!fx_exists(h.staging, "huge"), "refused before the file was created");
	hostile_end(&h);
	/* over a small byte cap */
	buf_init(&b, 1 << 20);
	fx_tar_file(&b, "a", "0123456789");
	fx_tar_file(&b, "b", "0123456789");
	fx_tar_end(&b);
	struct workspace_limits lim = { .max_bytes = 15 };
	cr_assert_eq(hostile_unpack(&h, &b, &lim), -EFBIG);
	hostile_end(&h);
	/* entries */
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 5; i++) {
		char n[8];
		snprintf(n, sizeof(n), "f%d", i);
		fx_tar_file(&b, n, "x");
	}
	fx_tar_end(&b);
	struct workspace_limits lim2 = { .max_files = 4 };
	cr_assert_eq(hostile_unpack(&h, &b, &lim2), -EFBIG);
	hostile_end(&h);
	/* depth: 65 levels of "a/" (fits the 100-byte ustar name with a prefix? use pax-free short names) */
	char deep[200] = "";
	for (int i = 0; i < 49; i++)
		strcat(deep, "a/");
	strcat(deep, "f");
	buf_init(&b, 1 << 20);
	fx_tar_file(&b, deep, "x");
	fx_tar_end(&b);
	cr_assert_eq(hostile_unpack(&h, &b, NULL), 0, "49 levels are fine: %s", h.e.msg);
	workspace_manifest_free(&h.m);
	workspace_remove_tree(h.base);
	free(h.base);
}

Test(workspace_unpack, garbage_is_an_error_not_a_crash)
{
	struct buf b;
	struct hostile h;
	buf_init(&b, 1 << 20);
	buf_append(&b, "this is not a tar stream at all", 31);
	for (int i = 0; i < 600; i++)
		buf_append(&b, "\xff", 1);
	cr_assert_lt(hostile_unpack(&h, &b, NULL), 0);
	hostile_end(&h);
}

/* ---- changes and the card ---- */

static void card_fixture(struct fx_run *r)
{
	fx_run_start(r);
	build_tree(r->host);
	fx_put(r->host, "gone.txt", "bye\n");
	fx_run_copy_in(r);
	fx_put(r->vm, "notes.txt", "one\nTWO\nthree\nfour\n");           /* modified */
	fx_put(r->vm, "src/new.c", "new\nfile\n");                        /* created */
	char p[4300];
	snprintf(p, sizeof(p), "%s/gone.txt", r->vm);
	unlink(p);                                                       /* deleted */
	snprintf(p, sizeof(p), "%s/src/main.c", r->vm);
	chmod(p, 0755);                                                  /* mode only */
	fx_write(r->vm, "src/deep/blob.bin", "\x00\x09\x09", 3, 0644);   /* binary */
	fx_symlink(r->vm, "link-in", "src/new.c");                       /* target */
	snprintf(p, sizeof(p), "%s/empty", r->vm);
	unlink(p);
	fx_symlink(r->vm, "empty", "notes.txt");                         /* type */
}

Test(workspace_changes, created_modified_deleted_modes_symlinks_and_types)
{
	struct fx_run r;
	struct err e = { 0 };
	card_fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	cr_assert_eq(r.c.n, 7);
	cr_assert_eq(r.c.n_conflicts, 0);
	const struct workspace_change *ch = fx_change(&r.c, "notes.txt");
	cr_assert(ch && ch->kind == WORKSPACE_MODIFIED && ch->what == WORKSPACE_CHANGE_CONTENT);
	cr_assert_eq(ch->added, 2);
	cr_assert_eq(ch->deleted, 1);
	cr_assert(strstr(ch->diff, "-two\n") && strstr(ch->diff, "+TWO\n") && strstr(ch->diff, "+four\n"),
		  "%s", ch->diff);
	ch = fx_change(&r.c, "src/new.c");
	cr_assert(ch && ch->kind == WORKSPACE_CREATED && ch->added == 2);
	ch = fx_change(&r.c, "gone.txt");
	cr_assert(ch && ch->kind == WORKSPACE_DELETED && ch->deleted == 1);
	ch = fx_change(&r.c, "src/main.c");
	cr_assert(ch && ch->what == WORKSPACE_CHANGE_MODE && !ch->diff);
	ch = fx_change(&r.c, "src/deep/blob.bin");
	cr_assert(ch && ch->binary && !ch->diff);
	ch = fx_change(&r.c, "link-in");
	cr_assert(ch && ch->what == WORKSPACE_CHANGE_TARGET);
	ch = fx_change(&r.c, "empty");
	cr_assert(ch && ch->what == WORKSPACE_CHANGE_TYPE);
	cr_assert_null(fx_change(&r.c, "link-out"), "unchanged paths are not changes");
	fx_run_end(&r);
}

Test(workspace_card, text_and_json_show_what_will_change)
{
	struct fx_run r;
	struct err e = { 0 };
	card_fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char sum[128];
	workspace_card_summary(&r.c, sum, sizeof(sum));
	cr_assert_str_eq(sum, "7 files changed, +4 -2");
	char *t = workspace_card_text(&r.c);
	cr_assert(strstr(t, "workspace changes: 7 files changed, +4 -2\n"), "%s", t);
	cr_assert(strstr(t, "M src/main.c  mode 0644 -> 0755"), "%s", t);
	cr_assert(strstr(t, "M link-in  -> src/new.c (was -> notes.txt)"), "%s", t);
	cr_assert(strstr(t, "M empty  file -> symlink"), "%s", t);
	cr_assert(strstr(t, "A src/new.c  mode 0644  +2 -0"), "%s", t);
	cr_assert(strstr(t, "D gone.txt"), "%s", t);
	cr_assert(strstr(t, "--- a/notes.txt\n+++ b/notes.txt\n"), "%s", t);
	cr_assert(strstr(t, "binary src/deep/blob.bin: 4 bytes, sha256 "), "%s", t);
	cr_assert(strstr(t, "effect sha256 "), "%s", t);
	free(t);
	json_t *j = workspace_card_json(&r.c);
	cr_assert_eq(json_integer_value(json_object_get(j, "files")), 7);
	cr_assert_eq(json_array_size(json_object_get(j, "changes")), 7);
	char hex[65];
	workspace_hex(r.c.effect, hex);
	cr_assert_str_eq(json_string_value(json_object_get(j, "effect_sha256")), hex);
	json_decref(j);
	/* the effect hash is a function of the change set and the selection */
	uint8_t h1[32], h2[32];
	workspace_changes_hash(&r.c, NULL, h1);
	cr_assert_eq(memcmp(h1, r.c.effect, 32), 0);
	unsigned char sel[7] = { 1, 1, 1, 1, 1, 1, 0 };
	workspace_changes_hash(&r.c, sel, h2);
	cr_assert_neq(memcmp(h1, h2, 32), 0);
	fx_run_end(&r);
}

Test(workspace_card, control_characters_in_guest_names_are_escaped)
{
	struct fx_run r;
	struct err e = { 0 };
	fx_run_start(&r);
	fx_run_copy_in(&r);
	fx_put(r.vm, "evil\x1b[2Jname", "x\n");
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char *t = workspace_card_text(&r.c);
	cr_assert_null(strchr(t, '\x1b'), "%s", t);
	cr_assert(strstr(t, "evil\\x1b[2Jname"), "%s", t);
	free(t);
	fx_run_end(&r);
}

Test(workspace_card, a_host_edit_after_copy_in_is_a_conflict_on_the_card)
{
	struct fx_run r;
	struct err e = { 0 };
	fx_run_start(&r);
	fx_put(r.host, "a.txt", "v1\n");
	fx_run_copy_in(&r);
	fx_put(r.vm, "a.txt", "guest\n");
	fx_put(r.host, "a.txt", "user edit\n");
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	cr_assert_eq(r.c.n_conflicts, 1);
	char *t = workspace_card_text(&r.c);
	cr_assert(strstr(t, "CONFLICT [1] a.txt: changed on the host since copy-in"), "%s", t);
	free(t);
	fx_run_end(&r);
}
