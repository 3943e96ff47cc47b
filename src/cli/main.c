/* ironclaw: entry point. Dispatches to one file per subcommand. */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

/* Add a subcommand here and in commands.h. */
static const struct cli_command cli_commands[] = {
	{ "exec", "boot a fresh micro-VM, run one command in it, destroy it", cmd_exec },
	{ "doctor", "explain this host: accelerator, QEMU, image, nft, seccomp, cgroups", cmd_doctor },
	{ "mcp", "talk to an MCP server: list and call tools, read resources, get prompts", cmd_mcp },
	{ "inspect", "show security policy: `inspect seccomp` prints the VMM's filter and its count", cmd_inspect },
	{ "audit", "show recorded security events (seccomp kills of a VMM)", cmd_audit },
	{ "gc", "remove leftovers (netns, veth, nft, cgroups, dirs) of VMs that are gone", cmd_gc },
};

static void cli_usage(FILE *f)
{
	fprintf(f, "usage: ironclaw <command> [options]\n\n"
		   "Run AI agents' actions in throwaway micro-VMs.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++)
		fprintf(f, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
	fprintf(f, "\nRun `ironclaw <command> --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		cli_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++)
		if (!strcmp(argv[1], cli_commands[i].name))
			return cli_commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "ironclaw: unknown command '%s' (hint: run `ironclaw --help` for the list)\n",
		argv[1]);
	return 2;
}
