/* The VMM's seccomp allowlist, as data, and the compiled filter.
 *
 * The policy is one table (seccomp_policy.c) with a reason per entry; this
 * header exposes it for the jail (which loads it last, just before execve) and
 * for `ironclaw inspect seccomp` (which prints it and counts it against
 * libseccomp's own syscall table for the architecture). */
#ifndef IRONCLAW_JAIL_SECCOMP_H
#define IRONCLAW_JAIL_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Which VMM variant an entry serves. */
#define SECPOL_TCG 0x1u   /* QEMU with TCG (this machine kind) */
#define SECPOL_KVM 0x2u   /* QEMU with KVM */
#define SECPOL_ALL (SECPOL_TCG | SECPOL_KVM)

enum secpol_action {
	SECPOL_ALLOW,         /* allowed, any arguments */
	SECPOL_ALLOW_ARG_EQ,  /* allowed only when (arg[arg] & mask) == value */
	SECPOL_ERRNO,         /* fails with errno `value` (probes whose fallback we want) */
};

struct secpol_entry {
	const char *name;        /* libseccomp name */
	unsigned variants;       /* SECPOL_* */
	enum secpol_action action;
	unsigned arg;            /* argument index for SECPOL_ALLOW_ARG_EQ */
	uint64_t mask, value;    /* for SECPOL_ALLOW_ARG_EQ; value = errno for SECPOL_ERRNO */
	const char *value_name;  /* the constant, for printing */
	const char *why;
};

/* The table (borrowed, static). */
const struct secpol_entry *secpol_table(size_t *n);

/* A compiled classic-BPF program, built in the parent so that the jailed child
 * only needs prctl() (no allocation after fork). Owned; free with
 * secpol_program_free(). */
struct secpol_program {
	void *filter;        /* struct sock_filter[] */
	unsigned short len;  /* instructions */
};

/* Builds the filter for `variants` (SECPOL_TCG or SECPOL_KVM): default action
 * kill the process, foreign architectures (and, through libseccomp's x86_64
 * handling, the x32 ABI) kill the process too. */
int secpol_compile(unsigned variants, struct secpol_program *p, struct err *e);
void secpol_program_free(struct secpol_program *p);

struct secpol_count {
	unsigned allowed;      /* distinct syscalls allowed (with or without arg checks) */
	unsigned conditional;  /* of which allowed only with an argument check */
	unsigned errno_only;   /* distinct syscalls answered with an errno, never run */
	unsigned arch_total;   /* syscalls libseccomp knows for x86_64 */
};

/* Measures the policy for `variants` against libseccomp's x86_64 table. */
int secpol_count(unsigned variants, struct secpol_count *out, struct err *e);

/* Name of syscall nr of the ABI given by an AUDIT_ARCH_* value (0 = x86_64);
 * x32 numbers (bit 30) are named as x32. Static string, or NULL. */
const char *secpol_syscall_name(unsigned long audit_arch, long nr);
/* "x86_64", "x32", "i386" or "foreign". */
const char *secpol_arch_name(unsigned long audit_arch, long nr);

#endif
