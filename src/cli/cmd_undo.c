/* `ironclaw undo RUN_ID`: puts back what an applied run changed in its
 * workspace, from the originals kept with the run (<runs>/RUN_ID/undo, written
 * by workspace_apply). A file changed since the apply is refused and left
 * alone; the rest is restored. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/commands.h"
#include "workspace/workspace.h"

static void undo_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw undo [--runs-dir DIR] RUN_ID\n"
		"\n"
		"Puts back the workspace files that run RUN_ID applied (see `ironclaw runs`).\n"
		"A file that changed since the apply is not touched and is listed; run undo again\n"
		"after putting it back by hand to finish.\n"
		"\n"
		"  --runs-dir DIR  where runs are kept (default $XDG_STATE_HOME/ironclaw/runs,\n"
		"                  or /var/lib/ironclaw/runs as root)\n"
		"  -h, --help      this text\n"
		"\n"
		"Exit status: 0 restored; 1 some files were refused or it failed; 2 usage.\n");
}

/* A run id names a directory: letters, digits, '.', '_' and '-', not leading '.'. */
static int undo_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (!n || n > 128 || id[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '.' || id[i] == '_' || id[i] == '-' || (id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z')))
			return 0;
	return 1;
}

/* The same place the run log uses (IRONCLAW_RUNS_DIR, /var/lib/ironclaw/runs for
 * root, the XDG state directory otherwise). */
static void undo_runs_dir(char *out, size_t cap)
{
	char *d = runlog_dir_default();
	snprintf(out, cap, "%s", d ? d : "/var/lib/ironclaw/runs");
	free(d);
}

int cmd_undo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char runs[4096] = "";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			snprintf(runs, sizeof(runs), "%s", optarg);
			break;
		case 'h':
			undo_usage(stdout);
			return 0;
		default:
			undo_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "ironclaw undo: needs one RUN_ID (hint: `ironclaw runs` lists them)\n");
		return 2;
	}
	const char *id = argv[optind];
	if (!undo_id_ok(id)) {
		fprintf(stderr, "ironclaw undo: '%s' is not a run id (hint: `ironclaw runs` lists them)\n", id);
		return 2;
	}
	if (!runs[0])
		undo_runs_dir(runs, sizeof(runs));
	char dir[4400];
	snprintf(dir, sizeof(dir), "%s/%s/undo", runs, id);
	struct workspace_undo_report r;
	struct err e = { 0 };
	int rc = workspace_undo(dir, &r, &e);
	if (rc == -ENOENT) {
		fprintf(stderr, "ironclaw undo: %s\n", e.msg);
		return 1;
	}
	if (r.restored || rc == 0)
		printf("restored %zu path%s of run %s\n", r.restored, r.restored == 1 ? "" : "s", id);
	if (rc < 0) {
		fprintf(stderr, "ironclaw undo: %s\n", e.msg);
		return 1;
	}
	return 0;
}
