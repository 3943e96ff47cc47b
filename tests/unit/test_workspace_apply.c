/* Applying a change set to the host: exactly what the card shows, all or
 * nothing (conflicts, injected failures at every step), confined beneath the
 * workspace (planted symlinks), ownership following the workspace, and undo. */
#include "test_workspace_fixture.h"

#include <sys/syscall.h>

static void fixture(struct fx_run *r)
{
	fx_run_start(r);
	fx_put(r->host, "notes.txt", "one\ntwo\n");
	fx_put(r->host, "keep.txt", "untouched\n");
	fx_put(r->host, "gone.txt", "bye\n");
	fx_mkdir(r->host, "sub", 0755);
	fx_put(r->host, "sub/a.txt", "a\n");
	fx_mkdir(r->host, "olddir", 0755);
	fx_put(r->host, "olddir/x", "x\n");
	fx_write(r->host, "tool.sh", "#!/bin/sh\n", 10, 0644);
	fx_symlink(r->host, "ln", "notes.txt");
	fx_run_copy_in(r);
	fx_put(r->vm, "notes.txt", "one\ntwo\nthree\n");
	char p[4300];
	snprintf(p, sizeof(p), "%s/gone.txt", r->vm);
	unlink(p);
	fx_mkdir(r->vm, "newdir", 0700);
	fx_mkdir(r->vm, "newdir/deeper", 0755);
	fx_put(r->vm, "newdir/deeper/n.txt", "new\n");
	fx_put(r->vm, "sub/b.txt", "b\n");
	snprintf(p, sizeof(p), "rm -rf %s/olddir", r->vm);
	cr_assert(system(p) == 0);
	fx_put(r->vm, "olddir", "now a file\n");
	snprintf(p, sizeof(p), "%s/tool.sh", r->vm);
	chmod(p, 0755);
	fx_symlink(r->vm, "ln", "keep.txt");
}

Test(workspace_apply, the_host_becomes_exactly_what_the_card_showed)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	cr_assert_eq(r.c.n_conflicts, 0);
	int n = workspace_apply(&r.c, NULL, &e);
	cr_assert_eq(n, (int)r.c.n, "%d: %s", n, e.msg);
	char *a = fx_tree(r.host), *b = fx_tree(r.vm);
	cr_assert_str_eq(a, b);
	free(a);
	free(b);
	fx_run_end(&r);
}

Test(workspace_apply, only_the_selected_changes_are_applied)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	unsigned char *sel = calloc(r.c.n, 1);
	size_t at = 0;
	for (size_t i = 0; i < r.c.n; i++)
		if (!strcmp(r.c.v[i].path, "newdir/deeper/n.txt"))
			sel[at = i] = 1;
	struct workspace_apply_options o = { .selected = sel };
	cr_assert_eq(workspace_apply(&r.c, &o, &e), 1, "%s", e.msg);
	char *s = fx_read(r.host, "newdir/deeper/n.txt");
	cr_assert_str_eq(s, "new\n", "its directories were made for it");
	free(s);
	s = fx_read(r.host, "notes.txt");
	cr_assert_str_eq(s, "one\ntwo\n");
	free(s);
	cr_assert(fx_exists(r.host, "gone.txt"));
	free(sel);
	(void)at;
	fx_run_end(&r);
}

Test(workspace_apply, a_conflict_writes_nothing_at_all)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	/* the user edits a file while the card is on screen */
	fx_put(r.host, "sub/a.txt", "user edit\n");
	fx_put(r.host, "notes.txt", "the user's own version\n");
	char *before = fx_tree(r.host);
	cr_assert_eq(workspace_apply(&r.c, NULL, &e), -EBUSY);
	cr_assert(strstr(e.msg, "notes.txt") && strstr(e.msg, "nothing was applied"), "%s", e.msg);
	char *after = fx_tree(r.host);
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	char *s = fx_read(r.host, "notes.txt");
	cr_assert_str_eq(s, "the user's own version\n");
	free(s);
	fx_run_end(&r);
}

Test(workspace_apply, a_file_created_on_the_host_meanwhile_is_a_conflict)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	fx_put(r.host, "sub/b.txt", "mine\n");
	cr_assert_eq(workspace_apply(&r.c, NULL, &e), -EBUSY);
	char *s = fx_read(r.host, "sub/b.txt");
	cr_assert_str_eq(s, "mine\n");
	free(s);
	fx_run_end(&r);
}

struct fault {
	unsigned at, seen;
};

static int fail_at(const char *path, unsigned step, void *ctx)
{
	struct fault *f = ctx;
	(void)path;
	f->seen = step + 1;
	return step == f->at ? -EIO : 0;
}

Test(workspace_apply, a_failure_at_any_step_rolls_everything_back)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char *orig = fx_tree(r.host);
	/* learn the number of steps from a run that fails late */
	struct fault f = { .at = 1000 };
	unsigned steps = 0;
	for (f.at = 0; f.at < 64; f.at++) {
		struct workspace_apply_options o = { .fault = fail_at, .fault_ctx = &f };
		err_clear(&e);
		int rc = workspace_apply(&r.c, &o, &e);
		if (rc >= 0) {
			steps = f.at;
			break;
		}
		cr_assert_eq(rc, -EIO, "%s", e.msg);
		cr_assert(strstr(e.msg, "the workspace is unchanged"), "%s", e.msg);
		char *now = fx_tree(r.host);
		cr_assert_str_eq(now, orig, "after a failure at step %u", f.at);
		free(now);
	}
	cr_assert_geq(steps, 8, "every change was a step (%u)", steps);
	char *a = fx_tree(r.host), *b = fx_tree(r.vm);
	cr_assert_str_eq(a, b, "the run without a failure applied everything");
	free(a);
	free(b);
	free(orig);
	fx_run_end(&r);
}

Test(workspace_apply, a_symlink_planted_in_the_host_workspace_cannot_redirect_a_write)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char outside[4300], p[4300];
	snprintf(outside, sizeof(outside), "%s/outside", r.base);
	cr_assert(mkdir(outside, 0755) == 0);
	/* after the card was computed, someone swaps sub/ for a symlink out */
	snprintf(p, sizeof(p), "rm -rf %s/sub", r.host);
	cr_assert(system(p) == 0);
	fx_symlink(r.host, "sub", outside);
	cr_assert_lt(workspace_apply(&r.c, NULL, &e), 0);
	DIR *d = opendir(outside);
	struct dirent *de;
	while ((de = readdir(d)))
		cr_assert(de->d_name[0] == '.', "%s was written outside", de->d_name);
	closedir(d);
	/* even a created path under a symlinked new parent */
	fx_run_end(&r);
}

Test(workspace_apply, new_parent_directory_as_a_symlink_is_refused)
{
	struct fx_run r;
	struct err e = { 0 };
	fx_run_start(&r);
	fx_put(r.host, "a", "a\n");
	fx_run_copy_in(&r);
	fx_mkdir(r.vm, "newdir", 0755);
	fx_put(r.vm, "newdir/f", "f\n");
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char outside[4300];
	snprintf(outside, sizeof(outside), "%s/outside", r.base);
	cr_assert(mkdir(outside, 0755) == 0);
	fx_symlink(r.host, "newdir", outside);
	cr_assert_lt(workspace_apply(&r.c, NULL, &e), 0);
	cr_assert(!fx_exists(outside, "f"));
	fx_run_end(&r);
}

Test(workspace_apply, a_lone_write_under_a_swapped_directory_stays_inside)
{
	struct fx_run r;
	struct err e = { 0 };
	fx_run_start(&r);
	fx_mkdir(r.host, "sub", 0755);
	fx_mkdir(r.host, "sub/inner", 0755);
	fx_run_copy_in(&r);
	fx_put(r.vm, "sub/inner/b.txt", "b\n");
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	/* a symlink two levels up: only RESOLVE_NO_SYMLINKS (or the walk) sees it */
	char outside[4300], p[4300];
	snprintf(outside, sizeof(outside), "%s/outside", r.base);
	cr_assert(mkdir(outside, 0755) == 0);
	fx_mkdir(outside, "inner", 0755);
	snprintf(p, sizeof(p), "rm -rf %s/sub", r.host);
	cr_assert(system(p) == 0);
	fx_symlink(r.host, "sub", outside);
	cr_assert_lt(workspace_apply(&r.c, NULL, &e), 0);
	cr_assert(!fx_exists(outside, "inner/b.txt"), "the write followed the planted symlink");
	fx_run_end(&r);
}

Test(workspace_apply, ownership_follows_the_workspace_not_the_process)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to chown fixtures");
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	char p[4300];
	snprintf(p, sizeof(p), "%s/notes.txt", r.host);
	cr_assert(chown(p, 1234, 1235) == 0);
	snprintf(p, sizeof(p), "%s/sub", r.host);
	cr_assert(chown(p, 2345, 2346) == 0);
	snprintf(p, sizeof(p), "%s", r.host);
	cr_assert(chown(p, 3456, 3457) == 0);
	/* copy-in again, since ownership is not part of the manifest's hash */
	workspace_manifest_free(&r.before);
	uint8_t *tar;
	size_t len;
	cr_assert(fx_pack(r.host, NULL, &tar, &len, &r.before, &e) == 0);
	free(tar);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	cr_assert_gt(workspace_apply(&r.c, NULL, &e), 0, "%s", e.msg);
	struct stat st;
	snprintf(p, sizeof(p), "%s/notes.txt", r.host);
	cr_assert(stat(p, &st) == 0 && st.st_uid == 1234 && st.st_gid == 1235, "replaced keeps its owner");
	snprintf(p, sizeof(p), "%s/sub/b.txt", r.host);
	cr_assert(stat(p, &st) == 0 && st.st_uid == 2345 && st.st_gid == 2346, "new gets its dir's");
	snprintf(p, sizeof(p), "%s/newdir", r.host);
	cr_assert(stat(p, &st) == 0 && st.st_uid == 3456 && (st.st_mode & 0777) == 0700);
	snprintf(p, sizeof(p), "%s/newdir/deeper/n.txt", r.host);
	cr_assert(stat(p, &st) == 0 && st.st_uid == 3456, "and so on down");
	fx_run_end(&r);
}

Test(workspace_undo, restores_the_originals_then_has_nothing_left)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	char *orig = fx_tree(r.host);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char undo[4300];
	snprintf(undo, sizeof(undo), "%s/run-undo", r.base);
	struct workspace_apply_options o = { .undo_dir = undo };
	cr_assert_gt(workspace_apply(&r.c, &o, &e), 0, "%s", e.msg);
	struct workspace_undo_report rep;
	cr_assert_eq(workspace_undo(undo, &rep, &e), 0, "%s", e.msg);
	cr_assert_eq(rep.refused, 0);
	char *now = fx_tree(r.host);
	cr_assert_str_eq(now, orig);
	free(now);
	cr_assert_eq(workspace_undo(undo, &rep, &e), -ENOENT);
	free(orig);
	fx_run_end(&r);
}

Test(workspace_undo, refuses_files_changed_since_the_apply)
{
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char undo[4300];
	snprintf(undo, sizeof(undo), "%s/run-undo", r.base);
	struct workspace_apply_options o = { .undo_dir = undo };
	cr_assert_gt(workspace_apply(&r.c, &o, &e), 0, "%s", e.msg);
	fx_put(r.host, "notes.txt", "edited after the apply\n");
	struct workspace_undo_report rep;
	cr_assert_eq(workspace_undo(undo, &rep, &e), -EBUSY);
	cr_assert_eq(rep.refused, 1, "%s", rep.refused_paths);
	cr_assert_str_eq(rep.refused_paths, "notes.txt");
	char *s = fx_read(r.host, "notes.txt");
	cr_assert_str_eq(s, "edited after the apply\n", "a refused file is left alone");
	free(s);
	cr_assert(fx_exists(r.host, "gone.txt"), "the rest was restored");
	s = fx_read(r.host, "olddir/x");
	cr_assert_str_eq(s, "x\n");
	free(s);
	/* put it back by hand; a second undo finishes */
	fx_put(r.host, "notes.txt", "one\ntwo\nthree\n");
	cr_assert_eq(workspace_undo(undo, &rep, &e), 0, "%s", e.msg);
	s = fx_read(r.host, "notes.txt");
	cr_assert_str_eq(s, "one\ntwo\n");
	free(s);
	fx_run_end(&r);
}

Test(workspace_undo, the_cli_finds_the_run_and_refuses_bad_ids)
{
	const char *bin = getenv("IRONCLAW_BIN");
	if (!bin)
		cr_skip_test("IRONCLAW_BIN not set");
	struct fx_run r;
	struct err e = { 0 };
	fixture(&r);
	cr_assert_eq(fx_run_compute(&r, &e), 0, "%s", e.msg);
	char undo[4300], cmd[9000];
	snprintf(undo, sizeof(undo), "%s/runs", r.base);
	mkdir(undo, 0700);
	snprintf(undo, sizeof(undo), "%s/runs/r-1", r.base);
	mkdir(undo, 0700);
	snprintf(undo, sizeof(undo), "%s/runs/r-1/undo", r.base);
	struct workspace_apply_options o = { .undo_dir = undo };
	cr_assert_gt(workspace_apply(&r.c, &o, &e), 0, "%s", e.msg);
	snprintf(cmd, sizeof(cmd), "%s undo --runs-dir %s/runs ../r-1 2>/dev/null", bin, r.base);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "%s undo --runs-dir %s/runs r-1 >/dev/null", bin, r.base);
	cr_assert_eq(WEXITSTATUS(system(cmd)), 0);
	cr_assert(fx_exists(r.host, "gone.txt"));
	cr_assert_eq(WEXITSTATUS(system(cmd)), 1, "nothing left to undo");
	fx_run_end(&r);
}
