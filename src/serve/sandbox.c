/* The sandbox registry: what `POST /v1/sandboxes` makes and `DELETE` removes.
 *
 * A sandbox owns one VM, taken from the warm pool when one of its shape is
 * ready, else made (vmmake.c). A create waits until the VM is ready: the
 * request is the sandbox's `waiter`; the two point at each other and
 * whichever goes first unlinks.
 * A delete answers once the sandbox is unreachable (no lookup, list or route
 * finds it again) and its VMM has been SIGKILLed; the teardown (reaping the
 * VMM, removing its jail, cgroup, netns and directory: 4 to 13 ms measured,
 * docs/serve.md) finishes behind the answer. Until it has, the sandbox stays
 * in the registry, marked deleting: it counts against both caps, and in
 * ironclaw_sandboxes_deleting, which is what tests and clients that need
 * "nothing left" wait on.
 * Caps: the number of sandboxes (deleting ones count until their VM is gone)
 * and the daemon's memory (sandboxes plus pool). Each sandbox has a TTL; the
 * sweep (once a second) deletes expired ones; the TTL starts when the
 * sandbox is ready (a boot has its own deadline), and a client keeps a
 * sandbox alive by resetting it (PATCH, serve_sandbox_renew). Every TTL is
 * capped at the daemon's --max-ttl. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/internal.h"

static void sb_make_id(char *out)
{
	uint8_t r[SERVE_ID_LEN / 2 - 1];
	static const char hex[] = "0123456789abcdef";
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r)); /* getrandom on a booted Linux does not fail */
	memcpy(out, "sb", 2);
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 + 2 * i] = hex[r[i] >> 4];
		out[3 + 2 * i] = hex[r[i] & 15];
	}
	out[SERVE_ID_LEN] = 0;
}

static void sb_unlink(struct serve_sandbox *sb)
{
	for (struct serve_sandbox **pp = &sb->s->sandboxes; *pp; pp = &(*pp)->next) {
		if (*pp == sb) {
			*pp = sb->next;
			return;
		}
	}
}

static struct serve_req *sb_take_waiter(struct serve_sandbox *sb)
{
	struct serve_req *r = sb->waiter;
	sb->waiter = NULL;
	if (r)
		r->sb = NULL;
	return r;
}

static double sb_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

json_t *serve_sandbox_json(const struct serve_sandbox *sb)
{
	static const char *const states[] = { "starting", "ready", "failed" };
	uint64_t now = uv_now(sb->s->loop);
	long left = sb->expires > now ? (long)((sb->expires - now + 999) / 1000) : 0;
	/* expires_at: wall-clock seconds, for a client that polls (the loop's
	 * clock is monotonic and means nothing outside this process). */
	double at = sb->state == SB_STARTING ? 0 :
		    sb_wall_s() + (double)(sb->expires > now ? sb->expires - now : 0) / 1000;
	const char *state = sb->state == SB_READY && sb->busy ? "busy" : states[sb->state];
	json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:s, s:I, s:I, s:s, s:I, s:I, s:O}", "id", sb->id,
			 "state", state, "made", sb->made, "ms", sb->ms, "image",
			 sb->shape.image[0] ? sb->shape.image : "default",
			 "cpus", (json_int_t)sb->shape.cpus, "memory_mib",
			 (json_int_t)sb->shape.memory_mib, "net", sb->shape.net_spec, "ttl_s",
			 (json_int_t)sb->ttl_s, "expires_in_s", (json_int_t)left, "labels",
			 sb->labels);
	if (j && sb->state != SB_STARTING)
		json_object_set_new(j, "expires_at", json_real(at));
	if (j && sb->sv && sb->sv->vm)
		json_object_set_new(j, "vm", json_string(vm_id(sb->sv->vm)));
	return j;
}

static void sb_count_made(struct serve *s, const char *made)
{
	s->m.created[!strcmp(made, "pool") ? 0 : !strcmp(made, "snapshot") ? 1 : 2]++;
}

static void sb_on_ready(struct serve_vm *sv, void *ctx)
{
	struct serve_sandbox *sb = ctx;
	sb->state = SB_READY;
	/* How it was made is known now, not at the create: the first VM of a
	 * shape waits for its template lookup as "cold" and may be restored. */
	sb->made = sv->made;
	sb->ms = sv->ready_ms - sb->t0_ms;
	/* The TTL is the user's time with a ready sandbox, not the boot's. */
	sb->expires = uv_now(sb->s->loop) + (uint64_t)sb->ttl_s * 1000;
	sb_count_made(sb->s, sb->made);
	struct serve_req *w = sb_take_waiter(sb);
	if (w)
		serve_req_answer_json(w, 201, serve_sandbox_json(sb));
}

static void sb_on_failed(struct serve_vm *sv, const struct err *e, void *ctx)
{
	struct serve_sandbox *sb = ctx;
	int was_starting = sb->state == SB_STARTING;
	sb->state = SB_FAILED;
	sb->why = *e;
	log_warn("serve: sandbox %s: %s", sb->id, e->msg);
	if (was_starting) {
		sb->s->m.create_failures++;
		struct serve_req *w = sb_take_waiter(sb);
		if (w)
			serve_req_answer_error(w, 503, NULL, e->msg);
		/* Nobody holds the id of a sandbox that never started. */
		sb->deleting = 1;
	}
	serve_vm_destroy(sv);
}

static void sb_on_destroyed(struct serve_vm *sv, void *ctx)
{
	struct serve_sandbox *sb = ctx;
	(void)sv;
	sb->sv = NULL;
	sb_unlink(sb);
	struct serve_req *w = sb_take_waiter(sb);
	if (w)
		serve_req_answer_error(w, 503, NULL, "the sandbox was deleted before it was ready");
	json_decref(sb->labels);
	json_decref(sb->env);
	free(sb);
}

static const struct serve_vm_owner sb_owner = {
	.ready = sb_on_ready,
	.failed = sb_on_failed,
	.destroyed = sb_on_destroyed,
};

struct serve_sandbox *serve_sandbox_find(struct serve *s, const char *id)
{
	for (struct serve_sandbox *sb = s->sandboxes; sb; sb = sb->next)
		if (!sb->deleting && !strcmp(sb->id, id))
			return sb;
	return NULL;
}

unsigned serve_sandbox_count(const struct serve *s)
{
	unsigned n = 0;
	for (const struct serve_sandbox *sb = s->sandboxes; sb; sb = sb->next)
		n++;
	return n;
}

unsigned serve_sandbox_memory_mib(const struct serve *s)
{
	unsigned n = 0;
	for (const struct serve_sandbox *sb = s->sandboxes; sb; sb = sb->next)
		n += sb->shape.memory_mib;
	return n;
}

int serve_sandbox_create(struct serve *s, const struct serve_shape *shape, unsigned ttl_s,
			 json_t *env, json_t *labels, struct serve_req *waiter,
			 struct serve_sandbox **out, struct err *e)
{
	if (serve_sandbox_count(s) >= s->cfg.max_sandboxes) {
		err_set(e, -EAGAIN, "the daemon holds its maximum of %u sandboxes (hint: delete "
			"some, or start `ironclaw serve` with a higher --max-sandboxes)",
			s->cfg.max_sandboxes);
		return 429;
	}
	struct serve_sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		err_set(e, -ENOMEM, "out of memory");
		return 503;
	}
	sb->s = s;
	sb->shape = *shape;
	sb->t0_ms = clock_now_ms();
	sb->ttl_s = serve_ttl_capped(s, ttl_s);
	ttl_s = sb->ttl_s;
	sb->expires = uv_now(s->loop) + (uint64_t)ttl_s * 1000;
	sb_make_id(sb->id);
	struct serve_vm *sv = s->pool ? serve_pool_acquire(s->pool, shape) : NULL;
	if (sv) {
		serve_vm_handover(sv, &sb_owner, sb);
		sb->sv = sv;
		sb->made = "pool";
		sb->state = SB_READY;
		sb->ms = clock_now_ms() - sb->t0_ms;
		serve_hist_add(&s->m.acquire_ms, sb->ms);
		sb_count_made(s, "pool");
	} else {
		unsigned used = serve_sandbox_memory_mib(s) + serve_pool_memory_mib(s->pool);
		if (used + shape->memory_mib > s->cfg.memory_mib) {
			free(sb);
			err_set(e, -EAGAIN, "%u MiB more would pass the daemon's memory cap (%u of %u "
				"MiB in use; hint: delete sandboxes, or raise --memory-cap)",
				shape->memory_mib, used, s->cfg.memory_mib);
			return 429;
		}
		int rc = serve_vm_make(s, shape, &sb_owner, sb, &sb->sv, e);
		if (rc < 0) {
			free(sb);
			return 503;
		}
		sb->made = sb->sv->made;
		sb->state = SB_STARTING;
		sb->waiter = waiter;
		waiter->sb = sb;
	}
	sb->env = env;
	sb->labels = labels;
	sb->next = s->sandboxes;
	s->sandboxes = sb;
	*out = sb;
	return 0;
}

void serve_sandbox_delete(struct serve_sandbox *sb)
{
	if (sb->deleting)
		return;
	sb->deleting = 1;
	sb->s->m.deleted++;
	if (sb->sv)
		serve_vm_destroy(sb->sv);
}

/* Answers r once the sandbox is unreachable and its VMM killed; the rest of
 * the teardown goes on behind the 204 (see the top of this file). */
void serve_sandbox_delete_for(struct serve_sandbox *sb, struct serve_req *r)
{
	struct serve_req *w = sb_take_waiter(sb);
	if (w)
		serve_req_answer_error(w, 503, NULL, "the sandbox was deleted before it was ready");
	serve_sandbox_delete(sb);   /* may free sb (a VM that was never made) */
	serve_req_answer_bytes(r, 204, NULL, NULL, 0);
}

unsigned serve_sandbox_deleting(const struct serve *s)
{
	unsigned n = 0;
	for (const struct serve_sandbox *sb = s->sandboxes; sb; sb = sb->next)
		n += sb->deleting;
	return n;
}

void serve_sandbox_forget_waiter(struct serve_sandbox *sb)
{
	sb_take_waiter(sb);
	/* A create whose client left: nobody has its id, so it goes. */
	if (sb->state == SB_STARTING)
		serve_sandbox_delete(sb);
}

unsigned serve_ttl_capped(const struct serve *s, unsigned ttl_s)
{
	unsigned max = s->cfg.max_ttl_s ? s->cfg.max_ttl_s : SERVE_TTL_MAX_S;
	return ttl_s > max ? max : ttl_s;
}

void serve_sandbox_renew(struct serve_sandbox *sb, unsigned ttl_s)
{
	sb->ttl_s = serve_ttl_capped(sb->s, ttl_s);
	/* A sandbox still starting gets its TTL from ready (sb_on_ready). */
	if (sb->state != SB_STARTING)
		sb->expires = uv_now(sb->s->loop) + (uint64_t)sb->ttl_s * 1000;
}

void serve_sandbox_sweep(struct serve *s)
{
	uint64_t now = uv_now(s->loop);
	struct serve_sandbox *next;
	for (struct serve_sandbox *sb = s->sandboxes; sb; sb = next) {
		next = sb->next;
		if (sb->deleting || sb->state == SB_STARTING || now < sb->expires)
			continue; /* a boot has its own deadline */
		log_info("serve: sandbox %s passed its TTL (%u s); destroying it", sb->id, sb->ttl_s);
		s->m.expired++;
		serve_sandbox_delete(sb);
	}
}
