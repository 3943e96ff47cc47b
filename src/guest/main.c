/* ironclaw-guest entry point. Three ways to run:
 *   as /init (PID 1) in the VM: boot duties, then serve org.ironclaw.0, power
 *     off at shutdown or on a fatal channel error (PID 1 must never exit);
 *   with --channel-fd N: serve an already-open socket (tests on the host),
 *     exit 0 at shutdown or clean EOF, 1 on a protocol error;
 *   as a plain process in a VM (debugging): find the port, exit like above. */
#include "guest/guest.h"
#include "guest/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"

#define GUEST_PORT_TIMEOUT_MS 15000
#define GUEST_HOST_TIMEOUT_MS 60000

static void guest_usage(FILE *f)
{
	fprintf(f, "usage: ironclaw-guest [--channel-fd N]\n"
		   "The IronClaw in-VM agent. As PID 1 it boots the VM and serves the host on the\n"
		   "virtio-serial port " GUEST_PORT_NAME "; with --channel-fd it serves fd N instead\n"
		   "(tests), and exits rather than powering off.\n");
}

static int guest_parse_fd(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 65535 || fcntl((int)v, F_GETFD) < 0)
		return -EBADF;
	return (int)v;
}

/* In VM mode nothing may end PID 1: fatal paths power off instead. */
static int guest_fatal(const struct guest *g, int code)
{
	if (g->vm_mode) {
		log_error("powering off");
		guest_boot_poweroff();
	}
	return code;
}

/* While the port's name travels from QEMU (tens of ms in which the vCPU has
 * little to do), run busybox once in the background. Under TCG the first run
 * of a program pays for translating its code; doing it here takes that cost
 * off the user's first command. The child is reaped like any orphan. */
static void guest_warm_up(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execl("/bin/busybox", "true", (char *)NULL);
		_exit(127);
	}
}

int main(int argc, char **argv)
{
	static struct guest g;
	int fd = -1;
	sigset_t mask;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--channel-fd") && i + 1 < argc) {
			if ((fd = guest_parse_fd(argv[++i])) < 0) {
				fprintf(stderr, "ironclaw-guest: --channel-fd %s is not an open file "
					"descriptor (hint: pass the number of an inherited socket)\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			guest_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ironclaw-guest: unknown argument '%s' (hint: --help)\n", argv[i]);
			return 2;
		}
	}
	g.vm_mode = fd < 0 && getpid() == 1;
	if (g.vm_mode) {
		struct guest_boot_opts opts;
		guest_boot_init(&opts);
	}
	/* Keep fds 0-2 taken, so that no pipe lands there and the child's dup2
	 * onto 0-2 cannot clobber another of its pipe ends. */
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			log_error("fd %d is closed and /dev/null cannot be opened", i);

	/* Writes to a closed pipe or socket must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	g.sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g.sig_fd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return guest_fatal(&g, 1);
	}
	if (fd < 0) {
		if (g.vm_mode)
			guest_warm_up();
		/* A vsock device means the host talks AF_VSOCK (guest/vsock.c). */
		int vsock = guest_vsock_present();
		fd = vsock ? guest_vsock_accept(GUEST_VSOCK_PORT, GUEST_HOST_TIMEOUT_MS)
			   : guest_port_open(GUEST_PORT_NAME, GUEST_PORT_TIMEOUT_MS);
		if (fd < 0)
			return guest_fatal(&g, 1);
		log_debug("boot: port open at %llu ms", (unsigned long long)guest_now_ms());
		if (!vsock && guest_port_wait_host(fd, GUEST_HOST_TIMEOUT_MS) < 0) {
			log_error("nobody connected to " GUEST_PORT_NAME " on the host within %d s",
				  GUEST_HOST_TIMEOUT_MS / 1000);
			return guest_fatal(&g, 1);
		}
	} else {
		io_set_cloexec(fd, 1);
	}
	io_set_nonblock(fd, 1);
	guest_chan_init(&g, fd);
	for (int i = 0; i < GUEST_EXEC_MAX; i++)
		g.execs[i].out_fd = g.execs[i].err_fd = g.execs[i].in_fd = -1;

	/* IRONCLAW_LOG=debug on the kernel command line reaches PID 1's
	 * environment: these lines time the boot on the console. */
	log_debug("hello at %llu ms", (unsigned long long)guest_now_ms());
	int rc = guest_send_hello(&g);
	if (rc == 0)
		rc = guest_loop_run(&g);
	else
		rc = 1;
	if (g.vm_mode) {
		if (!g.shutdown_pending)
			log_error("channel to the host ended");
		guest_boot_poweroff();
	}
	frame_decoder_free(&g.dec);
	buf_free(&g.outq);
	return rc;
}
