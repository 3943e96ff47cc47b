/* Host side of the framed JSON-RPC channel to one guest (DESIGN.md §4).
 *
 * A channel is a connected byte stream (the Unix socket QEMU binds to the
 * guest's virtio-serial port, or a vsock connection after its CONNECT/OK
 * handshake), one persistent frame decoder, one read buffer, a byte-capped
 * write queue, a table of outstanding requests with reply deadlines, and the
 * owner's handlers. Anything malformed from the guest — a bad frame, a bad
 * envelope, a reply to an id we never sent or a reply whose result fails its
 * check (proto/msg.h), a request (the guest may not make any), an unknown
 * notification — closes the channel and reports one error through on_error;
 * nothing after that is delivered. The guest is never trusted to answer: every
 * request has a reply deadline the channel enforces itself. */
#ifndef IRONCLAW_VM_CHANNEL_H
#define IRONCLAW_VM_CHANNEL_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "proto/frame.h"

/* Default reply deadline of a request (channel_set_reply_timeout). */
#define CHANNEL_REPLY_TIMEOUT_MS 30000
/* Hard cap on bytes queued for writing: one maximal frame plus the stdin
 * window (vm/exec.h) and room for small requests. */
#define CHANNEL_WRITE_MAX (FRAME_MAX + (16u << 20))
/* Bytes read per read call, into the channel's one buffer. */
#define CHANNEL_READ_BUF (256u * 1024)

struct channel;

/* result is borrowed (NULL when error is set); error is a JSON-RPC error object
 * (borrowed) or NULL. Called exactly once per request; with both NULL when the
 * channel closed (or failed) before the reply came. */
typedef void (*channel_reply_cb)(struct channel *ch, json_t *result, json_t *error, void *ctx);

struct channel_handlers {
	/* A guest notification that passed proto_check_notification; params
	 * borrowed (may be NULL). Return 0 if understood, or a negative errno with
	 * a message in *e to close the channel. */
	int (*notify)(struct channel *ch, const char *method, json_t *params, void *ctx, struct err *e);
	/* A binary FRAME_BIN_OUTPUT frame (checked by the decoder). NULL: binary
	 * frames from the guest close the channel. Same return rules as notify. */
	int (*data)(struct channel *ch, const struct frame_bin *b, void *ctx, struct err *e);
	/* The channel failed (protocol error, EOF, I/O error, reply deadline).
	 * Called at most once. */
	void (*on_error)(struct channel *ch, const struct err *e, void *ctx);
};

/* Takes over fd, an ALREADY CONNECTED stream socket (owned from now on, also on
 * failure), and starts reading. Returns 0 with an owned handle in *out (free
 * with channel_close) or a negative errno with e set. */
int channel_open_fd(uv_loop_t *loop, int fd, const struct channel_handlers *h, void *ctx,
		    struct channel **out, struct err *e);


/* Reply deadline for requests sent from now on; 0 means none. */
void channel_set_reply_timeout(struct channel *ch, unsigned ms);

/* Sends a request; params stolen. cb may be NULL (reply ignored). Returns the id
 * (> 0) or a negative errno: -ENOTCONN, -EMSGSIZE, -ENOBUFS (write queue at its
 * byte cap), -ENOMEM. */
long channel_request(struct channel *ch, const char *method, json_t *params,
		     channel_reply_cb cb, void *ctx);

/* Sends an exec.stdin request as a binary frame (len bytes copied, eof closes
 * stdin after them). It has no reply deadline of its own: the reply comes when
 * the command has taken the bytes, which may be never for a command that does
 * not read; the exec's own host deadline bounds it (vm/exec.h). Returns the id
 * or a negative errno as channel_request. */
long channel_request_stdin(struct channel *ch, uint64_t exec, const void *data, size_t len,
			   int eof, channel_reply_cb cb, void *ctx);

/* Bytes queued for writing but not yet accepted by the kernel. */
size_t channel_write_backlog(const struct channel *ch);

/* Starts closing: pending replies get (NULL, NULL), no handler runs afterwards.
 * The memory is released once libuv has closed the handles. */
void channel_close(struct channel *ch);

#endif
