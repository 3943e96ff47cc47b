/* Booting from an image disk (ironclaw.root=1 on the kernel command line):
 * the image is a read-only virtio-blk disk (serial "ironclaw-root"); it is
 * mounted read-only as the lower layer of an overlay whose upper layer is
 * throwaway: a tmpfs (bounded by the VM's memory: half of it, tmpfs's
 * default) or, with ironclaw.scratch=1, the scratch disk (serial
 * "ironclaw-scratch"), formatted here with busybox mke2fs. The overlay becomes
 * the root, and this process (PID 1, from the initramfs) keeps serving the
 * host: nothing of the image runs before the first command.
 *
 * Disks are found by serial, not by name: virtio-mmio probe order is not a
 * promise. Every failure is fatal and said on the console, which the host
 * quotes in its error: a VM that cannot mount its root powers off at once
 * instead of leaving the host to time out. */
#include "guest/guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"

#define ROOT_BASE "/mnt/ironclaw"
#define ROOT_LOWER ROOT_BASE "/lower"
#define ROOT_RW ROOT_BASE "/rw"
#define ROOT_NEW ROOT_BASE "/root"
#define ROOT_OVERLAY_KO ROOT_LOWER "/usr/lib/ironclaw/overlay.ko"
/* virtio_blk adds its disks while it loads; the wait only covers a slow
 * devtmpfs node. */
#define ROOT_DISK_WAIT_MS 3000

static void __attribute__((noreturn)) root_fail(const char *what, int err)
{
	log_error("cannot boot from the image: %s: %s (hint: check the image with `ironclaw image inspect`; rebuild it if it is damaged)",
		  what, strerror(err));
	guest_boot_poweroff();
}

/* /dev/vdX whose virtio serial is `serial`, in dev. */
static int root_find_disk(const char *serial, char *dev, size_t n)
{
	for (int waited = 0; waited <= ROOT_DISK_WAIT_MS; waited += 10) {
		DIR *d = opendir("/sys/block");
		struct dirent *de;
		int found = 0;
		while (d && !found && (de = readdir(d))) {
			char path[300], *text = NULL;
			size_t len = 0;
			if (strncmp(de->d_name, "vd", 2))
				continue;
			snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
			if (io_read_file(path, 64, &text, &len) == 0) {
				while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
					text[--len] = '\0';
				if (!strcmp(text, serial)) {
					snprintf(dev, n, "/dev/%.32s", de->d_name);
					found = access(dev, F_OK) == 0;
				}
			}
			free(text);
		}
		if (d)
			closedir(d);
		if (found)
			return 0;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return -ENODEV;
}

static int root_run(char *const argv[])
{
	int status;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static void root_move(const char *from)
{
	char to[128];
	snprintf(to, sizeof(to), ROOT_NEW "%s", from);
	mkdir(to, 0755);
	if (mount(from, to, NULL, MS_MOVE, NULL) < 0)
		log_error("moving %s into the image root: %s", from, strerror(errno));
}

void guest_boot_root(const struct guest_boot_opts *o)
{
	char root_dev[64], scratch_dev[64];
	int fd;
	if (root_find_disk("ironclaw-root", root_dev, sizeof(root_dev)) < 0)
		root_fail("no disk with serial ironclaw-root", ENODEV);
	mkdir("/mnt", 0755);
	mkdir(ROOT_BASE, 0755);
	mkdir(ROOT_LOWER, 0755);
	mkdir(ROOT_RW, 0755);
	mkdir(ROOT_NEW, 0755);
	/* noload: a read-only disk cannot replay a journal, and a packed image
	 * has nothing to replay. */
	if (mount(root_dev, ROOT_LOWER, "ext4", MS_RDONLY | MS_NODEV, "noload") < 0)
		root_fail("mounting the image read-only", errno);
	fd = open(ROOT_OVERLAY_KO, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		root_fail("the image has no " "/usr/lib/ironclaw/overlay.ko", errno);
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
		root_fail("loading overlay.ko from the image (built for another kernel?)", errno);
	close(fd);
	if (o->scratch) {
		if (root_find_disk("ironclaw-scratch", scratch_dev, sizeof(scratch_dev)) < 0)
			root_fail("no disk with serial ironclaw-scratch", ENODEV);
		char *mkfs[] = { "/bin/mke2fs", "-q", "-m", "0", scratch_dev, NULL };
		int rc = root_run(mkfs);
		if (rc < 0)
			root_fail("formatting the scratch disk", -rc);
		if (mount(scratch_dev, ROOT_RW, "ext4", MS_NODEV, NULL) < 0)
			root_fail("mounting the scratch disk", errno);
	} else if (mount("tmpfs", ROOT_RW, "tmpfs", MS_NODEV, "mode=0755") < 0) {
		root_fail("mounting the tmpfs upper layer", errno);
	}
	mkdir(ROOT_RW "/upper", 0755);
	mkdir(ROOT_RW "/work", 0755);
	if (mount("overlay", ROOT_NEW, "overlay", 0,
		  "lowerdir=" ROOT_LOWER ",upperdir=" ROOT_RW "/upper,workdir=" ROOT_RW "/work") < 0)
		root_fail("mounting the overlay", errno);
	root_move("/dev");
	root_move("/proc");
	root_move("/sys");
	root_move("/run");
	root_move("/tmp");
	/* switch_root's move: the overlay becomes /, the initramfs stays below. */
	if (chdir(ROOT_NEW) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		root_fail("switching root", errno);
	log_debug("boot: root switched to %s at %llu ms", root_dev, (unsigned long long)guest_now_ms());
}
