/* The one place the daemon makes a VM, and the owner indirection around it.
 *
 * A VM is restored from its shape's template when there is one (tpl.c), and
 * `made` says "snapshot"; else it boots cold and says "cold". A restore that
 * fails before the VM is ready (QEMU refused the state, the guest did not
 * answer) is not the owner's problem: the VM is destroyed and booted cold in
 * the same serve_vm, the reason logged and counted
 * (ironclaw_restore_fallbacks_total). Everyone above (the pool, sandboxes)
 * only sees a serve_vm and the word in `made`.
 *
 * Boots are admitted a few at a time (cfg.max_booting): twenty cold boots at
 * once on two cores each take long enough to miss their readiness deadline,
 * while queued ones start only when a slot frees, with their own deadline.
 *
 * A VM is destroyed with vm_destroy_now: it is never reused, so its VMM is
 * killed at once rather than its guest asked to power off.
 *
 * vm_create fixes a VM's event context for its whole life, but a pool VM
 * changes hands: it is made for the pool and used by a sandbox. So vm events
 * go to the serve_vm, which forwards them to its current owner. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/internal.h"

int serve_shape_equal(const struct serve_shape *a, const struct serve_shape *b)
{
	return a->cpus == b->cpus && a->memory_mib == b->memory_mib && a->net == b->net &&
	       !strcmp(a->net_spec, b->net_spec) && !strcmp(a->root_image, b->root_image);
}

static int shape_is_id(const char *ref)
{
	size_t n = strlen(ref);
	if (n != IMAGE_ID_HEX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", ref[i]))
			return 0;
	return 1;
}

int serve_shape_set_image(struct serve_shape *sh, const char *ref, struct err *e)
{
	int rc;
	if (!strcmp(ref, "default")) {
		sh->image[0] = sh->root_image[0] = 0;
		return 0;
	}
	if (strchr(ref, '/') || strlen(ref) > IMAGE_NAME_MAX)
		return err_set(e, -EINVAL, "'image' must be \"default\" or an image name or id "
			       "from `ironclaw image ls`, not a path");
	if (shape_is_id(ref)) {
		/* By id: ids/<id>/rootfs.ext4 in the store (image.h). */
		char store[IMAGE_PATH_MAX];
		if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
			return rc;
		if ((size_t)snprintf(sh->root_image, sizeof(sh->root_image), "%s/ids/%s/rootfs.ext4",
				     store, ref) >= sizeof(sh->root_image))
			return err_set(e, -ENAMETOOLONG, "the image store's path is too long");
		if (access(sh->root_image, R_OK) < 0) {
			sh->root_image[0] = 0;
			return err_set(e, -ENOENT, "no image with id %.12s in %s (hint: `ironclaw image "
				       "ls` lists them)", ref, store);
		}
		if ((rc = image_check_file(sh->root_image, e)) < 0) {
			sh->root_image[0] = 0;
			return rc;
		}
	} else {
		struct image_info info;
		if ((rc = image_lookup(ref, &info, e)) < 0)
			return rc;
		snprintf(sh->root_image, sizeof(sh->root_image), "%s", info.path);
		image_info_free(&info);
	}
	/* One file, one shape: a name and an id of the same image both come out
	 * as <store>/ids/<id>/rootfs.ext4, so they share a pool lane and a
	 * template. No realpath: in the API process the store is reached through
	 * /proc/self/fd (priv_images.c), and the home above it cannot be walked. */
	snprintf(sh->image, sizeof(sh->image), "%s", ref);
	return 0;
}

static void vmmake_pump(struct serve *s);

/* The VM left the booting state (ready, failed or destroyed first). */
static void vmmake_unbook(struct serve_vm *sv)
{
	if (!sv->booting)
		return;
	sv->booting = 0;
	sv->s->booting--;
	vmmake_pump(sv->s);
}

static void vmmake_on_ready(struct vm *vm, void *ctx)
{
	struct serve_vm *sv = ctx;
	(void)vm;
	vmmake_unbook(sv);
	sv->ready = 1;
	sv->ready_ms = clock_now_ms();
	double ms = sv->ready_ms - sv->t0_ms;
	int restored = !strcmp(sv->made, "snapshot");
	serve_hist_add(restored ? &sv->s->m.restore_ms : &sv->s->m.boot_ms, ms);
	sv->s->m.vms_made[restored ? 0 : 1]++;
	if (sv->owner->ready)
		sv->owner->ready(sv, sv->ctx);
}

static void vmmake_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct serve_vm *sv = ctx;
	vmmake_unbook(sv);
	if (sv->tpl && !sv->ready && !sv->destroying && !sv->s->stopping) {
		/* Boot it cold instead, once this VM is gone (vmmake_on_destroyed). */
		serve_tpl_restore_failed(sv->tpl, e);
		sv->tpl = NULL;
		sv->cold_only = 1;
		sv->fallback = 1;
		vm_destroy(vm);
		return;
	}
	sv->failed = 1;
	if (sv->owner->failed)
		sv->owner->failed(sv, e, sv->ctx);
}

static void vmmake_on_destroyed(struct vm *vm, void *ctx)
{
	struct serve_vm *sv = ctx;
	struct serve *s = sv->s;
	log_debug("serve: VM %s stopped: %s", vm_id(vm), vm_stop_how(vm));
	sv->vm = NULL;
	vmmake_unbook(sv);
	if (sv->fallback && !sv->destroying) {
		sv->fallback = 0;
		serve_vm_admit(sv);
		return;
	}
	if (sv->owner->destroyed)
		sv->owner->destroyed(sv, sv->ctx);
	free(sv);
	serve_vm_gone(s);
}

static const struct vm_events vmmake_events = {
	.ready = vmmake_on_ready,
	.failed = vmmake_on_failed,
	.destroyed = vmmake_on_destroyed,
};

static int vmmake_start(struct serve_vm *sv, struct err *e)
{
	struct serve *s = sv->s;
	sv->made = sv->tpl ? "snapshot" : "cold";
	sv->t0_ms = clock_now_ms(); /* boot latency: from the boot's start, not the queue's */
	struct vm_options vo = {
		.cpus = sv->shape.cpus,
		.memory_mib = sv->shape.memory_mib,
		.boot_timeout_ms = s->cfg.boot_timeout_s * 1000,
		.net = sv->shape.net,
		.allow = sv->shape.allow,
		.n_allow = sv->shape.n_allow,
		.root_image = sv->shape.root_image[0] ? sv->shape.root_image : NULL,
		.restore_from = sv->tpl ? sv->tpl->t.state : NULL,
	};
	sv->booting = 1;
	s->booting++;
	int rc = vm_create(s->loop, &vo, &vmmake_events, sv, &sv->vm, e);
	if (rc < 0) {
		sv->booting = 0;
		s->booting--;
		sv->vm = NULL;
	}
	return rc;
}

static void vmmake_pump(struct serve *s)
{
	while (s->queue && s->booting < s->cfg.max_booting) {
		struct serve_vm *sv = s->queue;
		struct err e = { 0 };
		s->queue = sv->qnext;
		if (!s->queue)
			s->queue_tail = NULL;
		sv->queued = 0;
		sv->qnext = NULL;
		if (vmmake_start(sv, &e) < 0) {
			sv->failed = 1;
			if (sv->owner->failed)
				sv->owner->failed(sv, &e, sv->ctx);
		}
	}
}

/* Queues sv for a boot slot: a client waits on this boot; a pool refill can
 * wait longer. */
static void vmmake_enqueue(struct serve_vm *sv)
{
	struct serve *s = sv->s;
	sv->queued = 1;
	struct serve_vm **pp = &s->queue;
	while (*pp && (sv->owner->background || !(*pp)->owner->background))
		pp = &(*pp)->qnext;
	sv->qnext = *pp;
	*pp = sv;
	if (!sv->qnext)
		s->queue_tail = sv;
}

/* 0: started, queued or waiting for its template lookup; < 0: the start
 * failed with e set (nothing was made). */
static int vmmake_try(struct serve_vm *sv, struct err *e)
{
	struct serve *s = sv->s;
	int wait = 0;
	sv->tpl = serve_tpl_for(s, sv, &wait);
	if (wait)
		return 0;
	if (s->booting >= s->cfg.max_booting) {
		vmmake_enqueue(sv);
		return 0;
	}
	return vmmake_start(sv, e);
}

void serve_vm_admit(struct serve_vm *sv)
{
	struct err e = { 0 };
	if (vmmake_try(sv, &e) < 0) {
		sv->failed = 1;
		if (sv->owner->failed)
			sv->owner->failed(sv, &e, sv->ctx);
	}
}

int serve_vm_make(struct serve *s, const struct serve_shape *shape,
		  const struct serve_vm_owner *o, void *ctx, struct serve_vm **out, struct err *e)
{
	struct serve_vm *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return err_set(e, -ENOMEM, "out of memory");
	sv->s = s;
	sv->shape = *shape;
	sv->owner = o;
	sv->ctx = ctx;
	sv->t0_ms = clock_now_ms();
	sv->made = "cold";
	/* *out first: an owner callback may look at it before we return. */
	*out = sv;
	s->vms_alive++;
	int rc = vmmake_try(sv, e);
	if (rc < 0) {
		s->vms_alive--;
		*out = NULL;
		free(sv);
	}
	return rc;
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
	if (sv->vm) {
		/* Every daemon VM is used once: nothing of its guest is kept, so
		 * it is not asked to power off (which costs tens of ms). */
		vm_destroy_now(sv->vm);
		return;
	}
	/* Queued, waiting for its template, or its start failed: nothing was
	 * made; gone at once. */
	struct serve *s = sv->s;
	if (sv->tpl_wait)
		serve_tpl_unwait(sv);
	for (struct serve_vm **pp = &s->queue; *pp; pp = &(*pp)->qnext) {
		if (*pp == sv) {
			*pp = sv->qnext;
			break;
		}
	}
	s->queue_tail = NULL;
	for (struct serve_vm *q = s->queue; q; q = q->qnext)
		s->queue_tail = q;
	if (sv->owner->destroyed)
		sv->owner->destroyed(sv, sv->ctx);
	free(sv);
	serve_vm_gone(s);
}
