/* Which backend a VM gets: `--backend qemu|firecracker|auto` (see vm.h).
 *
 * auto picks Firecracker only when both hold: a firecracker binary is
 * configured or on PATH, and KVM really runs our guest here (the same cached
 * probe boot QEMU's accelerator choice uses, vm/accel.h). Anything else is
 * QEMU, with the reason in words for `doctor` and --progress. An explicit
 * choice is taken as given: Firecracker is then tried even where the KVM
 * probe failed (its backend warns), so the real failure is what is reported. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "vm/fc_backend.h"
#include "vm/qemu.h"
#include "vm/vm.h"

int vm_backend_parse(const char *s, enum vm_backend_choice *out, struct err *e)
{
	if (!strcmp(s, "qemu"))
		*out = VM_BACKEND_QEMU;
	else if (!strcmp(s, "firecracker"))
		*out = VM_BACKEND_FIRECRACKER;
	else if (!strcmp(s, "auto"))
		*out = VM_BACKEND_AUTO;
	else
		return err_set(e, -EINVAL, "unknown backend '%.64s' (use qemu, firecracker or auto)", s);
	return 0;
}

const struct vm_backend_ops *vm_backend_choose(enum vm_backend_choice c, char *why, size_t n)
{
	char bin[PATH_MAX];
	int have = fc_binary_find(bin, sizeof(bin)) == 0;
	if (c == VM_BACKEND_QEMU) {
		snprintf(why, n, "asked for (--backend qemu)");
		return &vm_backend_qemu;
	}
	if (c == VM_BACKEND_FIRECRACKER) {
		snprintf(why, n, "asked for (--backend firecracker)%s%s", have ? "; binary " : "; no binary found",
			 have ? bin : "");
		return &vm_backend_firecracker;
	}
	if (!have) {
		snprintf(why, n, "auto: no firecracker binary on PATH or in IRONCLAW_FIRECRACKER");
		return &vm_backend_qemu;
	}
	struct vm_image img;
	struct err e = { 0 };
	if (vm_image_find(&img, &e) < 0) {
		snprintf(why, n, "auto: firecracker at %.200s, but no guest image to probe KVM with (%.200s)", bin,
			 e.msg);
		return &vm_backend_qemu;
	}
	struct vm_accel_verdict v;
	vm_accel_detect(QEMU_BINARY, img.kernel, img.initrd, &v);
	if (v.accel != VM_ACCEL_KVM) {
		snprintf(why, n, "auto: firecracker at %.200s, but KVM does not run guests here (%.200s)", bin,
			 v.reason);
		return &vm_backend_qemu;
	}
	snprintf(why, n, "auto: firecracker at %.200s and KVM runs guests (%.200s)", bin, v.reason);
	return &vm_backend_firecracker;
}
