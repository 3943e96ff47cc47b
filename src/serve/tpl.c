/* The daemon's templates: for each VM shape it makes (image, cpus, memory; no NIC,
 * since a guest's address is part of its saved state), the template that VMs
 * of that shape are restored from (vm/template.h, docs/snapshots.md).
 *
 * The first VM of a shape looks the template up on the thread pool
 * (vm_template_find: the state is checked against its manifest, hashes
 * memoised) and every make of that shape waits for the answer; it is quick
 * next to a boot. Found: every later VM of the shape is a restore. None, or
 * one that is unusable (corrupt, truncated; logged and counted): the template
 * is built in the background (vm_template_build boots one VM of its own) and
 * VMs boot cold until it is there. A failed build, or a restore QEMU or the
 * guest refused, turns the template off for SERVE_TPL_RETRY_MS, after which it
 * is looked up again, so a broken template never costs more than one wasted
 * restore per minute. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "serve/internal.h"

static void tpl_settle(struct serve_tpl *tp)
{
	struct serve_vm *w = tp->waiters;
	tp->waiters = NULL;
	while (w) {
		struct serve_vm *next = w->tnext;
		w->tnext = NULL;
		w->tpl_wait = 0;
		serve_vm_admit(w);
		w = next;
	}
}

static void tpl_fail(struct serve_tpl *tp)
{
	tp->state = TPL_FAILED;
	tp->retry_at = uv_now(tp->s->loop) + SERVE_TPL_RETRY_MS;
}

static void tpl_on_built(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct serve_tpl *tp = ctx;
	if (t) {
		tp->t = *t;
		tp->state = TPL_READY;
		tp->s->m.tpl_built++;
		log_info("serve: template %.12s built for image %s, %u cpus, %u MiB (%llu bytes of "
			 "state)", t->key, tp->image, tp->cpus, tp->memory_mib,
			 (unsigned long long)t->state_bytes);
	} else {
		tp->s->m.tpl_build_failures++;
		log_warn("serve: building the template for image %s, %u cpus, %u MiB failed: %s; VMs "
			 "of that shape boot cold", tp->image, tp->cpus, tp->memory_mib, e->msg);
		tpl_fail(tp);
	}
}

static void tpl_build(struct serve_tpl *tp)
{
	struct err e = { 0 };
	struct vm_template_shape shape = { .cpus = tp->cpus, .memory_mib = tp->memory_mib,
						  .root_image = tp->root_image[0] ? tp->root_image
										 : NULL };
	tp->state = TPL_BUILDING;
	if (tp->s->stopping) {
		tpl_fail(tp);
		return;
	}
	if (vm_template_build(tp->s->loop, &shape, tpl_on_built, tp, &e) < 0) {
		tp->s->m.tpl_build_failures++;
		log_warn("serve: cannot build a template: %s", e.msg);
		tpl_fail(tp);
	}
}

static void tpl_on_found(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct serve_tpl *tp = ctx;
	if (t) {
		tp->t = *t;
		tp->state = TPL_READY;
		log_info("serve: VMs of image %s, %u cpus, %u MiB restore from template %.12s",
			 tp->image, tp->cpus, tp->memory_mib, t->key);
	} else {
		if (e->code != -ENOENT) {
			tp->s->m.tpl_unusable++;
			log_warn("serve: %s; booting cold and rebuilding it", e->msg);
		}
		tpl_build(tp);
	}
	tpl_settle(tp);
}

static struct serve_tpl *tpl_get(struct serve *s, const struct serve_shape *shape)
{
	size_t i;
	for (i = 0; i < SERVE_TPL_MAX && s->tpls[i]; i++)
		if (s->tpls[i]->cpus == shape->cpus && s->tpls[i]->memory_mib == shape->memory_mib &&
		    !strcmp(s->tpls[i]->root_image, shape->root_image))
			return s->tpls[i];
	if (i == SERVE_TPL_MAX)
		return NULL;   /* that many shapes: the rest boot cold */
	struct serve_tpl *tp = calloc(1, sizeof(*tp));
	if (!tp)
		return NULL;
	tp->s = s;
	tp->cpus = shape->cpus;
	tp->memory_mib = shape->memory_mib;
	snprintf(tp->image, sizeof(tp->image), "%s", shape->image[0] ? shape->image : "default");
	snprintf(tp->root_image, sizeof(tp->root_image), "%s", shape->root_image);
	s->tpls[i] = tp;
	return tp;
}

struct serve_tpl *serve_tpl_for(struct serve *s, struct serve_vm *sv, int *wait)
{
	*wait = 0;
	if (s->cfg.no_snapshot || sv->shape.net || sv->cold_only || s->stopping)
		return NULL;
	struct serve_tpl *tp = tpl_get(s, &sv->shape);
	if (!tp)
		return NULL;
	if (tp->state == TPL_FAILED && uv_now(s->loop) >= tp->retry_at)
		tp->state = TPL_UNKNOWN;
	if (tp->state == TPL_UNKNOWN) {
		struct vm_template_shape shape = { .cpus = tp->cpus, .memory_mib = tp->memory_mib,
						  .root_image = tp->root_image[0] ? tp->root_image
										 : NULL };
		struct err e = { 0 };
		if (vm_template_find(s->loop, &shape, tpl_on_found, tp, &e) < 0) {
			log_warn("serve: looking up a template: %s", e.msg);
			tpl_fail(tp);
			return NULL;
		}
		tp->state = TPL_FINDING;
	}
	if (tp->state == TPL_FINDING) {
		sv->tpl_wait = 1;
		sv->tnext = tp->waiters;
		tp->waiters = sv;
		*wait = 1;
		return NULL;
	}
	return tp->state == TPL_READY ? tp : NULL;
}

void serve_tpl_restore_failed(struct serve_tpl *tp, const struct err *e)
{
	tp->s->m.restore_fallbacks++;
	log_warn("serve: restoring from template %.12s failed: %s; booting cold", tp->t.key,
		 e->msg);
	if (tp->state == TPL_READY)
		tpl_fail(tp);
}

void serve_tpl_unwait(struct serve_vm *sv)
{
	struct serve *s = sv->s;
	for (size_t i = 0; i < SERVE_TPL_MAX && s->tpls[i]; i++) {
		for (struct serve_vm **pp = &s->tpls[i]->waiters; *pp; pp = &(*pp)->tnext) {
			if (*pp == sv) {
				*pp = sv->tnext;
				sv->tnext = NULL;
				sv->tpl_wait = 0;
				return;
			}
		}
	}
}

void serve_tpl_free_all(struct serve *s)
{
	for (size_t i = 0; i < SERVE_TPL_MAX; i++) {
		free(s->tpls[i]);
		s->tpls[i] = NULL;
	}
}
