/* The guest image booted for real: QEMU microvm under TCG with the kernel and
 * initramfs from `make image`, the agent as PID 1. Checks what only a real boot
 * shows: the modules load, the mounts and hostname exist, the channel comes up
 * and says hello, ironclaw.poweroff=1 and `shutdown` end QEMU by themselves,
 * and ironclaw.ip/gw configure eth0. The command line is the QEMU backend's own
 * (qemu_build_argv), plus a NIC on an empty hub and a disk where a test needs them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "proto/frame.h"
#include "proto/rpc.h"
#include "vm/qemu.h"

#define BOOT_TIMEOUT_MS 90000

struct vm {
	pid_t qemu;
	int fd;
	char dir[64], sock[100], console[100];
	struct frame_decoder dec;
	json_t *msg;          /* last decoded message (owned) */
	double t_start, t_hello;
};

static const char *image_path(const char *file)
{
	static char p[4][4096];
	static int i;
	const char *root = getenv("IRONCLAW_ROOT");
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/build/image/%s", root ? root : ".", file);
	return p[i];
}

static int vm_take_bin(const struct frame_bin *b, void *ctx);

static void vm_boot(struct vm *v, const char *kernel, const char *extra_append, int with_nic)
{
	char *argv[QEMU_ARGV_MAX + 8];
	int n = 0;
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	cr_assert_eq(access(image_path(kernel), R_OK), 0, "%s missing (run `make image`)",
		     image_path(kernel));
	cr_assert_eq(access(image_path("initramfs.cpio"), R_OK), 0, "run `make image`");
	snprintf(v->dir, sizeof(v->dir), "/tmp/ironclaw-vmtest-XXXXXX");
	cr_assert_not_null(mkdtemp(v->dir));
	snprintf(v->sock, sizeof(v->sock), "%s/ch.sock", v->dir);
	snprintf(v->console, sizeof(v->console), "%s/console.log", v->dir);
	/* The backend's own command line (qemu_build_argv), with host paths and no
	 * jail, so this test boots exactly the VM shape every VM has. */
	static char qmp[128], store[8192];
	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", v->dir);
	struct qemu_spec spec = {
		.accel = VM_ACCEL_TCG, .cpus = 1, .memory_mib = 256, /* VM_DEFAULT_MEMORY_MIB */
		.kernel = image_path(kernel), .initrd = image_path("initramfs.cpio"),
		.cmdline_extra = extra_append[0] ? extra_append : NULL,
		.console_path = v->console, .channel_path = v->sock, .qmp_path = qmp, .tap_fd = -1,
	};
	cr_assert_eq(qemu_build_argv(&spec, argv, store, sizeof(store)), 0);
	while (argv[n])
		n++;
	static char drive[256];
	if (with_nic) {
		/* A NIC on an empty hub: eth0 exists, no packet leaves the VM. */
		argv[n++] = "-netdev";
		argv[n++] = "hubport,id=n0,hubid=0";
		argv[n++] = "-device";
		argv[n++] = "virtio-net-device,netdev=n0";
		/* And a disk, whose first bytes the guest must read back. */
		char disk[128];
		snprintf(disk, sizeof(disk), "%s/disk.img", v->dir);
		FILE *f = fopen(disk, "w");
		cr_assert_not_null(f);
		fputs("IRONCLAW-DISK-MAGIC", f);
		cr_assert_eq(ftruncate(fileno(f), 1 << 20), 0);
		fclose(f);
		snprintf(drive, sizeof(drive), "file=%s,format=raw,if=none,id=d0", disk);
		argv[n++] = "-drive";
		argv[n++] = drive;
		argv[n++] = "-device";
		argv[n++] = "virtio-blk-device,drive=d0";
	}
	argv[n] = NULL;
	v->t_start = clock_now_ms();
	v->qemu = fork();
	cr_assert_geq(v->qemu, 0);
	if (v->qemu == 0) {
		char errlog[128];
		snprintf(errlog, sizeof(errlog), "%s/qemu.err", v->dir);
		int devnull = open("/dev/null", O_RDWR);
		int err = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (err >= 0)
			dup2(err, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	frame_decoder_init(&v->dec);
	frame_decoder_accept_binary(&v->dec, vm_take_bin);
}

static void vm_connect(struct vm *v)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v->sock);
	while (clock_now_ms() - v->t_start < BOOT_TIMEOUT_MS) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			v->fd = fd;
			return;
		}
		close(fd);
		cr_assert_eq(waitpid(v->qemu, NULL, WNOHANG), 0, "QEMU exited before its socket appeared");
		usleep(5000);
	}
	cr_assert_fail("QEMU's channel socket never appeared");
}

static int vm_take(json_t *msg, void *ctx)
{
	struct vm *v = ctx;
	cr_assert_null(v->msg, "test reads one message at a time");
	v->msg = json_incref(msg);
	return 1; /* stop: one message per call */
}

/* Binary output frames become the exec.output notifications they stand for,
 * so the test reads one kind of message. */
static int vm_take_bin(const struct frame_bin *b, void *ctx)
{
	struct vm *v = ctx;
	cr_assert_eq(b->type, FRAME_BIN_OUTPUT);
	char *enc = malloc(b64_encoded_len(b->len) + 1);
	b64_encode(b->data, b->len, enc);
	json_t *m = rpc_notification("exec.output", json_pack("{s:I,s:s,s:s}", "exec",
		(json_int_t)b->exec, "stream", b->arg == 1 ? "stdout" : "stderr", "data", enc));
	free(enc);
	int rc = vm_take(m, v);
	json_decref(m);
	return rc;
}

/* Next message (owned). Frames are read one byte at a time after the header
 * so that no byte of the next frame is swallowed. */
static json_t *vm_recv(struct vm *v)
{
	double end = clock_now_ms() + BOOT_TIMEOUT_MS;
	while (!v->msg) {
		uint8_t b;
		struct pollfd p = { .fd = v->fd, .events = POLLIN };
		int left = (int)(end - clock_now_ms());
		cr_assert_gt(left, 0, "no message from the guest in time; see %s", v->console);
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t r = read(v->fd, &b, 1);
		cr_assert_eq(r, 1, "channel closed; see %s", v->console);
		int rc = frame_decoder_feed(&v->dec, &b, 1, vm_take, v);
		cr_assert_geq(rc, 0, "bad frame from guest: %s", v->dec.error);
	}
	json_t *m = v->msg;
	v->msg = NULL;
	return m;
}

static void vm_send(struct vm *v, json_int_t id, const char *method, json_t *params)
{
	size_t len;
	json_t *m = rpc_request(id, method, params);
	uint8_t *f = frame_encode(m, &len);
	json_decref(m);
	cr_assert_eq(write(v->fd, f, len), (ssize_t)len);
	free(f);
}

static void vm_hello(struct vm *v)
{
	vm_connect(v);
	json_t *m = vm_recv(v);
	v->t_hello = clock_now_ms();
	cr_assert_str_eq(json_string_value(json_object_get(m, "method")), "hello");
	const char *k = json_string_value(json_object_get(json_object_get(m, "params"), "kernel"));
	cr_assert(k && strstr(k, "cloud-amd64"), "kernel %s", k ? k : "(none)");
	json_decref(m);
	cr_log_info("boot: QEMU start to hello %.0f ms", v->t_hello - v->t_start);
}

/* Runs sh -c script in the guest; returns its stdout (owned) and exit code. */
static char *vm_sh(struct vm *v, json_int_t id, const char *script, int *code)
{
	struct buf out;
	buf_init(&out, 1 << 20);
	vm_send(v, id, "exec.start", json_pack("{s:[s,s,s]}", "argv", "sh", "-c", script));
	for (;;) {
		json_t *m = vm_recv(v);
		const char *method = json_string_value(json_object_get(m, "method"));
		json_t *p = json_object_get(m, "params");
		if (!method) {
			cr_assert_not_null(json_object_get(m, "result"), "exec.start failed");
		} else if (!strcmp(method, "exec.output")) {
			const char *d = json_string_value(json_object_get(p, "data"));
			uint8_t *raw = malloc(strlen(d) / 4 * 3 + 3);
			long n = b64_decode(d, strlen(d), raw);
			cr_assert_gt(n, 0);
			if (!strcmp(json_string_value(json_object_get(p, "stream")), "stdout"))
				buf_append(&out, raw, (size_t)n);
			free(raw);
		} else if (!strcmp(method, "exec.exit")) {
			*code = (int)json_integer_value(json_object_get(p, "code"));
			json_decref(m);
			break;
		}
		json_decref(m);
	}
	buf_append(&out, "", 1);
	return (char *)buf_steal(&out, NULL);
}

/* Waits for QEMU to exit on its own; returns ms waited. */
static double vm_wait_exit(struct vm *v, int timeout_ms)
{
	double t0 = clock_now_ms();
	int status;
	for (;;) {
		if (waitpid(v->qemu, &status, WNOHANG) == v->qemu)
			break;
		if (clock_now_ms() - t0 > timeout_ms) {
			kill(v->qemu, SIGKILL);
			waitpid(v->qemu, &status, 0);
			v->qemu = 0;
			cr_assert_fail("QEMU did not exit by itself within %d ms; see %s", timeout_ms,
				       v->console);
		}
		usleep(5000);
	}
	v->qemu = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "QEMU status %#x", status);
	return clock_now_ms() - t0;
}

static void vm_destroy(struct vm *v)
{
	char cmd[128];
	if (v->qemu > 0) {
		kill(v->qemu, SIGKILL);
		waitpid(v->qemu, NULL, 0);
	}
	if (v->fd >= 0)
		close(v->fd);
	json_decref(v->msg);
	frame_decoder_free(&v->dec);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", v->dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", v->dir);
}

static int console_has(struct vm *v, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(v->console, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

TestSuite(guest_vm, .timeout = 240);

Test(guest_vm, boots_loads_modules_and_shuts_down)
{
	struct vm v;
	int code = -1;
	vm_boot(&v, "vmlinux", "", 0);
	vm_hello(&v);
	char *out = vm_sh(&v, 1, "hostname; cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '; echo; "
			  "awk '{print $2\":\"$3}' /proc/mounts | sort | tr '\\n' ' '; echo; echo $$", &code);
	cr_assert_eq(code, 0);
	cr_assert(strstr(out, "ironclaw\n") == out, "hostname: %s", out);
	/* Drivers load for the devices present: the console only. */
	const char *mods[] = { "virtio_ring ", "virtio ", "virtio_mmio ", "virtio_console " };
	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
		cr_assert(strstr(out, mods[i]), "module %s not loaded: %s", mods[i], out);
	const char *absent[] = { "virtio_blk ", "vsock ", "virtio_net " };
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		cr_assert_not(strstr(out, absent[i]), "module %s loaded without its device: %s",
			      absent[i], out);
	const char *mounts[] = { "/dev:devtmpfs", "/proc:proc", "/sys:sysfs", "/tmp:tmpfs", "/run:tmpfs" };
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++)
		cr_assert(strstr(out, mounts[i]), "mount %s missing: %s", mounts[i], out);
	free(out);
	/* The agent is PID 1 and reaps orphans: a double-forked child leaves no zombie. */
	out = vm_sh(&v, 2, "(sleep 0.2 &) ; sleep 0.5; cat /proc/1/comm; "
			   "grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l", &code);
	cr_assert_eq(code, 0);
	cr_assert_str_eq(out, "init\n0\n", "PID 1 / zombies: %s", out);
	free(out);
	vm_send(&v, 3, "shutdown", json_object());
	json_t *m = vm_recv(&v);
	cr_assert_not_null(json_object_get(m, "result"));
	json_decref(m);
	double took = vm_wait_exit(&v, 30000);
	cr_log_info("shutdown: reply to QEMU exit %.0f ms", took);
	cr_assert(console_has(&v, "reboot: Power down"), "no power-down on the console");
	vm_destroy(&v);
}

Test(guest_vm, poweroff_option_exits_qemu_right_after_mounts)
{
	struct vm v;
	/* The compressed kernel too: both outputs of `make image` must boot. */
	vm_boot(&v, "vmlinuz", "ironclaw.poweroff=1", 0);
	double took = vm_wait_exit(&v, BOOT_TIMEOUT_MS);
	cr_log_info("raw boot (vmlinuz, start to poweroff) %.0f ms", took);
	cr_assert(console_has(&v, "reboot: Power down"), "no power-down on the console");
	cr_assert_not(console_has(&v, "Kernel panic"), "kernel panicked");
	vm_destroy(&v);
}

Test(guest_vm, nic_and_disk_drivers_and_static_address)
{
	struct vm v;
	int code = -1;
	vm_boot(&v, "vmlinux", "ironclaw.ip=10.77.0.2/24 ironclaw.gw=10.77.0.1", 1);
	vm_hello(&v);
	char *out = vm_sh(&v, 1, "ip -4 addr show dev eth0 | grep -o 'inet [0-9./]*'; ip route show default; "
			      "ip link show lo | grep -c UP; head -c 19 /dev/vda; echo; "
			      "cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '", &code);
	cr_assert_eq(code, 0, "output: %s", out);
	cr_assert(strstr(out, "IRONCLAW-DISK-MAGIC\n"), "disk: %s", out);
	cr_assert(strstr(out, "virtio_net ") && strstr(out, "virtio_blk ") && !strstr(out, "vsock "),
		  "modules: %s", out);
	cr_assert(strstr(out, "inet 10.77.0.2/24"), "eth0: %s", out);
	cr_assert(strstr(out, "default via 10.77.0.1 dev eth0"), "route: %s", out);
	free(out);
	vm_destroy(&v);
}
