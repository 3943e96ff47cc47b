/* `ironclaw serve`: a daemon that keeps sandboxes (micro-VMs) for other
 * programs and answers an HTTP/1.1 + JSON API on a Unix socket (docs/api.yaml).
 * This header is what the CLI sees: the daemon's configuration and its entry
 * point (serve.c), and the client the CLI commands use to reach a running
 * daemon (client.c). Everything else of src/serve is internal (internal.h). */
#ifndef IRONCLAW_SERVE_SERVE_H
#define IRONCLAW_SERVE_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/err.h"

#define SERVE_SOCKET_DEFAULT "/run/ironclaw/api.sock"
#define SERVE_MAX_SANDBOXES_DEFAULT 32
#define SERVE_MEMORY_MIB_DEFAULT 8192     /* all sandboxes and pool VMs together */
#define SERVE_TTL_DEFAULT_S 600
#define SERVE_TTL_MAX_S 86400
/* /workspace as a tar stream, each way: the host's copy-in cap (1 GiB of
 * file data) plus room for tar headers. --max-workspace-mib lowers it. */
#define SERVE_WORKSPACE_MAX_DEFAULT (1152ull << 20)
#define SERVE_POOL_IMAGES_MAX 7           /* --pool-image, each a lane of the pool */

struct serve_config {
	const char *socket_path;  /* NULL: SERVE_SOCKET_DEFAULT */
	gid_t group;              /* (gid_t)-1: owner only (0600); else 0660 for it */
	unsigned max_sandboxes;   /* 0: default */
	unsigned memory_mib;      /* 0: default; cap over sandboxes + pool */
	unsigned pool_size;       /* ready VMs kept per pooled shape (0: no pool) */
	/* Images (names or ids of the local store) pooled besides the default,
	 * each in the default cpus and memory (borrowed). */
	const char *pool_images[SERVE_POOL_IMAGES_MAX];
	unsigned n_pool_images;
	unsigned pool_memory_mib; /* 0: pool_size * the shape's memory */
	unsigned pool_idle_s;     /* drain the pool after this long without demand (0: never) */
	unsigned cpus;            /* the default shape: 0 = VM_DEFAULT_CPUS */
	unsigned memory_default_mib; /* 0: VM_DEFAULT_MEMORY_MIB */
	unsigned max_booting;     /* VMs booting at once; 0: the host's CPU count */
	unsigned boot_timeout_s;  /* 0: VM_DEFAULT_BOOT_TIMEOUT_MS; counted from the boot's start */
	int stop_fd;              /* tests: -1, or an fd whose readability stops the daemon */
	int no_snapshot;          /* 1: every VM boots cold (no templates found or built) */
	unsigned max_ttl_s;       /* 0: SERVE_TTL_MAX_S; caps every TTL asked (create, PATCH) */
	unsigned workspace_max_mib; /* 0: SERVE_WORKSPACE_MAX; a PUT /workspace stream's cap */
};

/* Runs the daemon until SIGINT/SIGTERM: gc of leftovers first, then the socket,
 * then the loop. Returns 0 after a clean stop, or -errno with e set. */
int serve_run(const struct serve_config *c, struct err *e);

/* ---- the client (client.c): libcurl over the Unix socket, via src/net ---- */

#define SERVE_CLIENT_BODY_MAX (64u << 20)

/* The socket to use: $IRONCLAW_SOCKET, else SERVE_SOCKET_DEFAULT (borrowed). */
const char *serve_client_socket(void);
/* For `doctor`: one line on the daemon (running, sandboxes, pool). Returns 1
 * when it runs, else 0 (the line says so). */
int serve_client_describe(const char *sock, char *out, size_t n);
/* 1 when a daemon answers GET /v1/health on the socket, else 0. */
int serve_client_alive(const char *sock);

/* Called with each chunk of a response body as it arrives (streaming). */
typedef void (*serve_client_chunk_cb)(void *ctx, const char *p, size_t n);

struct serve_client_req {
	const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *path;         /* "/v1/sandboxes?..." */
	const void *body;         /* may be NULL */
	size_t body_len;
	const char *content_type; /* NULL: application/json when body */
	serve_client_chunk_cb chunk; /* NULL: the body is collected in out */
	void *ctx;
};

/* Performs one request on its own loop. *status gets the HTTP status; the body
 * goes to out (capped at SERVE_CLIENT_BODY_MAX) unless chunk is set. Returns 0
 * or -errno with e set (cannot connect: with a hint to start the daemon). */
int serve_client_do(const char *sock, const struct serve_client_req *r, long *status,
		    struct buf *out, struct err *e);

/* POST /v1/sandboxes/{id}/exec with body (an ExecRequest), its stdout and
 * stderr written to fds 1 and 2 as they come. Returns the command's exit
 * status as `ironclaw exec` reports it, or 125 with e set. */
int serve_client_exec(const char *sock, const char *id, const char *body, struct err *e);
/* One-shot: create a sandbox (create_body: a SandboxCreate), exec in it,
 * delete it. Same return as serve_client_exec. A create refused for its
 * image says that the daemon looked the name up in its own store. */
int serve_client_exec_once(const char *sock, const char *create_body, const char *exec_body,
			   struct err *e);

/* What `ironclaw exec` hands the daemon (cmd_exec's hook). */
struct serve_client_exec_spec {
	unsigned cpus, memory_mib;   /* 0: the daemon's default */
	const char *net;             /* NULL: none */
	const char *image;           /* a name or id in the DAEMON's store; NULL: default */
	char *const *argv;
	char *const *env;            /* "K=V", NULL-terminated */
	const char *cwd;             /* NULL: / */
	unsigned timeout_s;
	int stdin_fd;                /* -1: none; else read whole (at most 768 KiB) */
};
/* Create, exec, delete; the command's status as `ironclaw exec`, or 125. */
int serve_client_exec_cmd(const char *sock, const struct serve_client_exec_spec *x,
			  struct err *e);

#endif
