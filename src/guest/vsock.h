/* The guest agent's channel over AF_VSOCK (vsock.c), used when the VM has a
 * virtio-vsock device (Firecracker's guests; a QEMU guest with a vsock device
 * in the tests) instead of the virtio-serial port. */
#ifndef IRONCLAW_GUEST_VSOCK_H
#define IRONCLAW_GUEST_VSOCK_H

/* The port the host connects to (the host's VSOCK_GUEST_PORT). */
#define GUEST_VSOCK_PORT 52

/* 1 when a virtio-vsock device (virtio device ID 19) is present. */
int guest_vsock_present(void);
/* Listens on port and waits up to timeout_ms for the host; returns the
 * connected fd (close-on-exec) or -1 with the reason logged. */
int guest_vsock_accept(unsigned port, int timeout_ms);

#endif
