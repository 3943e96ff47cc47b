/* Host side of the framed JSON-RPC channel to one guest (DESIGN.md §4).
 *
 * A channel is a byte stream behind a connect step (today the Unix socket that
 * QEMU binds to the guest's virtio-serial port), one persistent frame decoder, a
 * table of outstanding requests and a notification handler. Anything malformed
 * from the guest — a bad frame, a bad envelope, a response to an id we never
 * sent, a request (the guest may not make any) — closes the channel and reports
 * one error through on_error; nothing after that is delivered. */
#ifndef IRONCLAW_VM_CHANNEL_H
#define IRONCLAW_VM_CHANNEL_H

#include <jansson.h>
#include <uv.h>

#include "core/err.h"

struct channel;

/* result is borrowed (NULL when error is set); error is a JSON-RPC error object
 * (borrowed) or NULL. Called exactly once per request; with both NULL when the
 * channel closed before the reply came. */
typedef void (*channel_reply_cb)(struct channel *ch, json_t *result, json_t *error, void *ctx);

struct channel_handlers {
	/* A guest notification; params borrowed (may be NULL). Return 0 if understood,
	 * or a negative errno with a message in *e to close the channel. */
	int (*notify)(struct channel *ch, const char *method, json_t *params, void *ctx, struct err *e);
	/* The channel failed (protocol error, EOF, I/O error). Called at most once. */
	void (*on_error)(struct channel *ch, const struct err *e, void *ctx);
	/* Called once the connect step succeeded. */
	void (*on_connect)(struct channel *ch, void *ctx);
};

/* Connects to the Unix socket at path, retrying while it does not exist yet or
 * refuses (the VMM creates it a moment after starting), until deadline_ms from
 * now. Returns owned handle; free with channel_close. */
int channel_connect(uv_loop_t *loop, const char *path, unsigned deadline_ms,
		    const struct channel_handlers *h, void *ctx, struct channel **out,
		    struct err *e);

/* Takes over fd, an already connected stream (the backend's connect step has
 * run: a Unix socket for QEMU's virtio-serial port, a vsock connection after its
 * CONNECT/OK handshake). Returns an owned handle; free with channel_close. On
 * failure fd belongs to the caller only if uv_pipe_open refused it. */
int channel_open_fd(uv_loop_t *loop, int fd, const struct channel_handlers *h, void *ctx,
		    struct channel **out, struct err *e);

/* Sends a request; params stolen. cb may be NULL (reply ignored). Returns the id
 * (> 0) or a negative errno. */
long channel_request(struct channel *ch, const char *method, json_t *params,
		     channel_reply_cb cb, void *ctx);

/* Bytes queued for writing but not yet accepted by the kernel: callers that send
 * bulk data (stdin, files) wait for this to drop before sending more. */
size_t channel_write_backlog(const struct channel *ch);

/* Starts closing: pending replies get (NULL, NULL), no handler runs afterwards.
 * The memory is released once libuv has closed the handles. */
void channel_close(struct channel *ch);

#endif
