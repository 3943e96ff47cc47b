/* The Firecracker backend's entry points besides its ops table
 * (vm_backend_firecracker, backend.h): finding the binary and the pure part
 * of planning its launch, for backend selection and tests. */
#ifndef IRONCLAW_VM_FC_BACKEND_H
#define IRONCLAW_VM_FC_BACKEND_H

#include <stddef.h>

#include "vm/backend.h"

/* $IRONCLAW_FIRECRACKER when set (it must be executable), else `firecracker`
 * on PATH. 0 with the path in out, or -errno. */
int fc_binary_find(char *out, size_t n);

/* The jailed launch: argv (never --no-seccomp; `--seccomp-filter` with filter,
 * a host path bound read-only, when filter is set), binds, our seccomp
 * policy, KVM, limits. */
int fc_plan_launch(const struct vm_backend_spec *spec, const char *filter, struct vm_launch_plan *plan,
		   struct err *e);

#endif
