/* `ironclaw gc`: removes what VMs that are gone left behind (network
 * namespaces, veths, nft tables, cgroups, /run/ironclaw directories). Safe to
 * run any time: VMs whose ironclaw or VMM still runs are left alone. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "vm/vm.h"

int cmd_gc(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: ironclaw gc\n\nRemoves the leftovers of VMs that are no longer running.\n");
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "ironclaw gc: takes no arguments (hint: ironclaw gc)\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "ironclaw gc: needs root (network namespaces and cgroups are root's)\n");
		return 1;
	}
	struct err e = { 0 };
	int n = vm_gc(&e);
	if (n < 0) {
		fprintf(stderr, "ironclaw gc: %s\n", e.msg);
		return 1;
	}
	printf("cleaned up %d VM%s\n", n, n == 1 ? "" : "s");
	return 0;
}
