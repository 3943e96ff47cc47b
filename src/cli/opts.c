/* Option helpers shared by the CLI's commands (see commands.h).
 *
 * The CLI takes options before or after the command word, as git and kubectl
 * do: `ironclaw --timeout 5 exec -- CMD` is `ironclaw exec --timeout 5 -- CMD`.
 * main() finds the command word with cli_find_command and moves the options
 * in front of it to just after it; the command's own getopt_long then sees them
 * in the usual place. To tell "--timeout 5" (an option and its value) from a
 * command word, it reads the command's own option table, so a value that
 * happens to spell a command name is still a value. */
#include "cli/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_is_global_option(const char *w)
{
	return !strcmp(w, "-h") || !strcmp(w, "--help") || !strcmp(w, "-v") ||
	       !strcmp(w, "--version");
}

/* How a long option word ("--name" or "--name=value") fits the table: 0 unknown,
 * 1 complete, 2 needs the next word as its value. */
static int cli_long_fit(const struct option *opts, const char *w)
{
	const char *name = w + 2;
	size_t len = strcspn(name, "=");
	for (const struct option *o = opts; o && o->name; o++) {
		if (strlen(o->name) != len || strncmp(o->name, name, len))
			continue;
		if (name[len] == '=')
			return o->has_arg == no_argument ? 0 : 1;
		return o->has_arg == required_argument ? 2 : 1;
	}
	return 0;
}

/* The same for a cluster of short options ("-i", "-ab", "-tVALUE"). */
static int cli_short_fit(const char *shortopts, const char *w)
{
	for (const char *c = w + 1; *c; c++) {
		const char *at = shortopts && *c != ':' && *c != '+' ? strchr(shortopts, *c) : NULL;
		if (!at)
			return 0;
		if (at[1] == ':')
			return c[1] ? 1 : 2;
	}
	return 1;
}

/* 1 if words[0..n) are options of this command (or global ones) and their
 * values, consumed exactly. */
static int cli_options_fit(const struct cli_command *c, char **words, int n)
{
	for (int i = 0; i < n; i++) {
		const char *w = words[i];
		int fit;
		if (cli_is_global_option(w))
			continue;
		if (w[0] != '-' || !w[1] || !strcmp(w, "--"))
			return 0;
		fit = w[1] == '-' ? cli_long_fit(c->opts, w) : cli_short_fit(c->shortopts, w);
		if (!fit)
			return 0;
		if (fit == 2 && ++i >= n)
			return 0;
	}
	return 1;
}

int cli_find_command(int argc, char **argv, const struct cli_command *cmds, size_t n_cmds,
		     int *at)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		for (size_t k = 0; k < n_cmds; k++) {
			if (strcmp(argv[i], cmds[k].name))
				continue;
			if (cli_options_fit(&cmds[k], argv + 1, i - 1)) {
				*at = i;
				return (int)k;
			}
		}
	}
	return -ENOENT;
}

int cli_parse_uint(const char *cmd, const char *opt, const char *v, unsigned min, unsigned max,
		   unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	/* strtoul would take leading blanks and signs; a number starts with a digit. */
	if (v[0] < '0' || v[0] > '9' || errno || *end || n < min || n > max) {
		fprintf(stderr, "ironclaw %s: %s needs a whole number from %u to %u, not '%s'\n",
			cmd, opt, min, max, v);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}
