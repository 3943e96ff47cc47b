/* The jail's minimal root: what to bind, planned in the parent.
 *
 * The list is: the VMM binary at its own path, the shared libraries the
 * dynamic loader resolves for it (asked from the loader itself with --list, the
 * way ldd does), for QEMU its TCG accelerator module and firmware directories,
 * the caller's binds (kernel, initramfs, the VM directory), /dev/null,
 * /dev/urandom, and /dev/kvm only with KVM. Everything is read-only except
 * binds the caller marks writable. Found by experiment: strace -f -e trace=file
 * of the real boot (see seccomp_policy.c) lists exactly these opens. */
#include "jail/rootfs.h"

#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jail/jail_internal.h"

#define ROOTFS_LOADER "/lib64/ld-linux-x86-64.so.2"

static int rootfs_add(struct rootfs_plan *p, const char *src, const char *dst, int writable, struct err *e)
{
	if (p->n >= ROOTFS_MAX_MOUNTS)
		return err_set(e, -E2BIG, "jail root: more than %d mounts", ROOTFS_MAX_MOUNTS);
	if (!dst || dst[0] != '/' || strstr(dst, "/../") || strstr(dst, "/./") ||
	    (strlen(dst) >= 3 && !strcmp(dst + strlen(dst) - 3, "/..")))
		return err_set(e, -EINVAL, "jail path '%s' must be absolute and without '.' or '..'", dst ? dst : "");
	struct stat st;
	if (stat(src, &st))
		return err_set(e, -errno, "bind source %s: %s", src, strerror(errno));
	struct rootfs_mount *m = &p->m[p->n];
	if (snprintf(m->src, sizeof(m->src), "%s", src) >= (int)sizeof(m->src) ||
	    snprintf(m->dst, sizeof(m->dst), "%s", dst) >= (int)sizeof(m->dst))
		return err_set(e, -ENAMETOOLONG, "bind path too long: %s", src);
	m->is_dir = S_ISDIR(st.st_mode);
	m->writable = writable;
	p->n++;
	return 0;
}

/* 1 when bin is an ELF with a PT_INTERP header, i.e. dynamically linked (the
 * loader's --list crashes on a static binary instead of saying so). */
static int rootfs_is_dynamic(const char *bin)
{
	int dyn = 0;
	FILE *f = fopen(bin, "rbe");
	if (!f)
		return 0;
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof(eh), 1, f) == 1 && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 128) {
		for (unsigned i = 0; i < eh.e_phnum && !dyn; i++) {
			Elf64_Phdr ph;
			if (fseek(f, (long)(eh.e_phoff + i * sizeof(ph)), SEEK_SET) || fread(&ph, sizeof(ph), 1, f) != 1)
				break;
			dyn = ph.p_type == PT_INTERP;
		}
	}
	fclose(f);
	return dyn;
}

/* Asks the loader which libraries bin needs (lines "name => /path (0x...)" and
 * "/lib64/ld-linux-x86-64.so.2 (0x...)"). A static binary has none. */
static int rootfs_add_libs(struct rootfs_plan *p, const char *bin, struct err *e)
{
	char out[16384];
	char *argv[] = { (char *)ROOTFS_LOADER, (char *)"--list", (char *)bin, NULL };
	if (access(ROOTFS_LOADER, X_OK) || !rootfs_is_dynamic(bin))
		return 0;
	int rc = jail_run(argv, out, sizeof(out));
	if (rc != 0)
		return 0;   /* "not a dynamic executable" */
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *path = strstr(line, "=> ");
		path = path ? path + 3 : line;
		while (*path == ' ' || *path == '\t')
			path++;
		if (path[0] != '/')
			continue;   /* linux-vdso.so.1 */
		char *end = strstr(path, " (");
		if (end)
			*end = 0;
		if ((rc = rootfs_add(p, path, path, 0, e)))
			return err_wrap(e, "libraries of %s", bin);
	}
	return 0;
}

int rootfs_plan_build(struct rootfs_plan *p, const char *vmm, const struct jail_bind *binds, size_t n_binds,
		      int use_kvm, struct err *e)
{
	memset(p, 0, sizeof(*p));
	int rc;
	if (!vmm || vmm[0] != '/')
		return err_set(e, -EINVAL, "VMM path '%s' must be absolute", vmm ? vmm : "");
	if ((rc = rootfs_add(p, vmm, vmm, 0, e)) || (rc = rootfs_add_libs(p, vmm, e)))
		return rc;
	const char *base = strrchr(vmm, '/') + 1;
	if (!strncmp(base, "qemu-system-", 12)) {
		/* The TCG accelerator is a loadable module in Debian's QEMU; the
		 * firmware (bios-microvm.bin, linuxboot_dma.bin) lives in
		 * /usr/share/qemu, partly as links into /usr/share/seabios. */
		static const char *const qemu_extra[] = {
			"/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
			"/usr/share/qemu",
			"/usr/share/seabios",
		};
		for (size_t i = 0; i < sizeof(qemu_extra) / sizeof(qemu_extra[0]); i++)
			if (access(qemu_extra[i], F_OK) == 0 && (rc = rootfs_add(p, qemu_extra[i], qemu_extra[i], 0, e)))
				return rc;
	}
	if (n_binds > JAIL_BINDS_MAX)
		return err_set(e, -E2BIG, "%zu binds: at most %d", n_binds, JAIL_BINDS_MAX);
	for (size_t i = 0; i < n_binds; i++)
		if ((rc = rootfs_add(p, binds[i].host_path, binds[i].jail_path, binds[i].writable, e)))
			return rc;
	if ((rc = rootfs_add(p, "/dev/null", "/dev/null", 1, e)) ||
	    (rc = rootfs_add(p, "/dev/urandom", "/dev/urandom", 0, e)))
		return rc;
	if (use_kvm) {
		struct stat st;
		if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode))
			return err_set(e, -ENODEV, "KVM requested, but /dev/kvm is not a character device here (hint: use TCG)");
		p->kvm = 1;
		p->kvm_rdev = st.st_rdev;
	}
	return 0;
}
