/* ironclaw-guest: the in-VM agent (docs/protocol.md, docs/image.md).
 *
 * One process, one thread, one poll loop. In the VM it is PID 1: it mounts the
 * basic filesystems, loads the virtio modules, finds the virtio-serial port named
 * org.ironclaw.0 and then serves the host's requests until `shutdown`, when it
 * powers the VM off. For tests it runs on the host with --channel-fd N, where it
 * serves an already-open socket and exits instead of powering off.
 *
 * Everything that arrives on the channel is hostile: params are checked against
 * a strict schema, and every queue has a hard cap. Backpressure is end to end:
 * while the outbound queue is above GUEST_OUTQ_HIGH the agent neither reads the
 * children's pipes nor processes further requests, so a slow host slows the
 * commands down instead of growing memory. */
#ifndef IRONCLAW_GUEST_GUEST_H
#define IRONCLAW_GUEST_GUEST_H

#include <jansson.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/params.h"

#define GUEST_PORT_NAME "org.ironclaw.0"
#define GUEST_PROTO_VERSION PROTO_VERSION

/* Outbound queue: stop producing above HIGH; hard cap fits one maximal frame
 * (a file.get reply) on top of HIGH. */
#define GUEST_OUTQ_HIGH   (1u << 20)
#define GUEST_OUTQ_MAX    (GUEST_OUTQ_HIGH + FRAME_MAX + 65536)
/* Decoded requests waiting for the outbound queue to drain: one read's worth. */
#define GUEST_READ_CHUNK  65536
/* Bodies with this much left are read into directly (chan.c). */
#define GUEST_READ_DIRECT_MIN 4096
#define GUEST_INQ_MAX     (GUEST_READ_CHUNK / 6 + 1)
/* One binary output frame carries at most this many bytes: a pipe read that
 * large (the pipes are grown to GUEST_PIPE_SIZE) costs one wake-up, where
 * under TCG each wake-up is expensive. */
#define GUEST_OUTPUT_CHUNK (256u * 1024)
#define GUEST_PIPE_SIZE    (1u << 20)

#define GUEST_EXEC_MAX       64        /* commands running at once */
#define GUEST_ARGV_MAX       4096      /* argv and env entries */
#define GUEST_STDIN_MAX      (16u << 20) /* queued stdin bytes per exec */
#define GUEST_STDIN_PENDING  64        /* exec.stdin replies waiting per exec */
#define GUEST_FILE_MAX       (8u << 20) /* file.put / file.get bytes per call */

struct guest_stdin_wait {
	json_int_t id;       /* exec.stdin request to answer */
	uint64_t until;      /* answered once this many bytes reached the pipe */
};

struct guest_exec {
	int in_use;
	json_int_t id;       /* id of the exec.start request */
	pid_t pid;           /* leader; also its process group and session */
	int out_fd, err_fd;  /* read ends, -1 once at EOF or closed */
	int in_fd;           /* write end of the stdin pipe, -1 when none/closed */
	struct buf inq;      /* stdin bytes accepted from the host */
	size_t in_off;       /* bytes of inq already written to the pipe */
	uint64_t in_written; /* bytes written to the pipe so far */
	uint64_t in_queued;  /* bytes ever accepted by exec.stdin */
	int in_eof;          /* close in_fd once inq drains */
	struct guest_stdin_wait waits[GUEST_STDIN_PENDING];
	int nwaits;
	uint64_t deadline_ms;  /* CLOCK_MONOTONIC ms; 0 = no timeout */
	int timed_out;
	int exited;          /* leader reaped; status valid */
	size_t drain_left[2];  /* after exit: bytes still owed from stdout, stderr */
	int status;
};

/* One decoded message from the host: JSON, or a binary stdin frame whose
 * frame body is owned here (bin.data points into it). */
struct guest_in {
	json_t *msg;
	struct frame_bin bin;
	uint8_t *data;
};

struct guest {
	int chan_fd;
	int vm_mode;         /* PID 1 in a VM: power off instead of exiting */
	int sig_fd;
	int done;            /* leave the loop */
	int exit_code;       /* for --channel-fd mode */
	int shutdown_pending;
	struct frame_decoder dec;
	struct buf outq;     /* encoded frames waiting for the channel */
	size_t outq_off;     /* bytes of outq already written */
	struct guest_in inq[GUEST_INQ_MAX]; /* decoded requests, owned */
	size_t inq_head, inq_len;
	struct guest_exec execs[GUEST_EXEC_MAX];
	/* Zero-copy output (exec_io.c): 0 not yet probed, 1 on, -1 off; the
	 * private pipe a chunk passes through on its way to the channel. */
	int splice_state;
	int splice_pipe[2];
};

/* chan.c: the byte stream to the host. */
void guest_chan_init(struct guest *g, int fd);
/* Queues msg (stolen) as one frame. Returns 0 or -EMSGSIZE/-ENOMEM (the caller
 * treats that as fatal: a message we cannot send breaks the protocol). */
int guest_chan_send(struct guest *g, json_t *msg);
/* Queues an already encoded frame (copied). Same returns as guest_chan_send. */
int guest_chan_append(struct guest *g, const uint8_t *frame, size_t len);
size_t guest_chan_pending(const struct guest *g);
/* Writes what the channel takes without blocking. Returns 0 or -errno. */
int guest_chan_flush(struct guest *g);
/* Blocks until the outbound queue is empty (shutdown path). */
int guest_chan_drain(struct guest *g);
/* Reads once and queues the decoded messages. Returns bytes read, 0 on EOF,
 * -EAGAIN, or a negative errno (decoder failure: message logged). */
ssize_t guest_chan_read(struct guest *g);
/* Pops the next decoded message into *in (owned by the caller: release with
 * guest_in_free). Returns 1, or 0 when none is queued. */
int guest_chan_next(struct guest *g, struct guest_in *in);
void guest_in_free(struct guest_in *in);

/* dispatch.c: one decoded message in, replies queued. Returns 0, or a negative
 * errno when the connection must end (protocol violation). */
int guest_dispatch(struct guest *g, json_t *msg);
/* The same for a binary frame (only FRAME_BIN_STDIN may come from the host). */
int guest_dispatch_bin(struct guest *g, const struct guest_in *in);
int guest_send_hello(struct guest *g);

/* exec.c */
int guest_exec_start(struct guest *g, json_int_t id, json_t *params);
int guest_exec_stdin(struct guest *g, json_int_t id, json_t *params);
/* exec.stdin with its bytes already decoded (data borrowed). */
int guest_exec_stdin_bytes(struct guest *g, json_int_t id, json_int_t exec, const uint8_t *data,
			   size_t len, int eof);
int guest_exec_kill(struct guest *g, json_int_t id, json_t *params);
/* Writes queued stdin without blocking and answers satisfied exec.stdin calls. */
int guest_exec_write_stdin(struct guest *g, struct guest_exec *e);
/* Reaps every exited child (PID 1 duty) and records the status of ours. */
void guest_exec_reap(struct guest *g);
/* Kills every running command's process group (connection end). */
void guest_exec_kill_all(struct guest *g);
/* Poll integration: adds fds to watch, then handles their events. */
size_t guest_exec_pollfds(struct guest *g, struct pollfd *pfds, size_t max, int want_output);
int guest_exec_events(struct guest *g, const struct pollfd *pfds, size_t n);
/* Milliseconds until the nearest timeout (-1: none); fires due timeouts. */
int guest_exec_timeouts(struct guest *g);
/* Sends exec.exit for commands that exited and whose pipes are drained. */
int guest_exec_finish(struct guest *g);
uint64_t guest_now_ms(void);

/* identity.c: vm.identity, sent once to a VM restored from a template */
int guest_identity(struct guest *g, json_int_t id, json_t *params);

/* file.c */
int guest_file_put(struct guest *g, json_int_t id, json_t *params);
int guest_file_get(struct guest *g, json_int_t id, json_t *params);

/* Reply helpers (dispatch.c). Return guest_chan_send's value. */
int guest_reply(struct guest *g, json_int_t id, json_t *result);
int guest_reply_error(struct guest *g, json_int_t id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same with the error's "data" member (stolen; may be NULL). */
int guest_reply_error_data(struct guest *g, json_int_t id, int code, json_t *data,
			   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* loop.c: serves the channel until shutdown or the connection ends. Returns the
 * exit code for --channel-fd mode. */
int guest_loop_run(struct guest *g);

/* port.c: finds and opens the virtio-serial port named name. Returns an fd
 * (O_RDWR, non-blocking) or a negative errno after timeout_ms. */
int guest_port_open(const char *name, int timeout_ms);
/* Waits until the host end of the port is connected (no POLLHUP). */
int guest_port_wait_host(int fd, int timeout_ms);
/* Whether splice(2) of whole pipe pages into the channel fd is safe: a
 * socket (--channel-fd), or a virtio-serial port whose device negotiated
 * indirect descriptors (see exec_io.c). 1 or 0. */
int guest_port_splice_ok(int fd);

/* boot.c: PID 1 setup. */
struct guest_boot_opts {
	int poweroff;        /* ironclaw.poweroff=1 */
	char ip[64];         /* ironclaw.ip=ADDR/PREFIX */
	char gw[64];         /* ironclaw.gw=ADDR */
	int root;            /* ironclaw.root=1: boot from the read-only image disk */
	int scratch;         /* ironclaw.scratch=1: the writable layer is a scratch disk */
};
int guest_boot_parse_cmdline(const char *cmdline, struct guest_boot_opts *o);
void guest_boot_init(struct guest_boot_opts *o);
/* ironclaw.root=1: makes an overlay on the image disk the root (root.c);
 * powers off with a console message when it cannot. */
void guest_boot_root(const struct guest_boot_opts *o);
/* Syncs and powers the VM off; never returns. */
void guest_boot_poweroff(void) __attribute__((noreturn));

#endif
