/* Which accelerator QEMU should use: KVM only when it can really run our guest.
 *
 * /dev/kvm existing proves little: on nested, paravirtual hosts it opens fine and
 * then fails with "emulation failure" before a stock kernel reaches userspace. So
 * the probe boots the real guest kernel and initramfs under KVM with
 * `ironclaw.poweroff=1` (init powers off at once), through the same launcher and
 * jail as every VM, and accepts KVM only if that completes cleanly. The verdict
 * is cached (keyed by QEMU binary, kernel and initramfs identity) so the probe's
 * cost is paid once; while a probe runs, later askers wait for the same one. The
 * probe uses the default image when one is installed, whatever image the VM will
 * boot. */
#ifndef IRONCLAW_VM_ACCEL_H
#define IRONCLAW_VM_ACCEL_H

#include <stddef.h>
#include <uv.h>

#include "vm/backend.h"

/* Never fails: any doubt means TCG. IRONCLAW_ACCEL=tcg|kvm overrides (kvm still
 * requires /dev/kvm to open). done runs exactly once, possibly before this
 * returns (cached or overridden verdicts). All callers must share one loop. */
void vm_accel_probe(uv_loop_t *loop, const char *qemu, const char *kernel, const char *initrd,
		    vm_probe_cb done, void *ctx);
/* The same for callers without a loop (doctor, bench): runs a private loop. */
void vm_accel_detect(const char *qemu, const char *kernel, const char *initrd,
		     struct vm_accel_verdict *v);

/* Host TSC frequency in kHz (0 if unknown): TCG guests calibrate against it and
 * can hang on a busy host without `tsc_early_khz=`. */
unsigned long vm_host_tsc_khz(void);

#endif
