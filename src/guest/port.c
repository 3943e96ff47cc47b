/* Finding the channel inside the VM. The virtio-serial port's name arrives from
 * the host asynchronously after the driver probes, and the /dev node can refuse
 * open() with ENXIO for a moment after it appears (DESIGN.md §5), so both steps
 * poll with short waits instead of sleeping a fixed time. */
#include "guest/guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define GUEST_PORTS_DIR "/sys/class/virtio-ports"

static void guest_port_nap(void)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

/* Fills dev with /dev/<vportNpM> when a port named name exists. */
static int guest_port_find(const char *name, char *dev, size_t n)
{
	DIR *d = opendir(GUEST_PORTS_DIR);
	struct dirent *de;
	int rc = -ENOENT;
	if (!d)
		return -ENOENT;
	while (rc < 0 && (de = readdir(d))) {
		char path[512], got[128];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), GUEST_PORTS_DIR "/%s/name", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, got, sizeof(got) - 1);
		close(fd);
		if (r <= 0)
			continue;
		got[r] = '\0';
		got[strcspn(got, "\n")] = '\0';
		if (!strcmp(got, name)) {
			snprintf(dev, n, "/dev/%s", de->d_name);
			rc = 0;
		}
	}
	closedir(d);
	return rc;
}

int guest_port_open(const char *name, int timeout_ms)
{
	uint64_t end = guest_now_ms() + (uint64_t)timeout_ms;
	char dev[300];
	int err = -ENOENT;
	do {
		if ((err = guest_port_find(name, dev, sizeof(dev))) == 0) {
			int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd >= 0)
				return fd;
			err = -errno;
			if (err != -ENXIO && err != -ENOENT && err != -EBUSY) {
				log_error("opening %s: %s", dev, strerror(-err));
				return err;
			}
		}
		guest_port_nap();
	} while (guest_now_ms() < end);
	log_error("no virtio-serial port named %s after %d ms (%s)", name, timeout_ms,
		  strerror(-err));
	return err;
}

int guest_port_wait_host(int fd, int timeout_ms)
{
	uint64_t end = guest_now_ms() + (uint64_t)timeout_ms;
	/* The port reports POLLHUP while nothing is connected on the host side;
	 * anything written then would be dropped by QEMU. */
	do {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP))
			return 0;
		guest_port_nap();
	} while (guest_now_ms() < end);
	return -ETIMEDOUT;
}

/* A spliced chunk is one buffer of up to GUEST_OUTPUT_CHUNK / 4096 pages. With
 * indirect descriptors (VIRTIO_RING_F_INDIRECT_DESC, bit 28 of the device's
 * features) it takes one ring slot, which the driver's writability check
 * guarantees; without them it needs a slot per page, and when fewer are free
 * the 6.1 driver drops the spliced pages and returns 0, after the pipe has
 * already given them up. So splice only with indirect descriptors. */
int guest_port_splice_ok(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 0;
	if (S_ISSOCK(st.st_mode))
		return 1;
	if (!S_ISCHR(st.st_mode))
		return 0;
	char path[128], features[128];
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/device/features", major(st.st_rdev),
		 minor(st.st_rdev));
	int ffd = open(path, O_RDONLY | O_CLOEXEC);
	if (ffd < 0)
		return 0;
	ssize_t r = read(ffd, features, sizeof(features) - 1);
	close(ffd);
	return r > 28 && features[28] == '1';
}
