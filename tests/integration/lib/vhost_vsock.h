/* A vhost-user vsock device backend for tests (vhost_vsock.c): QEMU's
 * `-device vhost-user-vsock-device` connects to it and gets a virtio-vsock
 * device, so a real guest kernel's AF_VSOCK sockets work; on the host side it
 * speaks Firecracker's hybrid Unix-socket protocol, so the Firecracker
 * backend's channel code (vm/vsock_connect.c) runs against it unchanged.
 * Guest RAM must be shared with it: memory-backend-memfd,share=on. */
#ifndef IRONCLAW_TESTS_VHOST_VSOCK_H
#define IRONCLAW_TESTS_VHOST_VSOCK_H

#include <stdint.h>
#include <sys/types.h>

#define VHOST_VSOCK_COALESCE_OK 0x1   /* write OK with the guest's first bytes */

/* Listens on vhost_sock (for QEMU) and uds_path (for the host), then serves
 * in a child process (killed with the caller). reset_after > 0: a connection
 * is reset after that many guest-to-host bytes. Returns the pid or -errno. */
pid_t vhost_vsock_start(const char *vhost_sock, const char *uds_path, uint64_t guest_cid, int mode,
			uint64_t reset_after);
void vhost_vsock_stop(pid_t pid);

#endif
