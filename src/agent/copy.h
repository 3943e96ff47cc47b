/* The workspace's trip into and out of the run's VM, as a tar stream on the
 * stdin and stdout of the guest agent's workspace builtins (@ws-unpack,
 * @ws-pack: src/guest/ws.h), driven like any exec. The stream is built and
 * parsed on the host by workspace/ (libarchive) on the thread pool
 * (tarstream.h), so the loop never does file work; stdin moves on the exec's
 * credit, and copy-out is parsed while it arrives. This is the in-process
 * sandbox's transport (sandbox_vm.c); the daemon's carries the same streams
 * over HTTP (sandbox_daemon.c). The guest's stream is hostile (workspace/unpack.c). */
#ifndef IRONCLAW_AGENT_COPY_H
#define IRONCLAW_AGENT_COPY_H

#include <uv.h>

#include "core/err.h"
#include "agent/tarstream.h"
#include "workspace/workspace.h"

struct vm;

/* The guest's tar is never trusted to finish: past this the host gives up on it. */
#define AGENT_COPY_TIMEOUT_MS (600u * 1000)

/* e NULL on success. */
typedef void (*agent_copy_cb)(void *ctx, const struct err *e);

/* Copies root into the VM's /workspace; fills *manifest (owned by the caller)
 * with what was sent. */
int agent_copy_in(uv_loop_t *loop, struct vm *vm, const char *root,
		  const struct workspace_pack_options *po, struct workspace_manifest *manifest,
		  agent_copy_cb cb, void *ctx, struct err *e);

/* Copies the VM's /workspace out into staging (created here) and fills *after. */
int agent_copy_out(uv_loop_t *loop, struct vm *vm, const char *staging,
		   struct workspace_manifest *after, agent_copy_cb cb, void *ctx, struct err *e);
/* The same against before (the copy-in manifest, borrowed until cb): a small
 * file that comes back with before's bytes and mode gets no staging copy
 * (workspace_unpack_against). */
int agent_copy_out_against(uv_loop_t *loop, struct vm *vm, const char *staging,
			   const struct workspace_manifest *before,
			   struct workspace_manifest *after, agent_copy_cb cb, void *ctx,
			   struct err *e);

/* Keeps the first line's worth of a builtin's stderr for an error message. */
void agent_copy_keep_err(char *buf, size_t cap, size_t *len, const uint8_t *d, size_t n);

#endif
