/* Subcommands of the ironclaw CLI. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit code. Each prints its
 * own --help. */
#ifndef IRONCLAW_CLI_COMMANDS_H
#define IRONCLAW_CLI_COMMANDS_H

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_exec(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_gc(int argc, char **argv);

#endif
