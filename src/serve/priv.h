/* Privilege separation of `ironclaw serve`, after OpenBSD's vmd.
 *
 * `serve` starts as root, removes leftovers (gc), binds the socket, and forks:
 *
 *   parent (root, priv_parent.c)  only what needs root: a VM's directory, its
 *       address slot and scratch disk, jail spawn and destroy (namespaces,
 *       pivot_root, cgroups, netns + nft), and connecting to the sockets in a
 *       VM's directory (owned by the VM's uid). It parses nothing but the fixed
 *       messages below, each validated field by field on receipt.
 *   child (PRIV_API_UID, priv_drop.c)  everything that parses hostile bytes:
 *       libmicrohttpd and the API, channel frames and JSON-RPC, QMP replies. It
 *       runs the one libuv loop with no capabilities, no_new_privs, no
 *       supplementary groups and a seccomp filter (priv_seccomp.c), and
 *       reaches VMs through the launcher of
 *       priv_client.c, which asks the parent.
 *
 * Two SOCK_SEQPACKET socketpairs join them, so one recvmsg is one message and
 * a message's size is known exactly:
 *
 *   sync   the short calls (PREPARE, NET_RESERVE, DISCARD, SCRATCH, CONNECT,
 *          OPEN_LOG): the child sends one and waits for its REPLY (with a
 *          deadline); the parent answers each inline, in order.
 *   async  SPAWN, KILL and DESTROY, answered later by SPAWNED, EXITED and
 *          DESTROYED; the child reads them from its loop.
 *
 * Every message starts with struct priv_hdr and has exactly the size of its
 * type's struct. Descriptors travel by SCM_RIGHTS: the VMM's stderr pipe with
 * SPAWN (child -> parent); a connected socket (CONNECT) or a read-only file
 * (OPEN_LOG) with REPLY (parent -> child). The parent refuses (logs, answers
 * -EINVAL or -EPROTO, and spawns nothing) a message of the wrong size, an
 * unknown type, a bad magic or length, an invalid id, an id it did not prepare,
 * an unterminated string, or a SPAWN whose shape is wrong (see priv_check.c).
 *
 * Either side exits when the other does: the child has PR_SET_PDEATHSIG
 * SIGKILL; the parent sees the sockets close, destroys every VM it holds and
 * exits. The VMMs' own parent-death signal follows the parent's threads. */
#ifndef IRONCLAW_SERVE_PRIV_H
#define IRONCLAW_SERVE_PRIV_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/err.h"
#include "jail/jail.h"
#include "serve/serve.h"
#include "vm/backend.h"

/* The API process's uid and gid: the jail's way of picking ids (jail/id.c
 * takes JAIL_UID_BASE + 16 bits of an id's hash for each VMM), one past the
 * VMMs' range, so never a real user's and never a VMM's. */
#define PRIV_API_UID (1500000000u + 0x10000u)

#define PRIV_MAGIC 0x49435056u          /* "ICPV" */
#define PRIV_MSG_MAX 65536              /* larger than any message */
#define PRIV_TEXT_MAX 512               /* error text in answers */
#define PRIV_PATH_MAX 1024              /* a bind's host path */
#define PRIV_JAIL_PATH_MAX 128          /* a bind's path in the jail */
#define PRIV_SYNC_TIMEOUT_MS 5000       /* the parent answers sync calls inline */
#define PRIV_VMS_MAX 8192               /* VMs the parent holds at once */

enum priv_type {
	PRIV_PREPARE = 1,   /* sync: jail_prepare_dir */
	PRIV_NET_RESERVE,   /* sync: jail_net_reserve */
	PRIV_DISCARD,       /* sync: jail_discard (a VM that never spawned) */
	PRIV_SCRATCH,       /* sync: the scratch disk in the VM's directory */
	PRIV_CONNECT,       /* sync: connect to a socket in the VM's directory */
	PRIV_OPEN_LOG,      /* sync: open the console log read-only */
	PRIV_REPLY,         /* parent -> child: the answer to a sync call */
	PRIV_SPAWN,         /* async: start the VMM (+ its stderr fd) */
	PRIV_KILL,          /* async: SIGKILL to the VMM */
	PRIV_DESTROY,       /* async: kill, reap, remove the jail */
	PRIV_SPAWNED,       /* parent -> child */
	PRIV_EXITED,        /* parent -> child */
	PRIV_DESTROYED,     /* parent -> child */
	PRIV_TYPE_END
};

/* Which file of a VM's directory CONNECT and OPEN_LOG mean: the child never
 * sends a path, the parent builds it from the id. */
enum priv_file { PRIV_FILE_QMP = 1, PRIV_FILE_CHANNEL, PRIV_FILE_CONSOLE, PRIV_FILE_END };

struct priv_hdr {
	uint32_t magic;
	uint32_t type;      /* enum priv_type */
	uint32_t len;       /* the whole message, = sizeof its type's struct */
	uint32_t seq;       /* sync: echoed in the REPLY */
	char id[JAIL_ID_MAX + 1];   /* the VM, NUL-terminated, validated by jail_names_make */
	char pad[7];
};

/* PREPARE, NET_RESERVE, DISCARD, KILL, DESTROY */
struct priv_msg_id {
	struct priv_hdr h;
};

struct priv_msg_scratch {
	struct priv_hdr h;
	uint64_t bytes;     /* 1 MiB .. PRIV_SCRATCH_MAX, whole MiB */
};
#define PRIV_SCRATCH_MAX (1ull << 40)

struct priv_msg_file {   /* CONNECT, OPEN_LOG */
	struct priv_hdr h;
	uint32_t file;      /* enum priv_file; CONNECT: QMP or CHANNEL, OPEN_LOG: CONSOLE */
	uint32_t pad;
};

struct priv_bind {
	char host[PRIV_PATH_MAX];
	char jail[PRIV_JAIL_PATH_MAX];
	uint32_t writable;
	uint32_t pad;
};

struct priv_allow {
	uint32_t addr;
	uint32_t prefix;
	uint32_t port;
};

struct priv_msg_spawn {
	struct priv_hdr h;
	uint32_t argc;              /* 1 .. VM_PLAN_ARGV_MAX - 1 */
	uint32_t n_binds;           /* 0 .. VM_PLAN_BINDS_MAX */
	uint32_t kvm_node;          /* 0 or 1 */
	uint32_t net;               /* 0 or 1 */
	uint32_t n_allow;           /* 0 .. JAIL_ALLOW_MAX, 0 unless net */
	uint32_t cpu_percent;       /* 0 .. 100 * 1024 */
	uint64_t memory_max_bytes;  /* 0 .. 1 TiB */
	uint64_t fsize_max_bytes;   /* 0 .. PRIV_SCRATCH_MAX */
	uint32_t argv_off[VM_PLAN_ARGV_MAX];   /* offsets into store */
	char store[VM_PLAN_STORE];  /* NUL-terminated strings */
	struct priv_bind binds[VM_PLAN_BINDS_MAX];
	struct priv_allow allow[JAIL_ALLOW_MAX];
};

struct priv_msg_reply {
	struct priv_hdr h;
	int32_t rc;                 /* 0, a fd follows (CONNECT, OPEN_LOG), or -errno */
	uint32_t slot;              /* NET_RESERVE: the claimed slot */
	struct jail_net_addr addr;  /* NET_RESERVE */
	char text[PRIV_TEXT_MAX];   /* the error message when rc < 0 */
};

struct priv_msg_spawned {
	struct priv_hdr h;
	int32_t rc;
	int32_t pid;
	char text[PRIV_TEXT_MAX];
};

struct priv_msg_exited {
	struct priv_hdr h;
	int32_t status;             /* as from waitpid */
	int32_t pad;
};

struct priv_msg_destroyed {
	struct priv_hdr h;
	int32_t rc;
	int32_t pad;
	char text[PRIV_TEXT_MAX];
};

/* ---- priv_msg.c: the wire ---- */

/* The exact size of a message of this type, or 0 for an unknown type. */
size_t priv_msg_size(uint32_t type);
/* Fills the header of a message of type t for VM id. */
void priv_msg_init(struct priv_hdr *h, uint32_t type, const char *id);
/* Sends one message with an optional fd (-1: none). Returns 0 or -errno. */
int priv_msg_send(int sock, const void *msg, size_t len, int fd);
/* Receives one message into buf (PRIV_MSG_MAX bytes) and at most one fd
 * (*fd = -1 when none; extra fds are closed). Checks the wire shape only:
 * the size matches the type, magic and len, a NUL-terminated valid-looking
 * id. Returns the size, 0 on EOF, -EAGAIN, or -EPROTO with why set (the
 * message is then refused; its fd, if any, already closed). */
ssize_t priv_msg_recv(int sock, void *buf, int *fd, char *why, size_t why_len);

/* ---- priv_check.c: the SPAWN shape ---- */

/* Validates m for the VM names (prepared by this parent) and fills cfg, whose
 * argv, binds and allow point into m and the caller's arrays. Refuses anything
 * but QEMU; a writable bind other than the VM's own directory; a read-only
 * bind of a path the API uid could not read itself; out-of-range numbers.
 * Returns 0 or -EINVAL with e naming the field. */
int priv_check_spawn(struct priv_msg_spawn *m, const struct jail_names *names,
		     char **argv, struct jail_bind *binds, struct jail_net_allow *allow,
		     struct jail_config *cfg, struct err *e);

/* ---- priv_parent.c ---- */

/* Forks the API process: in the child, drops to PRIV_API_UID and returns 0
 * with the two sockets in *sync_fd, *async_fd. In the parent, serves the
 * child's requests until it exits, destroys every VM left, removes the
 * socket file, and returns the child's exit status (> 0) or -errno; the
 * parent never returns 0. fds_keep: descriptors the child keeps (the
 * listening socket, the stop fd); the parent closes the listening socket. */
int priv_fork(const struct serve_config *c, int listen_fd, int *sync_fd, int *async_fd,
	      struct err *e);

/* ---- priv_drop.c ---- */

/* In the child: no capabilities (bounding set too), no supplementary groups,
 * PRIV_API_UID for every uid and gid, no_new_privs, parent-death SIGKILL;
 * the cache directory reached through an fd opened before the drop
 * (XDG_CACHE_HOME=/proc/self/fd/N) and given to the API uid. Fails closed. */
int priv_drop(struct err *e);
/* In the parent, before the fork: make the cache directory the API uid's. */
int priv_cache_prepare(struct err *e);

/* ---- priv_images.c: the image store and the guest image for the API process ---- */
int priv_images_prepare(struct err *e);      /* root, before the fork */
int priv_images_open(int *fd, struct err *e); /* the child, before the drop */
void priv_images_link(int fd);                /* the child, after the drop */
/* A path of the API process's view of the store or the guest image as its
 * real path (buf), any other path as it is; NULL when it does not fit. */
const char *priv_images_host_path(const char *path, char *buf, size_t cap);
/* The parent: is host an image file of the store or of the guest image, fit
 * for a read-only bind? */
int priv_images_bind_ok(const char *host);

/* ---- priv_seccomp.c ---- */

/* Loads the API process's filter (a denylist that kills: exec, fork,
 * namespaces, mounts, ptrace, BPF, keyrings, modules; clone only for threads).
 * Needs no_new_privs or CAP_SYS_ADMIN. */
int priv_seccomp_load(struct err *e);

/* ---- priv_client.c: the child's launcher ---- */

/* Installs the launcher that asks the parent, on the child's loop. */
int priv_client_start(uv_loop_t *loop, int sync_fd, int async_fd, struct err *e);
void priv_client_stop(void);

#endif
