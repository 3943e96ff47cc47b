/* The bounded event ring: fixed storage, oldest dropped first, drops counted. */
#include "audit/audit.h"

#include <pthread.h>
#include <string.h>

void audit_ring_init(struct audit_ring *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->cap = cap < 1 ? 1 : cap > AUDIT_RING_MAX ? AUDIT_RING_MAX : cap;
}

void audit_ring_push(struct audit_ring *r, const struct audit_event *ev)
{
	if (r->count == r->cap) {
		r->start = (r->start + 1) % r->cap;
		r->count--;
		r->dropped++;
	}
	r->ev[(r->start + r->count) % r->cap] = *ev;
	r->count++;
}

const struct audit_event *audit_ring_get(const struct audit_ring *r, size_t i)
{
	if (i >= r->count)
		return NULL;
	return &r->ev[(r->start + i) % r->cap];
}

static struct audit_ring audit_global;
static pthread_once_t audit_global_once = PTHREAD_ONCE_INIT;

static void audit_global_init(void)
{
	audit_ring_init(&audit_global, AUDIT_RING_MAX);
}

struct audit_ring *audit_ring_global(void)
{
	pthread_once(&audit_global_once, audit_global_init);
	return &audit_global;
}

static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;

int audit_record(const struct audit_event *ev, struct err *e)
{
	struct audit_ring *r = audit_ring_global();
	pthread_mutex_lock(&audit_lock);
	audit_ring_push(r, ev);
	int rc = audit_log_append(audit_log_path(), ev, e);
	pthread_mutex_unlock(&audit_lock);
	return rc;
}
