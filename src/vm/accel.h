/* Which accelerator QEMU should use: KVM only when it can really run our guest.
 *
 * /dev/kvm existing proves little: on nested, paravirtual hosts it opens fine and
 * then fails with "emulation failure" before a stock kernel reaches userspace. So
 * the probe boots the real guest kernel and initramfs under KVM with
 * `ironclaw.poweroff=1` (init powers off at once) and accepts KVM only if that
 * completes cleanly. The verdict is cached (keyed by QEMU binary, kernel and
 * initramfs identity) so the probe's cost is paid once. The probe uses the
 * default image when one is installed, whatever image the VM will boot. */
#ifndef IRONCLAW_VM_ACCEL_H
#define IRONCLAW_VM_ACCEL_H

#include <stddef.h>

enum vm_accel { VM_ACCEL_TCG, VM_ACCEL_KVM };

struct vm_accel_verdict {
	enum vm_accel accel;
	int cached;          /* 1 when read from the cache */
	char reason[256];    /* why, in words, for `ironclaw doctor` */
};

/* Never fails: any doubt means TCG. IRONCLAW_ACCEL=tcg|kvm overrides (kvm still
 * requires /dev/kvm to open). */
void vm_accel_detect(const char *qemu, const char *kernel, const char *initrd,
		     struct vm_accel_verdict *v);
const char *vm_accel_name(enum vm_accel a);

/* Host TSC frequency in kHz (0 if unknown): TCG guests calibrate against it and
 * can hang on a busy host without `tsc_early_khz=`. */
unsigned long vm_host_tsc_khz(void);

#endif
