/* Subcommands of the ironclaw CLI and the option helpers they share.
 *
 * Each command takes the arguments after its own name (argv[0] is the command)
 * and returns the process exit code; each prints its own --help. Options may
 * come before or after the command word: main() moves the ones before it to
 * just after it (cli_find_command), so a command parses them with its usual
 * getopt_long. For that, a command lists its option table here; one without a
 * table takes only global options before its name. */
#ifndef IRONCLAW_CLI_COMMANDS_H
#define IRONCLAW_CLI_COMMANDS_H

#include <getopt.h>
#include <stddef.h>

#define IRONCLAW_VERSION "0.1.0"

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	/* Its getopt_long tables (NULL: none declared). Used only to find the
	 * command word among options given before it. */
	const struct option *opts;
	const char *shortopts;
};

int cmd_exec(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_undo(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_sandbox(int argc, char **argv);

extern const struct option cmd_exec_options[];
extern const char cmd_exec_shortopts[];
extern const struct option cmd_run_options[];
extern const char cmd_run_shortopts[];
extern const struct option cmd_serve_options[];
extern const char cmd_serve_shortopts[];
extern const struct option cmd_runs_options[];
extern const char cmd_runs_shortopts[];

/* -h/--help and -v/--version: taken anywhere before the command word. */
int cli_is_global_option(const char *w);

/* Finds the command word in argv[1..argc): the first word naming a command in
 * cmds such that every word before it is an option of that command (or a
 * global one) or such an option's value. Stops at "--". Returns the index in
 * cmds and sets *at to the word's position, or -ENOENT. */
int cli_find_command(int argc, char **argv, const struct cli_command *cmds, size_t n_cmds,
		     int *at);

/* Parses v as a whole number in [min, max] for option opt of command cmd.
 * On failure prints one line ("ironclaw CMD: OPT needs a whole number from
 * MIN to MAX, not 'V'") and returns -EINVAL. */
int cli_parse_uint(const char *cmd, const char *opt, const char *v, unsigned min, unsigned max,
		   unsigned *out);

#endif
