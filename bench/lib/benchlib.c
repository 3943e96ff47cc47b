/* Shared bench measurements: see benchlib.h. */
#include "benchlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/clock.h"
#include "vm/qemu.h"
#include "vm/vm.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_percentile(const double *v, int n, double p)
{
	double *s = malloc((size_t)n * sizeof(*s));
	if (!s || n <= 0) {
		free(s);
		return 0;
	}
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	double r = s[(int)(p / 100.0 * (n - 1) + 0.5)];
	free(s);
	return r;
}

double bench_mbps(double bytes, double ms)
{
	return ms > 0 ? bytes / 1e6 / (ms / 1000.0) : 0;
}

struct rtt_run {
	uv_loop_t *loop;
	struct vm *vm;
	int done_runs;
	double t0;
	double samples[BENCH_RTT_MAX];
	int runs;
	int failed;
	char *const *argv;
};

static void rtt_next(struct rtt_run *r);

static void rtt_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct rtt_run *r = ctx;
	(void)x;
	if (res->err.code || res->code != 0) {
		fprintf(stderr, "bench: exec failed: %s\n", res->err.code ? res->err.msg : "non-zero exit");
		r->failed = 1;
		vm_destroy(r->vm);
		return;
	}
	r->samples[r->done_runs++] = clock_now_ms() - r->t0;
	rtt_next(r);
}

static void rtt_next(struct rtt_run *r)
{
	if (r->done_runs == r->runs) {
		vm_destroy(r->vm);
		return;
	}
	struct vm_exec_spec spec = { .argv = (char **)r->argv };
	static const struct vm_exec_handlers h = { .done = rtt_on_done };
	struct vm_exec *x;
	struct err e = { 0 };
	r->t0 = clock_now_ms();
	if (vm_exec_start(r->vm, &spec, &h, r, &x, &e) < 0) {
		fprintf(stderr, "bench: %s\n", e.msg);
		r->failed = 1;
		vm_destroy(r->vm);
	}
}

static void rtt_on_ready(struct vm *vm, void *ctx)
{
	(void)vm;
	rtt_next(ctx);
}

static void rtt_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct rtt_run *r = ctx;
	fprintf(stderr, "bench: VM failed: %s\n", e->msg);
	r->failed = 1;
	vm_destroy(vm);
}

int bench_exec_rtt(int runs, double *p50, double *p99)
{
	static char *const argv[] = { "true", NULL };
	struct vm_options o = { 0 };
	return bench_exec_rtt_of(&o, argv, runs, p50, p99);
}

int bench_exec_rtt_of(const struct vm_options *o, char *const *argv, int runs, double *p50,
		      double *p99)
{
	if (runs < 1 || runs > BENCH_RTT_MAX)
		return -1;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rtt_run r = { .loop = &loop, .runs = runs, .argv = argv };
	static const struct vm_events ev = { .ready = rtt_on_ready, .failed = rtt_on_failed };
	struct err e = { 0 };
	if (vm_create(&loop, o, &ev, &r, &r.vm, &e) < 0) {
		fprintf(stderr, "bench: %s\n", e.msg);
		return -1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (r.failed || r.done_runs != runs)
		return -1;
	if (p50)
		*p50 = bench_percentile(r.samples, runs, 50);
	if (p99)
		*p99 = bench_percentile(r.samples, runs, 99);
	return 0;
}

/* The default initramfs with the raw writer appended as /init and the static
 * raw-port beside it (the kernel unpacks concatenated archives in order, so
 * the later /init wins). */
static int bench_raw_initrd(const struct vm_image *img, const char *dir, int in, char *out,
			    size_t n)
{
	const char *root = getenv("IRONCLAW_ROOT");
	char cmd[16384], helper[4096];
	root = root ? root : ".";
	snprintf(helper, sizeof(helper), "%s/" BENCH_RAW_PORT_BIN, root);
	if (access(helper, X_OK) != 0) {
		fprintf(stderr, "bench: no %s (make %s builds it)\n", helper, BENCH_RAW_PORT_BIN);
		return -1;
	}
	snprintf(out, n, "%s/raw.cpio", dir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; d=%s/overlay; mkdir -p $d; "
		 "{ echo '#!/bin/sh'; echo 'RAW_BYTES=%u'; echo 'RAW_DIR=%s'; cat %s/tests/data/guests/raw-writer.sh; } > $d/init; "
		 "cp %s $d/raw-port; chmod 755 $d/init $d/raw-port; cp %s %s; "
		 "(cd $d && printf 'init\\nraw-port\\n' | cpio -o -H newc --quiet) >> %s",
		 dir, BENCH_RAW_BYTES, in ? "in" : "out", root, helper, img->initrd, out, out);
	return system(cmd) == 0 ? 0 : -1;
}

static int bench_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	double end = clock_now_ms() + timeout_ms;
	while (clock_now_ms() < end) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(5000); /* QEMU has not created the socket yet: nothing to wait on */
	}
	return -1;
}

static int bench_raw_wait_byte(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	return poll(&p, 1, BENCH_RAW_TIMEOUT_MS) == 1 && read(fd, &c, 1) == 1 ? 0 : -1;
}

/* Host -> guest: after the guest's ready byte (so its boot is not counted),
 * 64 MiB written to the port, timed from the first write to the guest's
 * one-byte answer after its last read. */
static double bench_raw_send(int fd)
{
	static char chunk[1 << 20];
	if (bench_raw_wait_byte(fd) < 0) {
		fprintf(stderr, "bench: the raw reader never said it was ready\n");
		return -1;
	}
	double t0 = clock_now_ms();
	for (size_t sent = 0; sent < BENCH_RAW_BYTES;) {
		size_t n = BENCH_RAW_BYTES - sent < sizeof(chunk) ? BENCH_RAW_BYTES - sent : sizeof(chunk);
		ssize_t w = write(fd, chunk, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		sent += (size_t)w;
	}
	if (bench_raw_wait_byte(fd) < 0) {
		fprintf(stderr, "bench: raw reader never answered\n");
		return -1;
	}
	return bench_mbps(BENCH_RAW_BYTES, clock_now_ms() - t0);
}

/* MB/s from the first byte to the last, so the boot is not counted. in: host
 * -> guest instead. */
double bench_raw_port_once(const struct vm_image *img, enum vm_accel accel, int in)
{
	char dir[] = "/tmp/ironclaw-bench-XXXXXX";
	char console[128], channel[128], qmp[128], initrd[128], rm[160];
	double result = -1;
	if (!mkdtemp(dir))
		return -1;
	snprintf(console, sizeof(console), "%s/console.log", dir);
	snprintf(channel, sizeof(channel), "%s/channel.sock", dir);
	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", dir);
	snprintf(rm, sizeof(rm), "rm -rf %s", dir);
	if (bench_raw_initrd(img, dir, in, initrd, sizeof(initrd)) < 0) {
		fprintf(stderr, "bench: cannot build the raw-writer initramfs\n");
		goto out;
	}
	struct qemu_spec spec = {
		.accel = accel, .cpus = VM_DEFAULT_CPUS, .memory_mib = VM_DEFAULT_MEMORY_MIB,
		.kernel = img->kernel, .initrd = initrd,
		.console_path = console, .channel_path = channel, .qmp_path = qmp, .tap_fd = -1,
	};
	char *argv[QEMU_ARGV_MAX];
	char store[8192];
	if (qemu_build_argv(&spec, argv, store, sizeof(store)) < 0)
		goto out;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	int fd = pid > 0 ? bench_connect(channel, 30000) : -1;
	if (fd >= 0 && in && write(fd, "g", 1) == 1) {
		result = bench_raw_send(fd);
	} else if (fd >= 0 && write(fd, "g", 1) == 1) {
		static char chunk[1 << 20];
		size_t got = 0, first = 0;
		double t0 = 0, t1 = 0;
		while (got < BENCH_RAW_BYTES) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (poll(&p, 1, BENCH_RAW_TIMEOUT_MS) <= 0)
				break;
			ssize_t r = read(fd, chunk, sizeof(chunk));
			if (r <= 0)
				break;
			if (!got) {
				t0 = clock_now_ms();
				first = (size_t)r;
			}
			got += (size_t)r;
			t1 = clock_now_ms();
		}
		if (got == BENCH_RAW_BYTES)
			result = bench_mbps((double)(got - first), t1 - t0);
		else
			fprintf(stderr, "bench: raw writer sent %zu of %u bytes\n", got, BENCH_RAW_BYTES);
	}
	if (result < 0) {
		char tail[300];
		snprintf(tail, sizeof(tail), "tail -n 15 %s >&2", console);
		if (system(tail) != 0)
			fprintf(stderr, "bench: no console log\n");
	}
	if (fd >= 0)
		close(fd);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
out:
	if (system(rm) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	return result;
}
