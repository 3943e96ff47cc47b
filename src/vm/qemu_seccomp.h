/* QEMU's seccomp policy (qemu_seccomp.c) and the host files QEMU needs in its
 * jail besides its binary and libraries (qemu_root.c). The jail takes both as
 * parameters; this is where the QEMU-specific knowledge lives. */
#ifndef IRONCLAW_VM_QEMU_SECCOMP_H
#define IRONCLAW_VM_QEMU_SECCOMP_H

#include <stddef.h>

#include "jail/jail.h"

/* The policy for QEMU with KVM (kvm != 0) or TCG. Static, borrowed; safe from
 * any thread. */
const struct jail_seccomp_policy *qemu_seccomp_policy(int kvm);

/* At most this many firmware/module binds. */
#define QEMU_FIRMWARE_BINDS_MAX 3
/* Fills out[] with read-only binds of QEMU's TCG accelerator module and its
 * firmware directories, those that exist on this host, at their own paths.
 * Returns how many. */
size_t qemu_firmware_binds(struct jail_bind out[QEMU_FIRMWARE_BINDS_MAX]);

#endif
