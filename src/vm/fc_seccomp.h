/* Firecracker's process-wide seccomp policy (fc_seccomp.c). The jail loads it
 * before it execs Firecracker; Firecracker's own per-thread filters (its
 * built-in ones, or a compiled filter passed with --seccomp-filter) then stack
 * on top, so a syscall runs only when both allow it. Never --no-seccomp. */
#ifndef IRONCLAW_VM_FC_SECCOMP_H
#define IRONCLAW_VM_FC_SECCOMP_H

#include "jail/jail.h"

/* Static, borrowed; safe from any thread. */
const struct jail_seccomp_policy *fc_seccomp_policy(void);
/* The same policy plus what Firecracker's jailer does before it execs
 * Firecracker (the filter is loaded before the jailer runs and stays). */
const struct jail_seccomp_policy *fc_seccomp_jailer_policy(void);

#endif
