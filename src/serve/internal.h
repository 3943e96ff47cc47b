/* What the pieces of the daemon share. One concept per file:
 *
 *   serve.c     the daemon's lifetime: gc, socket, loop, signals, TTL sweep
 *   sock.c      the Unix socket: create, bind with the right mode and group
 *   http.c      libmicrohttpd driven from the one libuv loop (epoll fd + timer)
 *   api.c       routing, request bodies, JSON responses, errors
 *   body.c      strict checks of request bodies (400 naming the field)
 *   sandbox.c   the sandbox registry: ids, TTLs, caps, create and delete
 *   patch.c     PATCH /v1/sandboxes/{id}: the keep-alive (TTL reset)
 *   vmmake.c    THE one place a VM is made (a template restore, else a cold
 *               boot) and the owner indirection pool VMs need
 *   tpl.c       the daemon's templates: per shape, found or built once
 *   pool.c      warm pool: N ready VMs per shape, refilled, capped, used once
 *   exec.c      streamed exec: NDJSON events, suspend/resume, disconnect kill
 *   files.c     PUT/GET of files and directory listings
 *   workspace.c PUT/GET of /workspace as one streamed tar
 *   metrics.c   counters and histograms, Prometheus text
 *   client.c    the CLI's client (not part of the daemon)
 */
#ifndef IRONCLAW_SERVE_INTERNAL_H
#define IRONCLAW_SERVE_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "image/image.h"
#include "serve/serve.h"
#include "vm/template.h"
#include "vm/vm.h"

#define SERVE_JSON_BODY_MAX (1u << 20)        /* JSON request bodies */
/* A body over its cap is read and dropped up to this much before the 413, so
 * a client that sends without waiting for 100-continue still reads the
 * answer; beyond it the connection is closed. */
#define SERVE_BODY_DRAIN_MAX (64ull << 20)
#define SERVE_FILE_BODY_MAX (8u << 20)        /* PUT /files: one guest file.put */
#define SERVE_HEADER_MEMORY (32u * 1024)      /* MHD's per-connection header memory */
#define SERVE_CONNECTIONS_MAX 256
#define SERVE_EXEC_BUFFER_MAX (16u << 20)     /* unread exec output per stream */
#define SERVE_ID_LEN 16
#define SERVE_LABELS_MAX 32
#define SERVE_POOL_MAX 64                     /* pool VMs, all shapes */
#define SERVE_POOL_LANES_MAX (1 + SERVE_POOL_IMAGES_MAX) /* default + --pool-image */
#define SERVE_NET_SPEC_MAX 1024
#define SERVE_FIELD_MAX 64                    /* a request field's name in a 400 */
#define SERVE_WORKSPACE_MAX SERVE_WORKSPACE_MAX_DEFAULT   /* serve.h */
#define SERVE_WORKSPACE_TIMEOUT_MS (600u * 1000)

struct serve;
struct serve_req;

/* ---- a VM's shape ---- */
struct serve_shape {
	/* "": the default image (the busybox initramfs); else the image name or
	 * id the client asked for, and root_image its ext4 file in the local
	 * image store (serve_shape_set_image). */
	char image[IMAGE_NAME_MAX + 1];
	char root_image[IMAGE_PATH_MAX];
	unsigned cpus;
	unsigned memory_mib;
	int net;                               /* 1: a NIC limited to allow */
	char net_spec[SERVE_NET_SPEC_MAX];     /* "none" or "allow=..." as given */
	struct jail_net_allow allow[VM_NET_ALLOW_MAX];
	size_t n_allow;
};
int serve_shape_equal(const struct serve_shape *a, const struct serve_shape *b);
/* Sets the shape's image from ref: "default", an image name or a store id
 * (64 hex digits) from `ironclaw image ls`. Never a path: a client does not
 * get to point the daemon at a file. -EINVAL/-ENOENT with e saying how to fix
 * it. Blocking only on small metadata (the name's link, the superblock). */
int serve_shape_set_image(struct serve_shape *sh, const char *ref, struct err *e);

/* ---- vmmake.c: the seam where VMs are made ---- */
struct serve_vm;
struct serve_vm_owner {
	int background;         /* pool refills: queued behind a waiting request's boot */
	void (*ready)(struct serve_vm *sv, void *ctx);
	void (*failed)(struct serve_vm *sv, const struct err *e, void *ctx);
	void (*destroyed)(struct serve_vm *sv, void *ctx);
};
struct serve_tpl;
struct serve_vm {
	struct serve *s;
	struct vm *vm;
	struct serve_shape shape;
	const char *made;       /* "cold" or "snapshot" (the pool says "pool") */
	struct serve_tpl *tpl;  /* the template being restored (made = "snapshot") */
	int tpl_wait;           /* waiting for its shape's template lookup */
	int cold_only;          /* a restore failed: this one boots cold */
	int fallback;           /* destroying a failed restore to boot cold */
	struct serve_vm *tnext; /* in its template's waiters */
	double t0_ms, ready_ms; /* clock_now_ms at make and at ready */
	int ready, failed, destroying;
	int booting;            /* counted in serve.booting */
	int queued;             /* waiting for a boot slot; vm is NULL */
	struct serve_vm *qnext;
	const struct serve_vm_owner *owner;
	void *ctx;
};
/* Makes a VM of this shape (the only caller of vm_create in the daemon).
 * Returns an owned handle in *out; one of owner->ready/failed follows, and
 * owner->destroyed after serve_vm_destroy. At most cfg.max_booting VMs boot
 * at once (boots on a loaded host slow each other past their deadline); the
 * rest wait in a queue, and destroying a queued one calls destroyed at once. */
int serve_vm_make(struct serve *s, const struct serve_shape *shape,
		  const struct serve_vm_owner *o, void *ctx, struct serve_vm **out, struct err *e);
/* Gives the VM a new owner (a pool VM handed to a sandbox). */
void serve_vm_handover(struct serve_vm *sv, const struct serve_vm_owner *o, void *ctx);
void serve_vm_destroy(struct serve_vm *sv);

/* ---- tpl.c: templates per shape ---- */
enum serve_tpl_state { TPL_UNKNOWN, TPL_FINDING, TPL_BUILDING, TPL_READY, TPL_FAILED };
#define SERVE_TPL_MAX 8                       /* shapes with a template */
#define SERVE_TPL_RETRY_MS 60000              /* after a failed build or restore */
struct serve_tpl {
	struct serve *s;
	unsigned cpus, memory_mib;
	char image[IMAGE_NAME_MAX + 1];       /* for logs; "" the default */
	char root_image[IMAGE_PATH_MAX];      /* "" the default image */
	enum serve_tpl_state state;
	struct vm_template t;                 /* when READY */
	uint64_t retry_at;                    /* uv_now, when FAILED */
	struct serve_vm *waiters;             /* makes waiting for the lookup */
};
/* The template a VM of this shape restores from: NULL when it boots cold
 * (a NIC, snapshots off, a lookup or build not done or failed). When the
 * lookup is still running, *wait is set and sv is queued on it; vmmake_admit
 * runs again for sv once it settles. */
struct serve_tpl *serve_tpl_for(struct serve *s, struct serve_vm *sv, int *wait);
/* A restore from tp failed (QEMU refused the state, or the guest): no more
 * restores from it until it is looked up again, SERVE_TPL_RETRY_MS later. */
void serve_tpl_restore_failed(struct serve_tpl *tp, const struct err *e);
/* Takes a waiting sv off its template's list (destroyed while waiting). */
void serve_tpl_unwait(struct serve_vm *sv);
void serve_tpl_free_all(struct serve *s);
/* vmmake.c: admit a made sv (template choice, then a boot slot or the queue).
 * Failures go to the owner. */
void serve_vm_admit(struct serve_vm *sv);

/* ---- pool.c ---- */
struct serve_pool;
int serve_pool_new(struct serve *s, const struct serve_shape *shape, unsigned size,
		   unsigned memory_mib, unsigned idle_s, struct serve_pool **out, struct err *e);
/* A ready VM of this shape, now the caller's (used once), or NULL. Starts a
 * refill either way. */
struct serve_vm *serve_pool_acquire(struct serve_pool *p, const struct serve_shape *shape);
/* Once a second (the daemon's sweep): drains the pool after idle_s without
 * demand. */
void serve_pool_tick(struct serve_pool *p);
unsigned serve_pool_ready(const struct serve_pool *p);
unsigned serve_pool_booting(const struct serve_pool *p);
unsigned serve_pool_memory_mib(const struct serve_pool *p);
/* Destroys every pool VM; closed(s) once all are gone and the pool is freed. */
void serve_pool_close(struct serve_pool *p, void (*closed)(struct serve *s));

/* ---- metrics.c ---- */
#define SERVE_HIST_BUCKETS 12
struct serve_hist {
	uint64_t bucket[SERVE_HIST_BUCKETS + 1]; /* last: +Inf */
	uint64_t count;
	double sum;
};
struct serve_metrics {
	uint64_t created[3];        /* by made: pool, snapshot, cold */
	uint64_t create_failures;
	uint64_t deleted, expired;
	uint64_t execs, exec_failures, exec_disconnects;
	uint64_t rejected_429, rejected_400, rejected_413;
	uint64_t pool_made, pool_failures, pool_drained;
	uint64_t vms_made[2];       /* VMs ready, by how: snapshot, cold */
	uint64_t restore_fallbacks; /* restores that failed and booted cold */
	uint64_t tpl_built, tpl_build_failures, tpl_unusable;
	struct serve_hist boot_ms, restore_ms, acquire_ms;
};
void serve_hist_add(struct serve_hist *h, double ms);
int serve_metrics_text(struct serve *s, struct buf *out);

/* ---- sandbox.c ---- */
enum serve_sb_state { SB_STARTING, SB_READY, SB_FAILED };
struct serve_sandbox {
	struct serve *s;
	char id[SERVE_ID_LEN + 1];
	struct serve_vm *sv;
	struct serve_shape shape;
	enum serve_sb_state state;
	const char *made;
	double t0_ms, ms;
	unsigned ttl_s;
	uint64_t expires;           /* uv_now */
	json_t *labels, *env;       /* owned objects of strings */
	int busy;                   /* execs and file calls running */
	int deleting;
	struct serve_req *waiter;   /* the create request, until ready/failed */
	struct err why;             /* when failed */
	struct serve_sandbox *next;
};
struct serve_sandbox *serve_sandbox_find(struct serve *s, const char *id);
/* Validated create: takes a pool VM or makes one. On 0, *out is registered and
 * STARTING or READY; the waiter is resumed when it settles. Returns the HTTP
 * status to answer otherwise (429, 503) with e set. */
int serve_sandbox_create(struct serve *s, const struct serve_shape *shape, unsigned ttl_s,
			 json_t *env, json_t *labels, struct serve_req *waiter,
			 struct serve_sandbox **out, struct err *e);
void serve_sandbox_delete(struct serve_sandbox *sb);
/* Deletes and answers r (204) at once: the sandbox is unreachable and its VMM
 * killed; the teardown finishes behind the answer (serve_sandbox_deleting). */
void serve_sandbox_delete_for(struct serve_sandbox *sb, struct serve_req *r);
/* Deleted sandboxes whose VM is not gone yet (they still count in the caps). */
unsigned serve_sandbox_deleting(const struct serve *s);
json_t *serve_sandbox_json(const struct serve_sandbox *sb);
unsigned serve_sandbox_count(const struct serve *s);
unsigned serve_sandbox_memory_mib(const struct serve *s);
void serve_sandbox_sweep(struct serve *s);
/* ttl_s capped at the daemon's --max-ttl. */
unsigned serve_ttl_capped(const struct serve *s, unsigned ttl_s);
/* PATCH ttl_s: the expiry becomes now + ttl_s (capped), the new ttl_s kept. */
void serve_sandbox_renew(struct serve_sandbox *sb, unsigned ttl_s);
/* The waiter went away (client disconnected while waiting). */
void serve_sandbox_forget_waiter(struct serve_sandbox *sb);

/* ---- the daemon (serve.c) ---- */
struct serve {
	uv_loop_t *loop;
	struct serve_config cfg;
	struct serve_shape default_shape;
	struct MHD_Daemon *mhd;
	uv_poll_t mhd_poll;
	uv_timer_t mhd_timer;
	uv_timer_t sweep;
	uv_signal_t sigint, sigterm;
	uv_poll_t stop_poll;
	int stopping;
	struct serve_sandbox *sandboxes;
	struct serve_pool *pool;
	struct serve_metrics m;
	unsigned vms_alive;         /* serve_vm handles not yet destroyed */
	unsigned booting;           /* VMs between vm_create and ready/failed */
	struct serve_vm *queue, *queue_tail; /* makes waiting for a boot slot */
	struct serve_tpl *tpls[SERVE_TPL_MAX];
};
/* Stops serving: closes the socket and the loop handles, destroys every VM. */
void serve_stop(struct serve *s);
/* A serve_vm is gone: lets serve.c finish a stop. */
void serve_vm_gone(struct serve *s);

/* ---- sock.c ---- */
/* Binds and listens on path: 0600, or 0660 for group (not (gid_t)-1). */
int serve_sock_listen(const char *path, gid_t group, int *out, struct err *e);

/* ---- http.c ---- */
int serve_http_start(struct serve *s, int listen_fd, struct err *e);
/* MHD has work that no fd shows (a resumed connection): run it soon. */
void serve_http_kick(struct serve *s);
void serve_http_stop(struct serve *s);

/* ---- api.c: requests ---- */
struct serve_req {
	struct serve *s;
	struct MHD_Connection *conn;
	struct buf body;
	size_t body_max;
	int too_big;
	unsigned long long drained;   /* bytes of an over-cap body dropped so far */
	int suspended;
	int started;                /* the route ran; waiting or streaming */
	unsigned status;            /* a later answer, 0 until set */
	struct MHD_Response *resp;  /* a later answer */
	struct serve_sandbox *sb;   /* a sandbox this request waits on (create, delete) */
	/* An operation in flight that outlives nothing: an exec stream or a file
	 * call. op_detach runs when the request ends (completed or client gone). */
	void *op;
	void (*op_detach)(void *op, enum MHD_RequestTerminationCode toe);
	int op_queued;              /* the op queued its own (streamed) response */
	int stream_body;            /* the body goes to the op as it comes, unbuffered */
	int stream_drop;            /* ... nothing takes it: read and dropped */
	char route[16];             /* for metrics and logs */
};
enum MHD_Result serve_api_access(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls);
void serve_api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe);
/* Answers a suspended request later: status and a JSON body (stolen), or raw
 * bytes (copied) with a content type; resumes the connection. */
void serve_req_answer_json(struct serve_req *r, unsigned status, json_t *body);
void serve_req_answer_error(struct serve_req *r, unsigned status, const char *field,
			    const char *msg);
void serve_req_answer_bytes(struct serve_req *r, unsigned status, const char *type,
			    const void *p, size_t n);
/* Resumes a suspended request's connection (and runs MHD soon). */
void serve_req_resume(struct serve_req *r);

/* ---- body.c ---- */
/* Fills shape/ttl/env/labels from a POST /v1/sandboxes body; on a bad field
 * returns -EINVAL with *field set and e saying why. */
int serve_body_create(struct serve *s, const char *p, size_t n, struct serve_shape *shape,
		      unsigned *ttl_s, json_t **env, json_t **labels, char *field,
		      struct err *e);
struct serve_exec_req {
	char **argv;                /* owned, NULL-terminated */
	char **env;                 /* owned "K=V", NULL-terminated */
	char *cwd;                  /* owned or NULL */
	unsigned timeout_s;
	uint8_t *stdin_data;        /* owned or NULL */
	size_t stdin_len;
	int has_stdin;
};
int serve_body_exec(const char *p, size_t n, json_t *sandbox_env, struct serve_exec_req *x,
		    char *field, struct err *e);
void serve_exec_req_free(struct serve_exec_req *x);

/* ---- patch.c ---- */
/* PATCH /v1/sandboxes/{id} {"ttl_s": N}: 200 with the sandbox, or a 400
 * naming the field (status and e, field set). */
int serve_patch_sandbox(struct serve_sandbox *sb, const char *p, size_t n, char *field,
			struct err *e);

/* ---- exec.c / files.c ---- */
/* Starts the exec and queues its streamed response; returns an MHD result. */
enum MHD_Result serve_exec_begin(struct serve_req *r, struct serve_sandbox *sb,
				 struct serve_exec_req *x);
/* Starts a file operation; the request is answered later. Returns 0 or the
 * HTTP status to answer now with e set. */
int serve_files_put(struct serve_req *r, struct serve_sandbox *sb, const char *path,
		    const uint8_t *p, size_t n, struct err *e);
int serve_files_get(struct serve_req *r, struct serve_sandbox *sb, const char *path, int list,
		    struct err *e);

/* ---- workspace.c ---- */
/* 1 for a request whose body streams (PUT .../workspace). */
int serve_workspace_streams(const char *url, const char *method);
/* A chunk of such a body: queued on the guest's stdin, or left in *n with the
 * connection suspended until there is room. */
enum MHD_Result serve_workspace_put_data(struct serve_req *r, const char *url, const char *p,
					 size_t *n);
/* The body's end (the route): answered once the guest's unpacker exited.
 * Returns 0 or the HTTP status to answer now with e set. */
int serve_workspace_put_end(struct serve_req *r, struct serve_sandbox *sb, struct err *e);
/* Starts the streamed tar response. */
enum MHD_Result serve_workspace_get(struct serve_req *r, struct serve_sandbox *sb);

#endif
