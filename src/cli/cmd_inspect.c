/* `ironclaw inspect seccomp`: prints the VMM's seccomp policy, one line per
 * rule with its reason, and the measured count: syscalls allowed out of the
 * total libseccomp knows for x86_64 (counted from its table, not written down). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "vm/vm.h"

static void inspect_usage(FILE *f)
{
	fprintf(f, "usage: ironclaw inspect seccomp [--kvm] [--count]\n\n"
		   "Prints the seccomp allowlist the VMM runs under and how many syscalls it allows.\n"
		   "  --kvm     the QEMU-with-KVM variant (default: QEMU with TCG)\n"
		   "  --count   only the count line\n");
}

static const char *inspect_action(const struct jail_seccomp_rule *en, char *buf, size_t len)
{
	switch (en->action) {
	case JAIL_SECCOMP_ALLOW:
		return "allow";
	case JAIL_SECCOMP_ALLOW_ARG_EQ:
		snprintf(buf, len, "allow if arg%u == %s", en->arg, en->value_name);
		return buf;
	case JAIL_SECCOMP_ERRNO:
		snprintf(buf, len, "fail with %s", en->value_name);
		return buf;
	}
	return "?";
}

int cmd_inspect(int argc, char **argv)
{
	int kvm = 0;
	int count_only = 0;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		inspect_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "seccomp")) {
		fprintf(stderr, "ironclaw inspect: unknown topic '%s' (hint: ironclaw inspect seccomp)\n", argv[1]);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--kvm"))
			kvm = 1;
		else if (!strcmp(argv[i], "--count"))
			count_only = 1;
		else {
			fprintf(stderr, "ironclaw inspect seccomp: unknown option '%s' (hint: --kvm, --count)\n", argv[i]);
			return 2;
		}
	}
	const struct jail_seccomp_policy *pol = vm_seccomp_policy(kvm);
	struct jail_seccomp_count c;
	struct err e = { 0 };
	if (vm_seccomp_count(pol, &c, &e)) {
		fprintf(stderr, "ironclaw inspect: %s\n", e.msg);
		return 1;
	}
	if (!count_only) {
		const struct jail_seccomp_rule *t = pol->rules;
		printf("# VMM seccomp policy (%s); default action: kill the process;\n"
		       "# other architectures and the x32 ABI: kill the process\n",
		       pol->name);
		for (size_t i = 0; i < pol->n_rules; i++) {
			char buf[96];
			printf("%-18s %-40s %s\n", t[i].name, inspect_action(&t[i], buf, sizeof(buf)), t[i].why);
		}
	}
	printf("allowed %u of %u x86_64 syscalls (%u only with argument checks; %u more answered with an errno, never run)\n",
	       c.allowed, c.arch_total, c.conditional, c.errno_only);
	return 0;
}
