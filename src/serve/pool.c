/* The warm pool: per shape, N VMs booted ahead of demand, so that a sandbox
 * is a hand-over instead of a boot.
 *
 * Shapes are lanes: the default shape (--cpus, --memory, the default image),
 * and the same shape with each image that --pool-image names (an image of the
 * local store, src/image). Each lane holds N VMs, restored from its own
 * template (tpl.c keys them by image, cpus and memory). The caps below are
 * over the whole pool.
 *
 * A pool VM is used once: acquire hands it to the caller, who destroys it when
 * done; it never comes back, so no state crosses from one user to the next.
 * Every acquire (hit or miss) starts a refill. The pool stays within its size,
 * within its memory cap (VMs booting count), and within the daemon's total
 * memory cap. After idle_s without any acquire the pool drains to nothing and
 * refills only when demand returns. A VM that fails while waiting in the pool
 * is destroyed and counted; refills after failures are spaced out so that a
 * broken host does not boot-loop.
 *
 * A VM counts as ready only after the daemon ran one `true` in it (the
 * warm-up). Under TCG a fresh QEMU has translated none of the guest's exec
 * path yet: a restored clone's first exec took ~35 ms and the next ones ~9 ms
 * (measured with curl -w on one sandbox, docs/serve.md). The warm-up pays the
 * translation in the background, before any user holds the VM; it leaves
 * nothing behind in the guest (a process that exited and was reaped). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/internal.h"
#include "vm/exec.h"

#define POOL_RETRY_MS 2000
#define POOL_WARM_TIMEOUT_MS 30000

struct pool_entry {
	struct serve_pool *p;
	struct serve_vm *sv;
	unsigned lane;
	int ready;
	int warming;               /* the warm-up exec has not reported yet */
	int gone;                  /* destroyed while warming: its done frees pe */
	int killed;                /* pool_kill ran (a failure may be reported twice:
				    * by the warm-up exec and by the VM) */
};

struct serve_pool {
	struct serve *s;
	struct serve_shape lane[SERVE_POOL_LANES_MAX];
	unsigned n_lanes;
	unsigned size, memory_mib, idle_s;   /* size: per lane */
	struct pool_entry *e[SERVE_POOL_MAX];
	unsigned n;                /* entries held (booting + ready), all lanes */
	unsigned n_dying;          /* entries destroyed, not yet gone */
	unsigned held_mib;         /* guest memory of the entries held */
	unsigned dying_mib;        /* guest memory of the entries not yet gone */
	uint64_t last_demand;      /* uv_now of the last acquire */
	int drained;               /* idle: no refill until the next acquire */
	int closing;
	void (*closed)(struct serve *s);
	uv_timer_t timer;          /* refill retry and idle check */
	int timer_open;
	unsigned fail_streak;
};

static void pool_fill(struct serve_pool *p);

static unsigned pool_entry_mib(const struct serve_pool *p, const struct pool_entry *pe)
{
	return p->lane[pe->lane].memory_mib;
}

static void pool_remove(struct serve_pool *p, struct pool_entry *pe)
{
	for (unsigned i = 0; i < p->n; i++) {
		if (p->e[i] == pe) {
			p->e[i] = p->e[--p->n];
			p->held_mib -= pool_entry_mib(p, pe);
			return;
		}
	}
}

static void pool_timer_closed(uv_handle_t *h)
{
	struct serve_pool *p = h->data;
	void (*closed)(struct serve *s) = p->closed;
	struct serve *s = p->s;
	free(p);
	if (closed)
		closed(s);
}

static void pool_maybe_closed(struct serve_pool *p)
{
	if (p->closing && p->n == 0 && p->n_dying == 0 && p->timer_open) {
		p->timer_open = 0;
		uv_close((uv_handle_t *)&p->timer, pool_timer_closed);
	}
}

static void pool_on_failed(struct serve_vm *sv, const struct err *e, void *ctx);

static void pool_warm_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len,
			     void *ctx)
{
	(void)x, (void)stream, (void)data, (void)len, (void)ctx;
}

static void pool_warm_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct pool_entry *pe = ctx;
	(void)x;
	pe->warming = 0;
	if (pe->gone) {
		free(pe);
		return;
	}
	if (pe->killed)
		return;   /* pool_kill already took it out */
	/* The guest answered: the VM is good, whatever `true` did (an image
	 * without one still warmed the agent's side). Only a VM or channel
	 * failure, or a guest that never answered, fails it. */
	if ((r->err.code && !r->exec_errno) || r->timed_out) {
		struct err e = { 0 };
		err_set(&e, -EIO, "the pool VM's warm-up `true` failed: %s",
			r->err.code ? r->err.msg : "it timed out");
		pool_on_failed(pe->sv, &e, pe);
		return;
	}
	pe->ready = 1;
	pe->p->fail_streak = 0;
	pe->p->s->m.pool_made++;
	log_debug("serve: pool VM %s ready and warm in %.0f ms", vm_id(pe->sv->vm),
		  clock_now_ms() - pe->sv->t0_ms);
}

static const struct vm_exec_handlers pool_warm_handlers = {
	.output = pool_warm_output,
	.done = pool_warm_done,
};

static void pool_on_ready(struct serve_vm *sv, void *ctx)
{
	struct pool_entry *pe = ctx;
	static char *const argv[] = { "true", NULL };
	struct vm_exec_spec spec = { .argv = argv, .timeout_ms = POOL_WARM_TIMEOUT_MS };
	struct vm_exec *x;
	struct err e = { 0 };
	if (vm_exec_start(sv->vm, &spec, &pool_warm_handlers, pe, &x, &e) < 0) {
		pool_on_failed(sv, &e, pe);
		return;
	}
	pe->warming = 1;
}

static void pool_on_destroyed(struct serve_vm *sv, void *ctx)
{
	struct pool_entry *pe = ctx;
	struct serve_pool *p = pe->p;
	(void)sv;
	p->n_dying--;
	p->dying_mib -= pool_entry_mib(p, pe);
	if (pe->warming)
		pe->gone = 1;   /* its exec's done comes later and frees it */
	else
		free(pe);
	pool_maybe_closed(p);
}

static void pool_kill(struct serve_pool *p, struct pool_entry *pe)
{
	if (pe->killed)
		return;
	pe->killed = 1;
	pool_remove(p, pe);
	p->n_dying++;
	p->dying_mib += pool_entry_mib(p, pe);
	serve_vm_destroy(pe->sv);
}

static void pool_on_failed(struct serve_vm *sv, const struct err *e, void *ctx)
{
	struct pool_entry *pe = ctx;
	struct serve_pool *p = pe->p;
	(void)sv;
	if (pe->killed)
		return;
	log_warn("serve: a pool VM failed: %s", e->msg);
	p->s->m.pool_failures++;
	p->fail_streak++;
	pool_kill(p, pe);
	if (!p->closing)
		uv_timer_start(&p->timer, (uv_timer_cb)pool_fill, POOL_RETRY_MS * p->fail_streak, 0);
}

static const struct serve_vm_owner pool_owner = {
	.background = 1,
	.ready = pool_on_ready,
	.failed = pool_on_failed,
	.destroyed = pool_on_destroyed,
};

/* Memory the daemon may still give to a new VM of mib, over sandboxes and pool. */
static int pool_has_room(struct serve_pool *p, unsigned mib)
{
	struct serve *s = p->s;
	if (serve_pool_memory_mib(p) + mib > p->memory_mib)
		return 0;
	unsigned total = serve_sandbox_memory_mib(s) + serve_pool_memory_mib(p);
	if (total + mib > s->cfg.memory_mib)
		return 0;
	return 1;
}

static unsigned pool_lane_held(const struct serve_pool *p, unsigned lane)
{
	unsigned k = 0;
	for (unsigned i = 0; i < p->n; i++)
		k += p->e[i]->lane == lane;
	return k;
}

static void pool_fill(struct serve_pool *p)
{
	if (p->closing || p->drained || p->s->stopping)
		return;
	/* Lane by lane, one VM at a time round the lanes, so that a memory cap
	 * that cannot hold every lane still gives each a share. */
	for (int more = 1; more;) {
		more = 0;
		for (unsigned l = 0; l < p->n_lanes; l++) {
			unsigned mib = p->lane[l].memory_mib;
			if (pool_lane_held(p, l) >= p->size || p->n >= SERVE_POOL_MAX ||
			    !pool_has_room(p, mib))
				continue;
			struct pool_entry *pe = calloc(1, sizeof(*pe));
			struct err e = { 0 };
			if (!pe)
				return;
			pe->p = p;
			pe->lane = l;
			p->e[p->n++] = pe;
			p->held_mib += mib;
			if (serve_vm_make(p->s, &p->lane[l], &pool_owner, pe, &pe->sv, &e) < 0) {
				log_warn("serve: refilling the pool: %s", e.msg);
				pool_remove(p, pe);
				free(pe);
				p->s->m.pool_failures++;
				p->fail_streak++;
				uv_timer_start(&p->timer, (uv_timer_cb)pool_fill,
					       POOL_RETRY_MS * p->fail_streak, 0);
				return;
			}
			more = 1;
		}
	}
}

void serve_pool_tick(struct serve_pool *p)
{
	uint64_t now = uv_now(p->s->loop);
	if (p->closing || !p->idle_s || p->drained)
		return;
	if (now - p->last_demand < (uint64_t)p->idle_s * 1000)
		return;
	log_info("serve: no demand for %u s; draining the pool", p->idle_s);
	p->drained = 1;
	p->s->m.pool_drained++;
	while (p->n)
		pool_kill(p, p->e[0]);
}

int serve_pool_new(struct serve *s, const struct serve_shape *shape, unsigned size,
		   unsigned memory_mib, unsigned idle_s, struct serve_pool **out, struct err *e)
{
	struct serve_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	p->s = s;
	p->lane[0] = *shape;
	p->n_lanes = 1;
	for (unsigned i = 0; i < s->cfg.n_pool_images && p->n_lanes < SERVE_POOL_LANES_MAX; i++) {
		struct serve_shape *l = &p->lane[p->n_lanes];
		*l = *shape;
		struct err le = { 0 };
		if (serve_shape_set_image(l, s->cfg.pool_images[i], &le) < 0) {
			/* The other lanes still serve; this one is said loudly. */
			log_warn("serve: --pool-image %s: %s; not pooling it", s->cfg.pool_images[i],
				 le.msg);
			continue;
		}
		p->n_lanes++;
	}
	p->size = size > SERVE_POOL_MAX ? SERVE_POOL_MAX : size;
	p->memory_mib = memory_mib;
	for (unsigned l = 0; !memory_mib && l < p->n_lanes; l++)
		p->memory_mib += p->size * p->lane[l].memory_mib;
	p->idle_s = idle_s;
	p->last_demand = uv_now(s->loop);
	uv_timer_init(s->loop, &p->timer);
	p->timer.data = p;
	p->timer_open = 1;
	*out = p;
	pool_fill(p);
	return 0;
}

struct serve_vm *serve_pool_acquire(struct serve_pool *p, const struct serve_shape *shape)
{
	struct serve_vm *got = NULL;
	if (p->closing)
		return NULL;
	p->last_demand = uv_now(p->s->loop);
	p->drained = 0;
	unsigned lane = 0;
	while (lane < p->n_lanes && !serve_shape_equal(&p->lane[lane], shape))
		lane++;
	if (lane < p->n_lanes) {
		for (unsigned i = 0; i < p->n; i++) {
			struct pool_entry *pe = p->e[i];
			if (pe->lane != lane || !pe->ready || pe->sv->failed)
				continue;
			pool_remove(p, pe);
			got = pe->sv;
			free(pe);
			break;
		}
	}
	pool_fill(p);
	return got;
}

unsigned serve_pool_ready(const struct serve_pool *p)
{
	unsigned k = 0;
	if (!p)
		return 0;
	for (unsigned i = 0; i < p->n; i++)
		k += p->e[i]->ready;
	return k;
}

unsigned serve_pool_booting(const struct serve_pool *p)
{
	return p ? p->n - serve_pool_ready(p) : 0;
}

unsigned serve_pool_memory_mib(const struct serve_pool *p)
{
	return p ? p->held_mib + p->dying_mib : 0;
}

void serve_pool_close(struct serve_pool *p, void (*closed)(struct serve *s))
{
	p->closing = 1;
	p->closed = closed;
	uv_timer_stop(&p->timer);
	while (p->n)
		pool_kill(p, p->e[0]);
	pool_maybe_closed(p);
}
