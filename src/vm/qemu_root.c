/* What QEMU opens besides its binary and shared libraries, as ordinary
 * read-only binds for the jail: the TCG accelerator is a loadable module in
 * Debian's QEMU, and the firmware (bios-microvm.bin, linuxboot_dma.bin) lives
 * in /usr/share/qemu, partly as links into /usr/share/seabios. Found by
 * experiment: strace -f -e trace=file of the real boot lists exactly these. */
#include "vm/qemu_seccomp.h"

#include <unistd.h>

size_t qemu_firmware_binds(struct jail_bind out[QEMU_FIRMWARE_BINDS_MAX])
{
	static const char *const paths[QEMU_FIRMWARE_BINDS_MAX] = {
		"/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
		"/usr/share/qemu",
		"/usr/share/seabios",
	};
	size_t n = 0;
	for (size_t i = 0; i < QEMU_FIRMWARE_BINDS_MAX; i++)
		if (access(paths[i], F_OK) == 0)
			out[n++] = (struct jail_bind){ .host_path = paths[i], .jail_path = paths[i], .writable = 0 };
	return n;
}
