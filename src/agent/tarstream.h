/* The workspace's tar stream on the host, independent of how it travels (a
 * guest exec's stdin and stdout in copy.c, an HTTP body to and from the daemon
 * in sandbox_daemon.c). A source packs a host tree chunk by chunk on the
 * thread pool (workspace_pack); a sink unpacks a stream that arrives on the
 * loop piece by piece, on one pool job that reads while the pieces come
 * (workspace_unpack_against), so the loop never does file work. What a sink
 * is fed came from the guest: it is hostile (workspace/unpack.c). */
#ifndef IRONCLAW_AGENT_TARSTREAM_H
#define IRONCLAW_AGENT_TARSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "workspace/workspace.h"

#define AGENT_COPY_OUT_MAX (512ull << 20)   /* the guest's tar stream, held in memory */
#define AGENT_TAR_CHUNK (1u << 20)          /* one pool job's worth of a source */

/* ---- source ---- */
struct agent_tar_source;
/* One chunk: n > 0 bytes at p (valid until the next read or the free), n == 0
 * the end of the stream, e set on failure (the tree broke a cap, a read
 * failed). */
typedef void (*agent_tar_chunk_cb)(void *ctx, const uint8_t *p, size_t n, const struct err *e);
int agent_tar_source_new(uv_loop_t *loop, const char *root, const struct workspace_pack_options *po,
			 struct agent_tar_source **out, struct err *e);
/* Reads the next chunk on the pool (the first read scans the tree and checks
 * the caps); cb fires on the loop. One read at a time. Returns 0 or -errno. */
int agent_tar_source_read(struct agent_tar_source *s, agent_tar_chunk_cb cb, void *ctx,
			  struct err *e);
/* After the end of the stream: what was sent. */
void agent_tar_source_take_manifest(struct agent_tar_source *s, struct workspace_manifest *m);
/* Frees it now, or after a read in flight (whose cb then never fires). */
void agent_tar_source_free(struct agent_tar_source *s);

/* ---- sink ---- */
struct agent_tar_sink;
/* The unpacker finished: e NULL when it accepted a whole archive. */
typedef void (*agent_tar_sink_cb)(void *ctx, const struct err *e);
/* Starts the unpacking job into staging (created there); before may be NULL
 * (every file staged), else borrowed until cb. */
int agent_tar_sink_new(uv_loop_t *loop, const char *staging, const struct workspace_manifest *before,
		       struct workspace_manifest *after, agent_tar_sink_cb cb, void *ctx,
		       struct agent_tar_sink **out, struct err *e);
/* Queues n bytes (copied). -EFBIG once the stream passes AGENT_COPY_OUT_MAX
 * (the stream is then ended as cut), -ENOMEM. After the unpacker finished,
 * bytes are dropped. */
int agent_tar_sink_feed(struct agent_tar_sink *k, const void *p, size_t n);
/* No more bytes; aborted: the stream was cut (not a clean end). */
void agent_tar_sink_end(struct agent_tar_sink *k, int aborted);
/* After cb fired. */
void agent_tar_sink_free(struct agent_tar_sink *k);

/* Which failure a copy-out reports once its transfer and its sink are both
 * done: the sink's refusal when it is what stopped the transfer (not the
 * kill or abort it caused), else the transfer's own failure, else the
 * sink's; NULL when both succeeded. When the transfer failed but the sink
 * had filled after, after is freed (the caller keeps nothing of a failure). */
const struct err *agent_copy_out_verdict(const struct err *transfer, const struct err *sink,
					 int stopped_for_sink, struct workspace_manifest *after);

#endif
