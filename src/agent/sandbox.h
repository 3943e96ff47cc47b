/* The run's sandbox, behind one interface: where the agent's commands run and
 * where its workspace goes. Two implementations: a VM made in this process
 * (sandbox_vm.c: vm_create, needs root for the jail) and a sandbox of a
 * running `ironclaw serve` (sandbox_daemon.c: HTTP over the Unix socket, for
 * any member of its group). run.c, step.c, changes.c and tools.c see only
 * this; both implementations run everything on the caller's loop.
 *
 * Life: *_new returns a handle; then exactly one of ready or failed; after
 * agent_sandbox_destroy (always called, also after failed), destroyed fires
 * once the sandbox is gone (VM, daemon sandbox) and the handle is freed right
 * after it returns. Calls in flight at destroy end with an error first. */
#ifndef IRONCLAW_AGENT_SANDBOX_H
#define IRONCLAW_AGENT_SANDBOX_H

#include <uv.h>

#include "agent/copy.h"
#include "agent/vmcall.h"
#include "core/err.h"
#include "vm/vm.h"
#include "workspace/workspace.h"

struct agent_sandbox;

struct agent_sandbox_events {
	void (*ready)(struct agent_sandbox *sb, void *ctx);
	void (*failed)(struct agent_sandbox *sb, const struct err *e, void *ctx);
	void (*destroyed)(struct agent_sandbox *sb, void *ctx);
};

struct agent_sandbox_ops {
	/* One command with its output captured (vmcall.h's contract). */
	int (*exec)(struct agent_sandbox *sb, const struct vmcall_spec *spec, vmcall_cb cb,
		    void *ctx, struct err *e);
	/* root's tree into /workspace (copy.h's agent_copy_in contract). */
	int (*copy_in)(struct agent_sandbox *sb, const char *root,
		       const struct workspace_pack_options *po, struct workspace_manifest *manifest,
		       agent_copy_cb cb, void *ctx, struct err *e);
	/* /workspace out into staging, against before (agent_copy_out_against). */
	int (*copy_out)(struct agent_sandbox *sb, const char *staging,
			const struct workspace_manifest *before, struct workspace_manifest *after,
			agent_copy_cb cb, void *ctx, struct err *e);
	void (*destroy)(struct agent_sandbox *sb);
};

/* What every implementation fills in (read-only for callers). */
struct agent_sandbox {
	const struct agent_sandbox_ops *ops;
	uv_loop_t *loop;
	char id[80];                 /* the VM's name (as `ironclaw ps` / the daemon show it) */
	const char *made;            /* "cold", "snapshot" or "pool": once ready */
	const char *via;             /* "in-process" or "via daemon" */
	double ready_ms;             /* creation to ready */
	const struct agent_sandbox_events *ev;
	void *ctx;
};

/* A VM made here, with o (borrowed until destroyed). */
int agent_sandbox_vm_new(uv_loop_t *loop, const struct vm_options *o,
			 const struct agent_sandbox_events *ev, void *ctx,
			 struct agent_sandbox **out, struct err *e);

/* What the daemon is asked for: POST /v1/sandboxes. */
struct agent_sandbox_daemon_spec {
	const char *socket;          /* the daemon's socket */
	unsigned cpus, memory_mib;   /* 0: the daemon's default */
	const char *net;             /* "allow=..." as --net took it; NULL: none */
	const char *image;           /* a name or id in the daemon's store; NULL: default */
	/* The sandbox's TTL, renewed (PATCH ttl_s) every third of it while the
	 * handle lives, so a killed process leaves a sandbox that expires in
	 * ttl_s. 0: AGENT_SANDBOX_DAEMON_TTL_S. */
	unsigned ttl_s;
};
#define AGENT_SANDBOX_DAEMON_TTL_S 120
int agent_sandbox_daemon_new(uv_loop_t *loop, const struct agent_sandbox_daemon_spec *s,
			     const struct agent_sandbox_events *ev, void *ctx,
			     struct agent_sandbox **out, struct err *e);

static inline int agent_sandbox_exec(struct agent_sandbox *sb, const struct vmcall_spec *spec,
				     vmcall_cb cb, void *ctx, struct err *e)
{
	return sb->ops->exec(sb, spec, cb, ctx, e);
}

static inline int agent_sandbox_copy_in(struct agent_sandbox *sb, const char *root,
					const struct workspace_pack_options *po,
					struct workspace_manifest *manifest, agent_copy_cb cb,
					void *ctx, struct err *e)
{
	return sb->ops->copy_in(sb, root, po, manifest, cb, ctx, e);
}

static inline int agent_sandbox_copy_out(struct agent_sandbox *sb, const char *staging,
					 const struct workspace_manifest *before,
					 struct workspace_manifest *after, agent_copy_cb cb,
					 void *ctx, struct err *e)
{
	return sb->ops->copy_out(sb, staging, before, after, cb, ctx, e);
}

static inline void agent_sandbox_destroy(struct agent_sandbox *sb)
{
	sb->ops->destroy(sb);
}

#endif
