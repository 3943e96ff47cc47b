/* The one place the daemon makes a VM, and the owner indirection around it.
 *
 * Today every VM is a cold boot (vm_create); when snapshot templates land, the
 * template lookup and `restore_from` go here and nowhere else, and `made`
 * becomes "snapshot" for a restored VM. Everyone above (the pool, sandboxes)
 * only sees a serve_vm and the word in `made`.
 *
 * vm_create fixes a VM's event context for its whole life, but a pool VM
 * changes hands: it is made for the pool and used by a sandbox. So vm events
 * go to the serve_vm, which forwards them to its current owner. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/internal.h"

int serve_shape_equal(const struct serve_shape *a, const struct serve_shape *b)
{
	return a->cpus == b->cpus && a->memory_mib == b->memory_mib && a->net == b->net &&
	       !strcmp(a->net_spec, b->net_spec);
}

static void vmmake_on_ready(struct vm *vm, void *ctx)
{
	struct serve_vm *sv = ctx;
	(void)vm;
	sv->ready = 1;
	sv->ready_ms = clock_now_ms();
	double ms = sv->ready_ms - sv->t0_ms;
	serve_hist_add(!strcmp(sv->made, "snapshot") ? &sv->s->m.restore_ms : &sv->s->m.boot_ms,
		       ms);
	if (sv->owner->ready)
		sv->owner->ready(sv, sv->ctx);
}

static void vmmake_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct serve_vm *sv = ctx;
	(void)vm;
	sv->failed = 1;
	if (sv->owner->failed)
		sv->owner->failed(sv, e, sv->ctx);
}

static void vmmake_on_destroyed(struct vm *vm, void *ctx)
{
	struct serve_vm *sv = ctx;
	struct serve *s = sv->s;
	(void)vm;
	sv->vm = NULL;
	if (sv->owner->destroyed)
		sv->owner->destroyed(sv, sv->ctx);
	free(sv);
	serve_vm_gone(s);
}

int serve_vm_make(struct serve *s, const struct serve_shape *shape,
		  const struct serve_vm_owner *o, void *ctx, struct serve_vm **out, struct err *e)
{
	static const struct vm_events events = {
		.ready = vmmake_on_ready,
		.failed = vmmake_on_failed,
		.destroyed = vmmake_on_destroyed,
	};
	struct serve_vm *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return err_set(e, -ENOMEM, "out of memory");
	sv->s = s;
	sv->shape = *shape;
	sv->owner = o;
	sv->ctx = ctx;
	sv->t0_ms = clock_now_ms();
	/* The seam: a template restore (vo.restore_from, made = "snapshot")
	 * replaces this cold boot once snapshots land. */
	sv->made = "cold";
	struct vm_options vo = {
		.cpus = shape->cpus,
		.memory_mib = shape->memory_mib,
		.net = shape->net,
		.allow = sv->shape.allow,
		.n_allow = shape->n_allow,
	};
	/* *out first: an owner callback may look at it before we return. */
	*out = sv;
	s->vms_alive++;
	int rc = vm_create(s->loop, &vo, &events, sv, &sv->vm, e);
	if (rc < 0) {
		s->vms_alive--;
		*out = NULL;
		free(sv);
		return rc;
	}
	return 0;
}

void serve_vm_handover(struct serve_vm *sv, const struct serve_vm_owner *o, void *ctx)
{
	sv->owner = o;
	sv->ctx = ctx;
}

void serve_vm_destroy(struct serve_vm *sv)
{
	if (sv->destroying)
		return;
	sv->destroying = 1;
	vm_destroy(sv->vm);
}
