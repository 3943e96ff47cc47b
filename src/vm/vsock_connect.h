/* The vsock channel's connect step (Firecracker's hybrid vsock: the guest's
 * AF_VSOCK ports are reached through Unix sockets on the host).
 *
 * Host to guest: connect to uds_path (retrying while the VMM has not created
 * it), send `CONNECT <port>\n`, read `OK <n>\n`, and hand over the fd with not
 * one byte of what follows the OK line consumed: the line is found with
 * MSG_PEEK and then exactly its bytes are read, so a frame the guest sent in
 * the same segment stays in the socket for the channel's decoder. Firecracker
 * closes the connection instead of answering when nothing listens on the port
 * (the guest agent is still starting), so an EOF means "try again shortly",
 * until the deadline.
 *
 * Guest to host: Firecracker connects to `<uds_path>_<port>`, where the host
 * must be listening; vsock_listen accepts there (no handshake on that side). */
#ifndef IRONCLAW_VM_VSOCK_CONNECT_H
#define IRONCLAW_VM_VSOCK_CONNECT_H

#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "vm/unix_connect.h"

/* The guest agent's vsock port (ironclaw-guest listens there). */
#define VSOCK_GUEST_PORT 52

struct vsock_connect;

/* done gets an owned, connected, non-blocking fd positioned right after the
 * OK line, or -1 and e, exactly once unless vsock_connect_cancel comes first. */
int vsock_connect_start(uv_loop_t *loop, const char *uds_path, uint32_t port, unsigned deadline_ms,
			unix_connect_cb done, void *ctx, struct vsock_connect **out, struct err *e);
void vsock_connect_cancel(struct vsock_connect *vc);

struct vsock_listen;
/* Each guest-initiated connection to port: an owned, non-blocking fd. */
typedef void (*vsock_accept_cb)(void *ctx, int fd);
/* Listens on <uds_path>_<port> (removed by vsock_listen_close). */
int vsock_listen_start(uv_loop_t *loop, const char *uds_path, uint32_t port, vsock_accept_cb cb,
		       void *ctx, struct vsock_listen **out, struct err *e);
void vsock_listen_close(struct vsock_listen *vl);

#endif
