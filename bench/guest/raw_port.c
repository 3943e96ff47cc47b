/* The raw virtio-serial baseline's guest side (bench only; static, run as
 * /init's last step by tests/data/guests/raw-writer.sh). It moves bytes over
 * the port with the plainest fast reader or writer there is, and nothing
 * else: no framing, no agent, no pipe, no shell. That is the speed the
 * channel's throughput is compared against (docs/bench.md).
 *
 *   raw-port out N   wait for one byte from the host, then write N zero bytes
 *   raw-port in N    wait for one byte, answer one byte (ready: the host
 *                    starts its clock only then, so the boot is not counted),
 *                    read N bytes, answer one byte (done)
 *
 * The port is opened once and kept open. Opening and closing it before the
 * host's bytes are read discards them (the driver drops a port's queued input
 * on release): the shell version probed the port in a subshell, and a host
 * that had already sent its bytes lost up to a queue's worth, so the reader
 * waited forever ("raw reader never answered").
 *
 * Reads: a port read returns at most one receive buffer (one page), and the
 * port has no read_iter, so readv() reads one buffer per iovec: 16 page-sized
 * iovecs take up to 16 buffers per system call. Writes: see raw_write. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RAW_PORT_NAME "org.ironclaw.0"
#define RAW_PORTS_DIR "/sys/class/virtio-ports"
#define RAW_CHUNK 262144
#define RAW_IOVS 16
#define RAW_PAGE 4096

static char raw_buf[RAW_IOVS * RAW_PAGE];

static void raw_nap(void)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static int raw_find(char *dev, size_t n)
{
	DIR *d = opendir(RAW_PORTS_DIR);
	struct dirent *de;
	int found = 0;
	while (d && !found && (de = readdir(d))) {
		char path[512], got[128];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), RAW_PORTS_DIR "/%s/name", de->d_name);
		int fd = open(path, O_RDONLY);
		ssize_t r = fd >= 0 ? read(fd, got, sizeof(got) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (r <= 0)
			continue;
		got[r] = '\0';
		got[strcspn(got, "\n")] = '\0';
		if (!strcmp(got, RAW_PORT_NAME)) {
			snprintf(dev, n, "/dev/%s", de->d_name);
			found = 1;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* The port's name arrives from the host after the driver probes, and its node
 * can refuse open() with ENXIO for a moment after it appears: poll both. */
static int raw_open(void)
{
	char dev[300];
	for (int i = 0; i < 15000; i++) {
		if (raw_find(dev, sizeof(dev))) {
			int fd = open(dev, O_RDWR | O_NOCTTY);
			if (fd >= 0)
				return fd;
		}
		raw_nap();
	}
	fprintf(stderr, "raw-port: no port named %s after 30 s\n", RAW_PORT_NAME);
	return -1;
}

/* Reads until `want` bytes have arrived; returns 0 or -1. */
static int raw_read(int fd, unsigned long long want)
{
	struct iovec iov[RAW_IOVS];
	for (int i = 0; i < RAW_IOVS; i++)
		iov[i] = (struct iovec){ raw_buf + i * RAW_PAGE, RAW_PAGE };
	for (unsigned long long got = 0; got < want;) {
		/* Never past want: the first byte is read alone, the go signal. */
		size_t left = want - got < sizeof(raw_buf) ? (size_t)(want - got) : sizeof(raw_buf);
		int n = (int)((left + RAW_PAGE - 1) / RAW_PAGE);
		iov[n - 1].iov_len = left - (size_t)(n - 1) * RAW_PAGE;
		ssize_t r = readv(fd, iov, n);
		iov[n - 1].iov_len = RAW_PAGE;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "raw-port: read after %llu of %llu bytes: %s\n", got, want,
				r < 0 ? strerror(errno) : "end of file");
			return -1;
		}
		got += (unsigned long long)r;
	}
	return 0;
}

/* Writes n zero bytes: each 256 KiB goes into a private pipe with one write()
 * (one copy, full pages) and from there to the port with splice(2), the
 * pipe's whole content at a time (the condition under which the 6.1 driver's
 * splice is sound, see src/guest/exec_io.c): one ring entry and one kick per
 * 256 KiB. Plain write()s carry at most 32 KiB each (the driver's cap) and,
 * measured alternately on a loaded host, ran at 40-84 MB/s where this ran at
 * 188-234 MB/s: the best plain writer for the port is this one. The 1-byte
 * answer goes with write(). */
static int raw_write(int fd, unsigned long long n)
{
	static char chunk[RAW_CHUNK];
	int p[2];
	if (n < sizeof(chunk))
		return write(fd, chunk, (size_t)n) == (ssize_t)n ? 0 : -1;
	if (pipe(p) < 0 || fcntl(p[1], F_SETPIPE_SZ, RAW_CHUNK) != RAW_CHUNK) {
		fprintf(stderr, "raw-port: pipe of %d bytes: %s\n", RAW_CHUNK, strerror(errno));
		return -1;
	}
	while (n > 0) {
		size_t c = n < sizeof(chunk) ? (size_t)n : sizeof(chunk);
		if (write(p[1], chunk, c) != (ssize_t)c) {
			fprintf(stderr, "raw-port: pipe write: %s\n", strerror(errno));
			return -1;
		}
		for (size_t left = c; left > 0;) {
			ssize_t w = splice(p[0], NULL, fd, NULL, left, 0);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "raw-port: splice: %s\n", w < 0 ? strerror(errno) : "0 bytes");
				return -1;
			}
			left -= (size_t)w;
		}
		n -= c;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "in") && strcmp(argv[1], "out"))) {
		fprintf(stderr, "usage: raw-port in|out BYTES\n");
		return 2;
	}
	unsigned long long bytes = strtoull(argv[2], NULL, 10);
	int in = !strcmp(argv[1], "in");
	int fd = raw_open();
	int rc = fd < 0 ? -1 : raw_read(fd, 1);
	if (rc == 0 && in)
		rc = raw_write(fd, 1);
	if (rc == 0)
		rc = in ? raw_read(fd, bytes) : raw_write(fd, bytes);
	if (rc == 0 && in)
		rc = raw_write(fd, 1);
	fprintf(stderr, "raw-port: %s %llu bytes: %s\n", argv[1], bytes, rc == 0 ? "done" : "failed");
	/* PID 1 must not exit (the kernel panics); the host kills the VM. */
	for (;;)
		pause();
}
