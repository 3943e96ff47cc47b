/* Compiling a caller's seccomp policy (struct jail_seccomp_policy, jail.h)
 * into a classic-BPF program, and naming syscalls for reports.
 *
 * The program is built in the parent so that the jailed child only needs
 * prctl() (no allocation after clone). */
#ifndef IRONCLAW_JAIL_SECCOMP_H
#define IRONCLAW_JAIL_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "jail/jail.h"

/* A compiled program. Owned; free with secpol_program_free(). */
struct secpol_program {
	void *filter;        /* struct sock_filter[] */
	unsigned short len;  /* instructions */
};

/* Default action kill the process; foreign architectures (and, through
 * libseccomp's x86_64 handling, the x32 ABI) kill the process too. */
int secpol_compile(const struct jail_seccomp_policy *pol, struct secpol_program *p, struct err *e);
void secpol_program_free(struct secpol_program *p);

/* Name of syscall nr of the ABI given by an AUDIT_ARCH_* value (0 = x86_64);
 * x32 numbers (bit 30) are named as x32. Writes "" and returns -ENOENT when
 * unknown. Thread-safe (no static buffer). */
int secpol_syscall_name(unsigned long audit_arch, long nr, char *out, size_t len);
/* "x86_64", "x32", "i386" or "foreign". */
const char *secpol_arch_name(unsigned long audit_arch, long nr);

#endif
