/* The host-wide jail services the CLI needs, behind vm/ so that nothing above
 * vm/ includes jail/: gc of gone VMs, `--net` parsing, the VMM's seccomp
 * policy and its measured size for `inspect`. */
#include "vm/vm.h"

#include "vm/qemu_seccomp.h"

int vm_gc(struct err *e)
{
	return jail_gc(e);
}

int vm_net_parse_allow(const char *spec, size_t len, struct jail_net_allow *out, size_t max, size_t *n,
		       struct err *e)
{
	return jail_net_parse_allow(spec, len, out, max, n, e);
}

const struct jail_seccomp_policy *vm_seccomp_policy(int kvm)
{
	return qemu_seccomp_policy(kvm);
}

int vm_seccomp_count(const struct jail_seccomp_policy *p, struct jail_seccomp_count *out, struct err *e)
{
	return jail_seccomp_count(p, out, e);
}
