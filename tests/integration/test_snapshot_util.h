/* Shared by the snapshot tests: the template for a shape, built on a private
 * loop (as `serve` would) when none fits yet. Header-only, like the other
 * test_*_util.h, because it asserts with Criterion. */
#ifndef IRONCLAW_TESTS_SNAPSHOT_UTIL_H
#define IRONCLAW_TESTS_SNAPSHOT_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <uv.h>

#include "vm/template.h"

struct snap_built {
	struct vm_template t;
	struct err e;
	int done, ok;
};

static inline void snap_on_template(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct snap_built *b = ctx;
	b->done = 1;
	if (t) {
		b->t = *t;
		b->ok = 1;
	} else {
		b->e = *e;
	}
}

static inline void snap_template_get(const struct vm_template_shape *s, struct vm_template *out)
{
	struct err e = { 0 };
	if (vm_template_open(s, out, &e) == 0)
		return;
	cr_assert_eq(e.code, -ENOENT, "unexpected: %s", e.msg);
	uv_loop_t loop;
	struct snap_built b = { 0 };
	uv_loop_init(&loop);
	cr_assert_eq(vm_template_build(&loop, s, snap_on_template, &b, &e), 0, "%s", e.msg);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	cr_assert(b.done);
	cr_assert(b.ok, "building the template: %s", b.e.msg);
	cr_assert_eq(vm_template_open(s, out, &e), 0, "%s", e.msg);
}

#endif
