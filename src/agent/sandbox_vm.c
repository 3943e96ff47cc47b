/* The in-process sandbox (sandbox.h): a VM made by this process with
 * vm_create, its commands through vmcall.c and its workspace through copy.c.
 * The jail needs root. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent/sandbox.h"
#include "core/clock.h"

struct sandbox_vm {
	struct agent_sandbox sb;    /* first: the handle callers see */
	struct vm *vm;
};

static int sbvm_exec(struct agent_sandbox *sb, const struct vmcall_spec *spec, vmcall_cb cb,
		     void *ctx, struct err *e)
{
	return vmcall_start(((struct sandbox_vm *)sb)->vm, spec, cb, ctx, e);
}

static int sbvm_copy_in(struct agent_sandbox *sb, const char *root,
			const struct workspace_pack_options *po, struct workspace_manifest *manifest,
			agent_copy_cb cb, void *ctx, struct err *e)
{
	return agent_copy_in(sb->loop, ((struct sandbox_vm *)sb)->vm, root, po, manifest, cb, ctx, e);
}

static int sbvm_copy_out(struct agent_sandbox *sb, const char *staging,
			 const struct workspace_manifest *before, struct workspace_manifest *after,
			 agent_copy_cb cb, void *ctx, struct err *e)
{
	return agent_copy_out_against(sb->loop, ((struct sandbox_vm *)sb)->vm, staging, before,
				      after, cb, ctx, e);
}

static void sbvm_destroy(struct agent_sandbox *sb)
{
	vm_destroy(((struct sandbox_vm *)sb)->vm);
}

static const struct agent_sandbox_ops sbvm_ops = {
	.exec = sbvm_exec,
	.copy_in = sbvm_copy_in,
	.copy_out = sbvm_copy_out,
	.destroy = sbvm_destroy,
};

static void sbvm_on_ready(struct vm *vm, void *ctx)
{
	struct sandbox_vm *s = ctx;
	snprintf(s->sb.id, sizeof(s->sb.id), "%s", vm_id(vm));
	s->sb.ready_ms = vm_boot_ms(vm);
	s->sb.ev->ready(&s->sb, s->sb.ctx);
}

static void sbvm_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct sandbox_vm *s = ctx;
	(void)vm;
	s->sb.ev->failed(&s->sb, e, s->sb.ctx);
}

static void sbvm_on_destroyed(struct vm *vm, void *ctx)
{
	struct sandbox_vm *s = ctx;
	(void)vm;
	s->sb.ev->destroyed(&s->sb, s->sb.ctx);
	free(s);
}

int agent_sandbox_vm_new(uv_loop_t *loop, const struct vm_options *o,
			 const struct agent_sandbox_events *ev, void *ctx,
			 struct agent_sandbox **out, struct err *e)
{
	struct sandbox_vm *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	s->sb.ops = &sbvm_ops;
	s->sb.loop = loop;
	s->sb.made = o->restore_from ? "snapshot" : "cold";
	s->sb.via = "in-process";
	s->sb.ev = ev;
	s->sb.ctx = ctx;
	static const struct vm_events vev = {
		.ready = sbvm_on_ready,
		.failed = sbvm_on_failed,
		.destroyed = sbvm_on_destroyed,
	};
	*out = &s->sb;
	int rc = vm_create(loop, o, &vev, s, &s->vm, e);
	if (rc < 0) {
		/* vm_create gives no handle on this path: nothing to destroy. */
		if (!s->vm) {
			free(s);
			*out = NULL;
		}
		return rc;
	}
	return 0;
}
