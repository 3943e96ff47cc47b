/* PID 1 duties before the agent serves the host: the filesystems every command
 * expects, the virtio modules (the cloud kernel builds them as modules), the
 * hostname and, when the host asks for it on the kernel command line, a static
 * network address (options: cmdline.c), and the switch to an image root
 * (root.c). This replaces a shell /init: no fork
 * per step, no sleeps, no udev (devtmpfs creates the device nodes). */
#include "guest/guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"

/* Plain list, one path per line, dependencies first: every module (scripts
 * may load them all). The tagged list says when the agent loads each. */
#define GUEST_MODULES_LIST "/etc/ironclaw/modules"
#define GUEST_MODULES_WHEN "/etc/ironclaw/modules.when"
#define GUEST_HOSTNAME "ironclaw"

void guest_boot_poweroff(void)
{
	sync();
	/* With ACPI (microvm's default) a power-off ends QEMU at once. Without
	 * it the kernel would only halt, and QEMU would spin forever: reboot
	 * instead, which with reboot=t (triple fault) and -no-reboot (QEMU) or
	 * reboot=k (Firecracker) ends the VMM just as well. */
	if (access("/sys/firmware/acpi", F_OK) == 0)
		reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static void guest_boot_mount(const char *src, const char *dst, const char *type,
			     unsigned long flags, const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
		log_error("mount %s on %s: %s", type, dst, strerror(errno));
}

static void guest_boot_console(void)
{
	/* The kernel gives init no stdio when the initramfs has no /dev/console. */
	if (fcntl(2, F_GETFD) >= 0)
		return;
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void guest_boot_load(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
		log_error("loading %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Bit n set when a virtio device with ID n exists. virtio_mmio probes its
 * devices while it loads, so they are all listed once it is in. */
static uint64_t guest_boot_virtio_ids(void)
{
	uint64_t ids = 0;
	DIR *d = opendir("/sys/bus/virtio/devices");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char path[512], *text = NULL;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/device", de->d_name);
		if (io_read_file(path, 64, &text, NULL) == 0) {
			unsigned long id = strtoul(text, NULL, 0);
			if (id < 64)
				ids |= 1ull << id;
		}
		free(text);
	}
	if (d)
		closedir(d);
	return ids;
}

/* /etc/ironclaw/modules.when: one "WHEN PATH" per line, dependencies first.
 * WHEN is "always" or the virtio device ID the module drives: only modules for
 * devices this VM has are loaded (each costs 5-100 ms under TCG). Without that
 * file (a custom image), every module of the plain list loads. */
static void guest_boot_modules(void)
{
	char *list = NULL;
	size_t len = 0;
	uint64_t ids = 0;
	int tagged = 1;
	if (io_read_file(GUEST_MODULES_WHEN, 65536, &list, &len) < 0) {
		tagged = 0;
		if (io_read_file(GUEST_MODULES_LIST, 65536, &list, &len) < 0) {
			log_error("no module list at %s: virtio devices may be missing",
				  GUEST_MODULES_LIST);
			return;
		}
	}
	for (int pass = 0; pass < 2; pass++) {
		for (const char *p = list; p < list + len;) {
			const char *nl = memchr(p, '\n', (size_t)(list + len - p));
			size_t n = (size_t)((nl ? nl : list + len) - p);
			char line[512], *path;
			if (n < sizeof(line)) {
				memcpy(line, p, n);
				line[n] = '\0';
				if (!tagged) {
					if (pass == 0 && n > 0)
						guest_boot_load(line);
				} else if ((path = strchr(line, ' '))) {
					*path++ = '\0';
					int always = !strcmp(line, "always");
					unsigned long id = always ? 64 : strtoul(line, NULL, 10);
					if (pass == 0 ? always : (id < 64 && (ids >> id & 1)))
						guest_boot_load(path);
				}
			}
			p += n + 1;
		}
		if (pass == 0)
			ids = guest_boot_virtio_ids();
	}
	free(list);
}

static void guest_boot_loopback(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

/* Runs busybox ip with args; returns its exit status or -errno. */
static int guest_boot_ip(char *const args[])
{
	int status;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv("/bin/ip", args);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void guest_boot_network(const struct guest_boot_opts *o)
{
	if (!o->ip[0])
		return;
	if (access("/sys/class/net/eth0", F_OK) < 0) {
		log_error("ironclaw.ip=%s given but the VM has no eth0", o->ip);
		return;
	}
	char ip[64], gw[64];
	snprintf(ip, sizeof(ip), "%s", o->ip);
	snprintf(gw, sizeof(gw), "%s", o->gw);
	char *up[] = { "ip", "link", "set", "eth0", "up", NULL };
	char *addr[] = { "ip", "addr", "add", ip, "dev", "eth0", NULL };
	char *route[] = { "ip", "route", "add", "default", "via", gw, "dev", "eth0", NULL };
	if (guest_boot_ip(addr) != 0 || guest_boot_ip(up) != 0 ||
	    (o->gw[0] && guest_boot_ip(route) != 0))
		log_error("configuring eth0 with %s via %s failed", o->ip, o->gw[0] ? o->gw : "-");
}

void guest_boot_init(struct guest_boot_opts *o)
{
	char *cmdline = NULL;
	size_t len = 0;

	guest_boot_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	guest_boot_console();
	guest_boot_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	guest_boot_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	guest_boot_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	guest_boot_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	guest_boot_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666");

	if (io_read_file("/proc/cmdline", 4096, &cmdline, &len) < 0 ||
	    guest_boot_parse_cmdline(cmdline, o) < 0) {
		o->ip[0] = o->gw[0] = '\0';
		log_error("ignoring a malformed ironclaw.* option on the kernel command line");
	}
	free(cmdline);
	if (o->poweroff)
		guest_boot_poweroff();

	log_debug("boot: mounts done at %llu ms", (unsigned long long)guest_now_ms());
	guest_boot_modules();
	log_debug("boot: modules loaded at %llu ms", (unsigned long long)guest_now_ms());
	if (sethostname(GUEST_HOSTNAME, strlen(GUEST_HOSTNAME)) < 0)
		log_error("sethostname: %s", strerror(errno));
	guest_boot_loopback();
	/* Before the root switch: it uses the initramfs's busybox ip. */
	guest_boot_network(o);
	if (o->root)
		guest_boot_root(o);
}
