/* Compiling a caller's policy table into a BPF program, and measuring it.
 *
 * The program is built with libseccomp in the parent and exported as raw BPF,
 * so the jailed child installs it with one prctl() and no allocation (the
 * parent may be multi-threaded; the child of a fork must not malloc). */
#include "jail/seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"

#define SECPOL_NR_SCAN 1024   /* x86_64 syscall numbers are below this */

static int secpol_add(scmp_filter_ctx ctx, const struct jail_seccomp_rule *en, struct err *e)
{
	int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, en->name);
	if (nr == __NR_SCMP_ERROR)
		return err_set(e, -EINVAL, "seccomp policy names an unknown syscall '%s'", en->name);
	int rc;
	switch (en->action) {
	case JAIL_SECCOMP_ALLOW:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		break;
	case JAIL_SECCOMP_ALLOW_ARG_EQ:
		if (en->mask == ~0ull)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_CMP(en->arg, SCMP_CMP_EQ, en->value));
		else
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_CMP(en->arg, SCMP_CMP_MASKED_EQ, en->mask, en->value));
		break;
	case JAIL_SECCOMP_ERRNO:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((unsigned)en->value), nr, 0);
		break;
	default:
		rc = -EINVAL;
	}
	if (rc)
		return err_set(e, rc, "adding seccomp rule for %s: %s", en->name, strerror(-rc));
	return 0;
}

int secpol_compile(const struct jail_seccomp_policy *pol, struct secpol_program *p, struct err *e)
{
	memset(p, 0, sizeof(*p));
	int rc = 0, fd = -1;
	if (!pol || !pol->rules || !pol->n_rules)
		return err_set(e, -EINVAL, "jail: no seccomp policy given (the VMM never runs unfiltered)");
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return err_set(e, -ENOMEM, "seccomp_init failed");
	/* seccomp_init adds only the native arch (x86_64): a syscall made through
	 * any other ABI (int 0x80 i386) hits the bad-arch action, and libseccomp's
	 * x86_64 filter sends x32 numbers (bit 30 set) there as well. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS))) {
		err_set(e, rc, "seccomp: setting the bad-arch action: %s", strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < pol->n_rules; i++)
		if ((rc = secpol_add(ctx, &pol->rules[i], e)))
			goto out;
	fd = memfd_create("ironclaw-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		rc = err_set(e, -errno, "seccomp: memfd_create: %s", strerror(errno));
		goto out;
	}
	if ((rc = seccomp_export_bpf(ctx, fd))) {
		err_set(e, rc, "seccomp: exporting the filter: %s", strerror(-rc));
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) || st.st_size <= 0 || st.st_size % 8 || st.st_size / 8 > 0xffff) {
		rc = err_set(e, -EINVAL, "seccomp: exported filter has a bad size");
		goto out;
	}
	p->filter = malloc((size_t)st.st_size);
	if (!p->filter) {
		rc = err_set(e, -ENOMEM, "seccomp: out of memory");
		goto out;
	}
	if (pread(fd, p->filter, (size_t)st.st_size, 0) != st.st_size) {
		rc = err_set(e, -EIO, "seccomp: reading back the filter failed");
		goto out;
	}
	p->len = (unsigned short)(st.st_size / 8);
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	if (rc)
		secpol_program_free(p);
	return rc;
}

void secpol_program_free(struct secpol_program *p)
{
	free(p->filter);
	p->filter = NULL;
	p->len = 0;
}

int jail_seccomp_count(const struct jail_seccomp_policy *pol, struct jail_seccomp_count *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (!pol)
		return err_set(e, -EINVAL, "no seccomp policy");
	size_t n = pol->n_rules;
	const struct jail_seccomp_rule *t = pol->rules;
	for (int nr = 0; nr < SECPOL_NR_SCAN; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
		if (!name)
			continue;
		out->arch_total++;
		int any = 0, uncond = 0, err_only = 0;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(t[i].name, name))
				continue;
			if (t[i].action == JAIL_SECCOMP_ERRNO) {
				err_only = 1;
				continue;
			}
			any = 1;
			if (t[i].action == JAIL_SECCOMP_ALLOW)
				uncond = 1;
		}
		free(name);
		out->allowed += any;
		out->conditional += any && !uncond;
		out->errno_only += err_only && !any;
	}
	if (!out->arch_total)
		return err_set(e, -ENOSYS, "libseccomp knows no x86_64 syscalls");
	return 0;
}

#define SECPOL_X32_BIT 0x40000000L

const char *secpol_arch_name(unsigned long audit_arch, long nr)
{
	if (audit_arch == 0 || audit_arch == AUDIT_ARCH_X86_64)
		return nr & SECPOL_X32_BIT ? "x32" : "x86_64";
	if (audit_arch == AUDIT_ARCH_I386)
		return "i386";
	return "foreign";
}

int secpol_syscall_name(unsigned long audit_arch, long nr, char *out, size_t len)
{
	uint32_t arch = SCMP_ARCH_X86_64;
	const char *abi = secpol_arch_name(audit_arch, nr);
	if (len)
		out[0] = '\0';
	if (!strcmp(abi, "x32"))
		arch = SCMP_ARCH_X32;
	else if (!strcmp(abi, "i386"))
		arch = SCMP_ARCH_X86;
	else if (strcmp(abi, "x86_64"))
		return -ENOENT;
	if (nr < 0)
		return -ENOENT;
	/* libseccomp returns an allocated copy. */
	char *name = seccomp_syscall_resolve_num_arch(arch, (int)nr);
	if (!name)
		return -ENOENT;
	snprintf(out, len, "%s", name);
	free(name);
	return 0;
}
