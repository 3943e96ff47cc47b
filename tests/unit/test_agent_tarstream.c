/* The workspace's tar stream on the host (src/agent/tarstream.c), the part
 * both sandboxes share: a source packs a tree chunk by chunk on the thread
 * pool, a sink unpacks pieces fed on the loop. A source read straight into a
 * sink round-trips a tree of several chunks; a cut stream, a stream that is
 * not a tar, and a tree over the caps are errors, never a whole workspace. */
#include "test_workspace_fixture.h"

#include <uv.h>

#include "agent/tarstream.h"

struct pipe_run {
	uv_loop_t loop;
	struct agent_tar_source *src;
	struct agent_tar_sink *sink;
	size_t cut_after;         /* feed at most this many bytes, then end as cut (0: all) */
	size_t fed;
	struct buf *keep;         /* a copy of every byte fed (optional) */
	int src_failed, sink_done, sink_failed;
	char why[ERR_MSG_MAX];
};

static void on_sink(void *ctx, const struct err *e)
{
	struct pipe_run *p = ctx;
	p->sink_done = 1;
	p->sink_failed = e != NULL;
	if (e)
		snprintf(p->why, sizeof(p->why), "%s", e->msg);
}

static void on_chunk(void *ctx, const uint8_t *d, size_t n, const struct err *e)
{
	struct pipe_run *p = ctx;
	struct err re = { 0 };
	if (e) {
		p->src_failed = 1;
		snprintf(p->why, sizeof(p->why), "%s", e->msg);
		agent_tar_sink_end(p->sink, 1);
		return;
	}
	if (n == 0) {
		agent_tar_sink_end(p->sink, 0);
		return;
	}
	if (p->cut_after && p->fed + n > p->cut_after) {
		cr_assert_eq(agent_tar_sink_feed(p->sink, d, p->cut_after - p->fed), 0);
		agent_tar_sink_end(p->sink, 1);
		return;
	}
	p->fed += n;
	if (p->keep)
		cr_assert_eq(buf_append(p->keep, d, n), 0);
	cr_assert_eq(agent_tar_sink_feed(p->sink, d, n), 0);
	cr_assert_eq(agent_tar_source_read(p->src, on_chunk, p, &re), 0, "%s", re.msg);
}

/* Packs root with o into a sink staging at staging; returns the sink's verdict. */
static void pipe_tree(struct pipe_run *p, const char *root, const struct workspace_pack_options *o,
		      const char *staging, struct workspace_manifest *before,
		      struct workspace_manifest *after)
{
	struct err e = { 0 };
	uv_loop_init(&p->loop);
	cr_assert_eq(agent_tar_source_new(&p->loop, root, o, &p->src, &e), 0, "%s", e.msg);
	cr_assert_eq(agent_tar_sink_new(&p->loop, staging, NULL, after, on_sink, p, &p->sink, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(agent_tar_source_read(p->src, on_chunk, p, &e), 0, "%s", e.msg);
	uv_run(&p->loop, UV_RUN_DEFAULT);
	cr_assert(p->sink_done, "the sink never finished");
	if (before)
		agent_tar_source_take_manifest(p->src, before);
	agent_tar_source_free(p->src);
	agent_tar_sink_free(p->sink);
	cr_assert_eq(uv_loop_close(&p->loop), 0);
}

static char *big_tree(void)
{
	char *root = fx_tmpdir();
	size_t n = (3u << 20) + 12345;   /* more than three chunks */
	char *blob = malloc(n);
	for (size_t i = 0; i < n; i++)
		blob[i] = (char)(i * 2654435761u >> 13);
	fx_write(root, "blob.bin", blob, n, 0640);
	free(blob);
	fx_put(root, "notes.txt", "hello\n");
	fx_mkdir(root, "src", 0755);
	fx_put(root, "src/main.c", "int main(void) { return 0; }\n");
	fx_symlink(root, "link", "notes.txt");
	return root;
}

Test(agent_tarstream, a_source_into_a_sink_round_trips_a_tree_of_several_chunks)
{
	char *root = big_tree();
	char st[4200];
	snprintf(st, sizeof(st), "%s-staging", root);
	struct pipe_run p = { 0 };
	struct workspace_manifest before = { 0 }, after = { 0 };
	pipe_tree(&p, root, NULL, st, &before, &after);
	cr_assert_not(p.sink_failed, "%s", p.why);
	cr_assert_not(p.src_failed, "%s", p.why);
	cr_assert_gt(p.fed, 3u << 20, "several chunks went through: %zu bytes", p.fed);
	cr_assert_eq(before.n, 5);
	cr_assert_eq(after.n, before.n);
	for (size_t i = 0; i < before.n; i++) {
		cr_assert_str_eq(after.v[i].path, before.v[i].path);
		cr_assert_eq(memcmp(after.v[i].sha256, before.v[i].sha256, 32), 0, "%s", before.v[i].path);
	}
	/* The staged bytes are the tree's (staging keeps its own modes). */
	const char *files[] = { "blob.bin", "notes.txt", "src/main.c" };
	for (size_t i = 0; i < 3; i++) {
		char *a = fx_read(root, files[i]), *b = fx_read(st, files[i]);
		cr_assert(a && b, "%s", files[i]);
		cr_assert_str_eq(a, b, "%s", files[i]);
		free(a);
		free(b);
	}
	workspace_manifest_free(&before);
	workspace_manifest_free(&after);
	free(root);
}

Test(agent_tarstream, a_cut_stream_is_an_error_not_a_shorter_workspace)
{
	char *root = big_tree();
	char st[4200];
	snprintf(st, sizeof(st), "%s-staging", root);
	struct pipe_run p = { .cut_after = (2u << 20) + 700 };
	struct workspace_manifest after = { 0 };
	pipe_tree(&p, root, NULL, st, NULL, &after);
	cr_assert(p.sink_failed, "a stream cut in the middle was accepted");
	free(root);
}

/* Cut exactly where the entries end and the end-of-archive blocks begin: every
 * entry is whole, so only the transport's word that the stream was cut tells
 * it from a finished one. */
Test(agent_tarstream, a_stream_cut_between_entries_is_an_error_too)
{
	char *root = big_tree();
	char st[4200], st2[4300];
	snprintf(st, sizeof(st), "%s-staging", root);
	snprintf(st2, sizeof(st2), "%s-staging2", root);
	struct buf all;
	buf_init(&all, 64u << 20);
	struct pipe_run whole = { .keep = &all };
	struct workspace_manifest after = { 0 }, after2 = { 0 };
	pipe_tree(&whole, root, NULL, st, NULL, &after);
	cr_assert_not(whole.sink_failed, "%s", whole.why);
	workspace_manifest_free(&after);
	/* The entries end at the last non-zero byte, rounded up to a 512-byte
	 * block; the zero blocks after it are the end-of-archive marker and the
	 * record's padding. */
	size_t end = all.len;
	while (end && all.data[end - 1] == 0)
		end--;
	end = (end + 511) / 512 * 512;
	cr_assert_lt(end + 1024, all.len + 1, "a marker follows the entries");
	buf_free(&all);
	struct pipe_run p = { .cut_after = end };
	pipe_tree(&p, root, NULL, st2, NULL, &after2);
	cr_assert(p.sink_failed, "a stream cut before its end-of-archive marker was accepted");
	free(root);
}

Test(agent_tarstream, bytes_that_are_not_a_tar_are_refused)
{
	char *root = fx_tmpdir();
	char st[4200];
	snprintf(st, sizeof(st), "%s-staging", root);
	struct pipe_run p = { 0 };
	struct err e = { 0 };
	struct workspace_manifest after = { 0 };
	uv_loop_init(&p.loop);
	cr_assert_eq(agent_tar_sink_new(&p.loop, st, NULL, &after, on_sink, &p, &p.sink, &e), 0);
	static const char junk[1024] = "this is not a tar archive";
	cr_assert_eq(agent_tar_sink_feed(p.sink, junk, sizeof(junk)), 0);
	agent_tar_sink_end(p.sink, 0);
	uv_run(&p.loop, UV_RUN_DEFAULT);
	cr_assert(p.sink_done && p.sink_failed, "junk was accepted as a workspace");
	/* Once the unpacker ended, more bytes are dropped, not queued. */
	cr_assert_eq(agent_tar_sink_feed(p.sink, junk, sizeof(junk)), 0);
	agent_tar_sink_free(p.sink);
	cr_assert_eq(uv_loop_close(&p.loop), 0);
	free(root);
}

Test(agent_tarstream, a_tree_over_the_caps_fails_at_the_first_read)
{
	char *root = big_tree();
	char st[4200];
	snprintf(st, sizeof(st), "%s-staging", root);
	struct workspace_pack_options o = { .limits = { .max_files = 2 } };
	struct pipe_run p = { 0 };
	struct workspace_manifest after = { 0 };
	pipe_tree(&p, root, &o, st, NULL, &after);
	cr_assert(p.src_failed, "a tree over max_files was packed");
	cr_assert_eq(p.fed, 0, "nothing was sent");
	cr_assert(p.sink_failed);
	free(root);
}
