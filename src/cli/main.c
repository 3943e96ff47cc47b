/* ironclaw: entry point. Finds the command word, wherever the options around it
 * are, and dispatches to one file per subcommand. Global options (-h/--help,
 * -v/--version) may come anywhere before the command word; a command's own
 * options may come before or after it (see cli_find_command in commands.h). */
#include "cli/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Add a subcommand here and in commands.h. */
static const struct cli_command cli_commands[] = {
	{ "run", "hand a task to a model: its actions run in a fresh micro-VM, changes need your approval",
	  cmd_run, cmd_run_options, cmd_run_shortopts },
	{ "exec", "boot a fresh micro-VM, run one command in it, destroy it", cmd_exec,
	  cmd_exec_options, cmd_exec_shortopts },
	{ "doctor", "explain this host: accelerator, QEMU, image, nft, seccomp, cgroups", cmd_doctor,
	  NULL, NULL },
	{ "mcp", "talk to an MCP server: list and call tools, read resources, get prompts", cmd_mcp,
	  NULL, NULL },
	{ "inspect", "show security policy: `inspect seccomp` prints the VMM's filter and its count",
	  cmd_inspect, NULL, NULL },
	{ "audit", "show recorded security events (seccomp kills of a VMM)", cmd_audit, NULL, NULL },
	{ "runs", "list past agent runs; `runs show ID` (--format atif) prints one", cmd_runs,
	  cmd_runs_options, cmd_runs_shortopts },
	{ "gc", "remove leftovers (netns, veth, nft, cgroups, dirs) of VMs that are gone", cmd_gc,
	  NULL, NULL },
	{ "image", "build, import, list and remove guest images (Debian userlands for --image)", cmd_image, NULL, NULL },
	{ "serve", "run the daemon: sandboxes over an HTTP API on a Unix socket", cmd_serve, cmd_serve_options, cmd_serve_shortopts },
	{ "sandbox", "drive the daemon's sandboxes: create, ls, exec, cp, rm", cmd_sandbox, NULL, NULL },
	{ "undo", "put back the workspace files an applied run changed", cmd_undo, NULL, NULL },
	{ "snapshot", "VM templates that exec restores instead of booting: create, ls, rm, prune", cmd_snapshot, NULL, NULL },
};
#define CLI_N_COMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

static void cli_usage(FILE *f)
{
	fprintf(f, "usage: ironclaw [-h | --help] [-v | --version] <command> [options] [-- ARGS...]\n\n"
		   "Run AI agents' actions in throwaway micro-VMs.\n\ncommands:\n");
	for (size_t i = 0; i < CLI_N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
	fprintf(f, "\nA command's options may come before or after its name\n"
		   "(`ironclaw --timeout 5 exec -- CMD` is `ironclaw exec --timeout 5 -- CMD`).\n"
		   "Run `ironclaw <command> --help` (or `ironclaw help <command>`) for its options.\n");
}

static int cli_version(void)
{
	printf("ironclaw %s\n", IRONCLAW_VERSION);
	return 0;
}

/* No command word could be found: answer what the words before "--" ask for,
 * or say what is wrong with them. */
static int cli_no_command(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cli_usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--version"))
			return cli_version();
	}
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		for (size_t k = 0; k < CLI_N_COMMANDS; k++) {
			if (strcmp(argv[i], cli_commands[k].name))
				continue;
			fprintf(stderr, "ironclaw: the options before '%s' are not all options of "
				"`ironclaw %s` (hint: see `ironclaw %s --help`)\n",
				argv[i], argv[i], argv[i]);
			return 2;
		}
	}
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (argv[i][0] != '-') {
			fprintf(stderr, "ironclaw: unknown command '%s' (hint: run `ironclaw --help` "
				"for the list)\n", argv[i]);
			return 2;
		}
	}
	fprintf(stderr, "ironclaw: no command given (hint: run `ironclaw --help` for the list)\n");
	return 2;
}

int main(int argc, char **argv)
{
	static char help_opt[] = "--help";
	if (argc < 2) {
		cli_usage(stderr);
		return 2;
	}
	/* `ironclaw help exec` is `ironclaw exec --help`. */
	if (!strcmp(argv[1], "help")) {
		if (argc == 2) {
			cli_usage(stdout);
			return 0;
		}
		argv[1] = argv[2];
		argv[2] = help_opt;
	}
	int at = 0;
	int k = cli_find_command(argc, argv, cli_commands, CLI_N_COMMANDS, &at);
	if (k < 0)
		return cli_no_command(argc, argv);
	for (int i = 1; i < at; i++)
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--version"))
			return cli_version();
	/* The command's argv: its name, the options that came before it, the rest. */
	char **cargv = calloc((size_t)argc + 1, sizeof(char *));
	if (!cargv) {
		fprintf(stderr, "ironclaw: out of memory\n");
		return 2;
	}
	int n = 0;
	cargv[n++] = argv[at];
	for (int i = 1; i < at; i++)
		cargv[n++] = argv[i];
	for (int i = at + 1; i < argc; i++)
		cargv[n++] = argv[i];
	cargv[n] = NULL;
	int rc = cli_commands[k].run(n, cargv);
	free(cargv);
	return rc;
}
