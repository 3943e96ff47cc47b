/* How a VM's files appear inside its VMM's jail. The QEMU command line names
 * paths as the jailed VMM sees them and the jail binds the host files there;
 * this is the one place where the two agree. */
#ifndef IRONCLAW_VM_LAYOUT_H
#define IRONCLAW_VM_LAYOUT_H

#include "jail/jail.h"
#include "vm/qemu.h"

#define VM_LAYOUT_BINDS 3
/* Where an image disk appears in the jail (bound read-only), and the scratch
 * disk (a file in the per-VM directory, which is /run/vm there). */
#define VM_LAYOUT_ROOT_IMAGE "/vm/root.img"
#define VM_LAYOUT_SCRATCH_IMAGE "/run/vm/scratch.img"
#define VM_LAYOUT_SCRATCH_FILE "scratch.img"

/* Points the spec's kernel, initrd, console, channel and QMP paths into the
 * jail and fills binds (borrowing kernel, initrd and vm_dir: the host's
 * kernel, initramfs and per-VM directory). */
void vm_layout_apply(struct qemu_spec *spec, struct jail_bind binds[VM_LAYOUT_BINDS],
		     const char *kernel, const char *initrd, const char *vm_dir);

#endif
