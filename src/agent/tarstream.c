/* The workspace's tar stream on the host: see tarstream.h.
 *
 * Source: each read is one pool job (the first also opens the pack, which
 * scans the tree and checks the caps); the chunk buffer is the source's own,
 * so a transport hands it on and asks for the next one once it is taken.
 * Sink: the loop queues each piece (capped in total); one pool job parses the
 * queue as it fills, blocking on a condition variable only on its own thread. */
#include "agent/tarstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct agent_tar_source {
	uv_loop_t *loop;
	const char *root;
	const struct workspace_pack_options *po;
	struct workspace_pack *pack;
	uv_work_t work;
	uint8_t *chunk;
	long len;                /* of the last read; < 0 on failure */
	int opened, reading, freeing;
	struct err job_e;
	agent_tar_chunk_cb cb;
	void *ctx;
};

int agent_tar_source_new(uv_loop_t *loop, const char *root, const struct workspace_pack_options *po,
			 struct agent_tar_source **out, struct err *e)
{
	struct agent_tar_source *s = calloc(1, sizeof(*s));
	if (!s || !(s->chunk = malloc(AGENT_TAR_CHUNK))) {
		free(s);
		return err_set(e, -ENOMEM, "out of memory");
	}
	s->loop = loop;
	s->root = root;
	s->po = po;
	*out = s;
	return 0;
}

static void source_destroy(struct agent_tar_source *s)
{
	workspace_pack_free(s->pack);
	free(s->chunk);
	free(s);
}

static void source_job(uv_work_t *w)
{
	struct agent_tar_source *s = w->data;
	if (!s->opened) {
		s->opened = 1;
		if (workspace_pack_open(s->root, s->po, &s->pack, &s->job_e) < 0) {
			s->pack = NULL;
			s->len = -1;
			return;
		}
	}
	s->len = s->pack ? workspace_pack_read(s->pack, s->chunk, AGENT_TAR_CHUNK, &s->job_e) : -1;
}

static void source_after(uv_work_t *w, int status)
{
	struct agent_tar_source *s = w->data;
	(void)status;
	s->reading = 0;
	if (s->freeing) {
		source_destroy(s);
		return;
	}
	if (s->len < 0) {
		if (!s->job_e.code)
			err_set(&s->job_e, -EIO, "packing the workspace failed");
		s->cb(s->ctx, NULL, 0, &s->job_e);
	} else {
		s->cb(s->ctx, s->chunk, (size_t)s->len, NULL);
	}
}

int agent_tar_source_read(struct agent_tar_source *s, agent_tar_chunk_cb cb, void *ctx,
			  struct err *e)
{
	if (s->reading)
		return err_set(e, -EBUSY, "a workspace read is already running");
	s->cb = cb;
	s->ctx = ctx;
	s->reading = 1;
	s->work.data = s;
	int rc = uv_queue_work(s->loop, &s->work, source_job, source_after);
	if (rc < 0) {
		s->reading = 0;
		return err_set(e, rc, "copying the workspace in: %s", uv_strerror(rc));
	}
	return 0;
}

void agent_tar_source_take_manifest(struct agent_tar_source *s, struct workspace_manifest *m)
{
	if (s->pack)
		workspace_pack_take_manifest(s->pack, m);
}

void agent_tar_source_free(struct agent_tar_source *s)
{
	if (!s)
		return;
	if (s->reading)
		s->freeing = 1;
	else
		source_destroy(s);
}

/* ---- sink ---- */

struct sink_piece {
	struct sink_piece *next;
	size_t len, off;
	uint8_t data[];
};

struct agent_tar_sink {
	const char *staging;
	const struct workspace_manifest *before;
	struct workspace_manifest *after;
	uint64_t total;
	int over;
	int job_done;
	uv_work_t work;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sink_piece *head, *tail;
	int ended, aborted;
	struct err job_e;
	agent_tar_sink_cb cb;
	void *ctx;
};

/* workspace_read_fn on the pool thread: blocks until the loop queued bytes or
 * the stream ended. */
static long sink_read(void *ctx, uint8_t *buf, size_t cap)
{
	struct agent_tar_sink *k = ctx;
	long n = 0;
	pthread_mutex_lock(&k->mu);
	while (!k->head && !k->ended)
		pthread_cond_wait(&k->cv, &k->mu);
	while (k->head && (size_t)n < cap) {
		struct sink_piece *p = k->head;
		size_t take = p->len - p->off < cap - (size_t)n ? p->len - p->off : cap - (size_t)n;
		memcpy(buf + n, p->data + p->off, take);
		p->off += take;
		n += (long)take;
		if (p->off == p->len) {
			k->head = p->next;
			if (!k->head)
				k->tail = NULL;
			free(p);
		}
	}
	if (n == 0 && k->aborted)
		n = -EIO;   /* the stream was cut: not a clean end of it */
	pthread_mutex_unlock(&k->mu);
	return n;
}

static void sink_job(uv_work_t *w)
{
	struct agent_tar_sink *k = w->data;
	/* The copy-out may be as large as copy-in allowed, and no larger. */
	struct workspace_limits lim = { 0 };
	workspace_unpack_against(sink_read, k, k->staging, &lim, k->before, k->after, &k->job_e);
}

static void sink_after(uv_work_t *w, int status)
{
	struct agent_tar_sink *k = w->data;
	(void)status;
	k->job_done = 1;
	k->cb(k->ctx, k->job_e.code ? &k->job_e : NULL);
}

int agent_tar_sink_new(uv_loop_t *loop, const char *staging, const struct workspace_manifest *before,
		       struct workspace_manifest *after, agent_tar_sink_cb cb, void *ctx,
		       struct agent_tar_sink **out, struct err *e)
{
	struct agent_tar_sink *k = calloc(1, sizeof(*k));
	if (!k)
		return err_set(e, -ENOMEM, "out of memory");
	k->staging = staging;
	k->before = before;
	k->after = after;
	k->cb = cb;
	k->ctx = ctx;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->work.data = k;
	int rc = uv_queue_work(loop, &k->work, sink_job, sink_after);
	if (rc < 0) {
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->cv);
		free(k);
		return err_set(e, rc, "copying the workspace out: %s", uv_strerror(rc));
	}
	*out = k;
	return 0;
}

int agent_tar_sink_feed(struct agent_tar_sink *k, const void *d, size_t n)
{
	if (k->over || k->job_done || k->ended)
		return k->over ? -EFBIG : 0;
	struct sink_piece *p = NULL;
	if (k->total + n > AGENT_COPY_OUT_MAX || !(p = malloc(sizeof(*p) + n))) {
		k->over = k->total + n > AGENT_COPY_OUT_MAX;
		agent_tar_sink_end(k, 1);
		return k->over ? -EFBIG : -ENOMEM;
	}
	k->total += n;
	p->next = NULL;
	p->len = n;
	p->off = 0;
	memcpy(p->data, d, n);
	pthread_mutex_lock(&k->mu);
	if (k->tail)
		k->tail->next = p;
	else
		k->head = p;
	k->tail = p;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return 0;
}

void agent_tar_sink_end(struct agent_tar_sink *k, int aborted)
{
	pthread_mutex_lock(&k->mu);
	k->ended = 1;
	k->aborted |= aborted;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

void agent_tar_sink_free(struct agent_tar_sink *k)
{
	if (!k)
		return;
	for (struct sink_piece *p = k->head, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k);
}

const struct err *agent_copy_out_verdict(const struct err *transfer, const struct err *sink,
					 int stopped_for_sink, struct workspace_manifest *after)
{
	if (stopped_for_sink && sink->code)
		return sink;
	if (transfer->code) {
		if (!sink->code)
			workspace_manifest_free(after);
		return transfer;
	}
	return sink->code ? sink : NULL;
}
