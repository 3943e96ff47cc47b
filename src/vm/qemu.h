/* The QEMU microvm command line: one place that knows QEMU's flags. */
#ifndef IRONCLAW_VM_QEMU_H
#define IRONCLAW_VM_QEMU_H

#include <stddef.h>

#include "core/err.h"
#include "vm/accel.h"
#include "vm/backend.h"

#define QEMU_BINARY "/usr/bin/qemu-system-x86_64"
#define QEMU_ARGV_MAX 64

struct qemu_spec {
	enum vm_accel accel;
	unsigned cpus;
	unsigned memory_mib;
	const char *kernel;
	const char *initrd;
	const char *cmdline_extra;  /* may be NULL */
	const char *console_path;   /* serial console log file */
	const char *channel_path;   /* Unix socket for the virtio-serial port */
	const char *qmp_path;       /* Unix socket for QMP */
	int tap_fd;                 /* >= 0: a tap device for virtio-net */
	const char *root_path;      /* read-only virtio-blk root image, or NULL */
	const char *scratch_path;   /* writable virtio-blk scratch disk, or NULL */
};

/* Fills argv (NULL-terminated) with pointers into storage (strings built there).
 * Returns 0 or -E2BIG if storage is too small. */
int qemu_build_argv(const struct qemu_spec *s, char **argv, char *storage, size_t storage_len);

/* The QEMU backend's launch plan for one VM (also used by the KVM probe):
 * command line, binds into the jail, limits. */
int qemu_plan_launch(const struct vm_backend_spec *spec, struct vm_launch_plan *plan,
		     struct err *e);

#endif
