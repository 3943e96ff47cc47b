/* How a VM's files appear inside its VMM's jail. The QEMU command line names
 * paths as the jailed VMM sees them and the jail binds the host files there;
 * this is the one place where the two agree. */
#ifndef IRONCLAW_VM_LAYOUT_H
#define IRONCLAW_VM_LAYOUT_H

#include "jail/jail.h"
#include "vm/qemu.h"

#define VM_LAYOUT_BINDS 3

/* Points the spec's kernel, initrd, console, channel and QMP paths into the
 * jail and fills binds (borrowing kernel, initrd and vm_dir: the host's
 * kernel, initramfs and per-VM directory). */
void vm_layout_apply(struct qemu_spec *spec, struct jail_bind binds[VM_LAYOUT_BINDS],
		     const char *kernel, const char *initrd, const char *vm_dir);

#endif
