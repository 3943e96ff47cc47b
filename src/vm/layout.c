/* In-jail layout of a VM: see layout.h. Only /run/vm is writable: it holds the
 * sockets and the console log the host reads from outside. */
#include "vm/layout.h"

void vm_layout_apply(struct qemu_spec *spec, struct jail_bind binds[VM_LAYOUT_BINDS],
		     const char *kernel, const char *initrd, const char *vm_dir)
{
	spec->kernel = "/vm/kernel";
	spec->initrd = "/vm/initramfs.cpio";
	spec->console_path = "/run/vm/console.log";
	spec->channel_path = "/run/vm/channel.sock";
	spec->qmp_path = "/run/vm/qmp.sock";
	binds[0] = (struct jail_bind){ kernel, "/vm/kernel", 0 };
	binds[1] = (struct jail_bind){ initrd, "/vm/initramfs.cpio", 0 };
	binds[2] = (struct jail_bind){ vm_dir, "/run/vm", 1 };
}
