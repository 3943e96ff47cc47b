/* The guest's vsock channel: see vsock.h.
 *
 * The device is recognised the way the image's module loading recognises it
 * (image/build.sh loads vsock and vmw_vsock_virtio_transport for virtio device
 * ID 19): a /sys/bus/virtio/devices/<dev>/device file reading 0x0013. The
 * agent then listens on its port for any CID and takes the first connection;
 * the host retries until the listener is up (vm/vsock_connect.c), so there is
 * no ordering to get right here. */
#include "guest/vsock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

#define VIRTIO_DEVICES "/sys/bus/virtio/devices"

int guest_vsock_present(void)
{
	DIR *d = opendir(VIRTIO_DEVICES);
	if (!d)
		return 0;
	int found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[300], id[16] = "";
		snprintf(path, sizeof(path), VIRTIO_DEVICES "/%s/device", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, id, sizeof(id) - 1);
		close(fd);
		found = n > 0 && !strncmp(id, "0x0013", 6);
	}
	closedir(d);
	return found;
}

int guest_vsock_accept(unsigned port, int timeout_ms)
{
	int ls = -1;
	/* The transport module may still be loading: socket() fails until it is. */
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		ls = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ls >= 0)
			break;
		usleep(10000);
	}
	if (ls < 0) {
		log_error("vsock: socket: %s (is vmw_vsock_virtio_transport loaded?)", strerror(errno));
		return -1;
	}
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0) {
		log_error("vsock: listening on port %u: %s", port, strerror(errno));
		close(ls);
		return -1;
	}
	struct pollfd p = { .fd = ls, .events = POLLIN };
	int rc = poll(&p, 1, timeout_ms);
	int fd = rc == 1 ? accept4(ls, NULL, NULL, SOCK_CLOEXEC) : -1;
	if (fd < 0)
		log_error("vsock: nobody connected to port %u within %d s%s%s", port, timeout_ms / 1000,
			  rc < 0 || rc == 1 ? ": " : "", rc < 0 || rc == 1 ? strerror(errno) : "");
	close(ls);
	return fd;
}
