/* The synchronous MCP API, a thin wrapper for the CLI and tests.
 *
 * A sync client owns a private loop (mcp_client_new with a NULL loop). Each
 * call starts the asynchronous operation, then runs that private loop until
 * the operation's completion fires; the completion stores its outcome in a
 * struct mcp_pending on the caller's stack (or heap, for start/wait). Nothing
 * here may touch a loop it does not own: a client on a caller's loop is
 * refused with -EDEADLK rather than re-entering that loop. */
#include "mcp/mcp.h"

#include <errno.h>
#include <stdlib.h>

struct mcp_pending {
	int done;
	int rc;
	json_t *result;           /* owned */
	struct err e;
	long long id;
};

static int sync_check(struct mcp_client *c, struct err *e)
{
	if (!mcp_client_owns_loop(c))
		return err_set(e, -EDEADLK, "synchronous MCP calls need a client with its own loop "
			       "(mcp_sync_new); this one runs on the caller's loop");
	return 0;
}

static void sync_on_result(void *opaque, int rc, json_t *result, const struct err *e)
{
	struct mcp_pending *p = opaque;
	p->done = 1;
	p->rc = rc;
	p->result = json_incref(result);
	if (rc < 0 && e)
		p->e = *e;
}

static void sync_on_done(void *opaque, int rc, const struct err *e)
{
	sync_on_result(opaque, rc, NULL, e);
}

static void sync_run_until(struct mcp_client *c, const int *flag)
{
	uv_loop_t *loop = mcp_client_loop(c);
	while (!*flag)
		uv_run(loop, UV_RUN_ONCE);
}

/* Waits for p, hands its outcome over. */
static int sync_finish(struct mcp_client *c, struct mcp_pending *p, json_t **result,
		       struct err *e)
{
	sync_run_until(c, &p->done);
	if (p->rc < 0) {
		err_set(e, p->rc, "%s", p->e.msg[0] ? p->e.msg : "request failed");
		json_decref(p->result);
	} else if (result) {
		*result = p->result;
	} else {
		json_decref(p->result);
	}
	return p->rc;
}

int mcp_sync_new(const struct mcp_server_config *cfg, const struct mcp_events *ev,
		 struct mcp_client **out, struct err *e)
{
	return mcp_client_new(NULL, cfg, ev, out, e);
}

int mcp_sync_connect(struct mcp_client *c, struct err *e)
{
	struct mcp_pending p = { 0 };
	int rc = sync_check(c, e);
	if (rc == 0)
		rc = mcp_client_connect(c, sync_on_done, &p, e);
	return rc < 0 ? rc : sync_finish(c, &p, NULL, e);
}

static void sync_on_closed(void *opaque)
{
	*(int *)opaque = 1;
}

void mcp_sync_close(struct mcp_client *c)
{
	if (!c)
		return;
	if (!mcp_client_owns_loop(c)) {
		mcp_client_close(c, NULL, NULL);
		return;
	}
	uv_loop_t *loop = mcp_client_loop(c);
	int closed = 0;
	mcp_client_close(c, sync_on_closed, &closed);
	while (!closed)
		uv_run(loop, UV_RUN_ONCE);
	/* Whatever the transports left closing (a socket libcurl released). */
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	free(loop);
}

int mcp_sync_request(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		     json_t **result, struct err *e)
{
	struct mcp_pending p = { 0 };
	int rc = sync_check(c, e);
	if (rc < 0)
		json_decref(params);
	else
		rc = mcp_client_request(c, method, params, timeout_ms, 0, sync_on_result, &p, NULL,
					e);
	return rc < 0 ? rc : sync_finish(c, &p, result, e);
}

int mcp_sync_start(struct mcp_client *c, const char *method, json_t *params, long timeout_ms,
		   int flags, struct mcp_pending **out, struct err *e)
{
	struct mcp_call *k;
	int rc = sync_check(c, e);
	struct mcp_pending *p = rc == 0 ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		json_decref(params);
		return rc < 0 ? rc : err_set(e, -ENOMEM, "out of memory");
	}
	rc = mcp_client_request(c, method, params, timeout_ms, flags, sync_on_result, p, &k, e);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->id = mcp_call_id(k);
	*out = p;
	return 0;
}

int mcp_sync_wait(struct mcp_client *c, struct mcp_pending *p, json_t **result, struct err *e)
{
	if (result)
		*result = NULL;
	int rc = sync_finish(c, p, result, e);
	free(p);
	return rc;
}

long long mcp_pending_id(const struct mcp_pending *p)
{
	return p->id;
}

static void pump_on_timer(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

static void pump_closed(uv_handle_t *h)
{
	(void)h;
}

void mcp_sync_pump(struct mcp_client *c, long ms)
{
	if (!mcp_client_owns_loop(c))
		return;
	uv_loop_t *loop = mcp_client_loop(c);
	uv_timer_t t;
	int fired = 0;
	uv_timer_init(loop, &t);
	t.data = &fired;
	uv_timer_start(&t, pump_on_timer, ms > 0 ? (uint64_t)ms : 0, 0);
	while (!fired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, pump_closed);
	uv_run(loop, UV_RUN_NOWAIT);
}

#define SYNC_OP(call)                                                 \
	do {                                                          \
		struct mcp_pending p = { 0 };                         \
		int rc_ = sync_check(c, e);                           \
		if (rc_ == 0)                                         \
			rc_ = (call);                                 \
		if (result)                                           \
			*result = NULL;                               \
		return rc_ < 0 ? rc_ : sync_finish(c, &p, result, e); \
	} while (0)

int mcp_sync_list_all(struct mcp_client *c, const char *what, json_t **items, struct err *e)
{
	json_t **result = items;
	SYNC_OP(mcp_list_all(c, what, sync_on_result, &p, e));
}

int mcp_sync_call_tool(struct mcp_client *c, const char *tool, json_t *args, json_t **result,
		       struct err *e)
{
	if (!mcp_client_owns_loop(c))
		json_decref(args);
	SYNC_OP(mcp_call_tool(c, tool, args, sync_on_result, &p, e));
}

int mcp_sync_read_resource(struct mcp_client *c, const char *uri, json_t **result,
			   struct err *e)
{
	SYNC_OP(mcp_read_resource(c, uri, sync_on_result, &p, e));
}

int mcp_sync_get_prompt(struct mcp_client *c, const char *name, json_t *args, json_t **result,
			struct err *e)
{
	if (!mcp_client_owns_loop(c))
		json_decref(args);
	SYNC_OP(mcp_get_prompt(c, name, args, sync_on_result, &p, e));
}
