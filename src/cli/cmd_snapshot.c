/* `ironclaw snapshot`: the VM templates that `exec` restores instead of
 * booting (docs/snapshots.md).
 *
 *   create [--cpus N] [--memory MiB] [--kernel P] [--initrd P]   build one
 *   ls [--json]      every template, with its shape, size and whether it is stale
 *   rm KEY           remove one (a unique prefix of its key is enough)
 *   prune            remove stale ones (their image, agent or QEMU changed) and
 *                    what interrupted builds left */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli/commands.h"
#include "vm/template.h"
#include "vm/vm.h"

#define SNAP_LIST_MAX 256

static void snapshot_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw snapshot create [--cpus N] [--memory MiB] [--kernel PATH] [--initrd PATH]\n"
		"                                [--backend qemu|firecracker]\n"
		"       ironclaw snapshot ls [--json]\n"
		"       ironclaw snapshot rm KEY\n"
		"       ironclaw snapshot prune\n\n"
		"VM templates: a guest booted once per shape (image, cpus, memory) with its\n"
		"whole state saved. `ironclaw exec` restores a VM from the template of its\n"
		"shape instead of booting one (`exec --no-snapshot` boots cold), and every\n"
		"restored VM gets fresh entropy, the host's clock, its own hostname and id.\n"
		"A template is keyed by the hash of its kernel, initramfs (with the guest\n"
		"agent), QEMU and command line: one made from an older image or agent is\n"
		"never used, and `ls` marks it stale.\n\n"
		"  create     boot a VM of the shape and save it as its template (default\n"
		"             shape: %d CPU, %d MiB, the default image); --backend picks\n"
		"             the VMM (default qemu): `exec --backend firecracker` restores\n"
		"             only Firecracker's templates, QEMU only QEMU's\n"
		"  ls         list templates; --json prints a JSON array\n"
		"  rm KEY     remove a template (at least 4 characters of its key)\n"
		"  prune      remove stale templates and leftovers of interrupted builds\n\n"
		"Templates live in $XDG_CACHE_HOME/ironclaw/templates, else\n"
		"~/.cache/ironclaw/templates.\n",
		VM_DEFAULT_CPUS, VM_DEFAULT_MEMORY_MIB);
}

struct snap_create {
	int done;
	struct vm_template t;
	struct err e;
};

static void snapshot_on_built(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct snap_create *c = ctx;
	c->done = 1;
	if (t)
		c->t = *t;
	else
		c->e = *e;
}

static int snapshot_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'r' },
		{ "backend", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_template_shape s = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (cli_parse_uint("snapshot create", "--cpus", optarg, 1, 64, &s.cpus) < 0)
				return 2;
			break;
		case 'm':
			if (cli_parse_uint("snapshot create", "--memory", optarg, 64, 65536, &s.memory_mib) < 0)
				return 2;
			break;
		case 'k':
			s.kernel = optarg;
			break;
		case 'r':
			s.initrd = optarg;
			break;
		case 'B': {
			enum vm_backend_choice b;
			struct err be = { 0 };
			if (vm_backend_parse(optarg, &b, &be) < 0 || b == VM_BACKEND_AUTO) {
				fprintf(stderr, "ironclaw snapshot create: --backend: %s\n",
					be.code ? be.msg : "a template is for one backend: qemu or firecracker");
				return 2;
			}
			s.backend = b == VM_BACKEND_FIRECRACKER ? "firecracker" : "qemu";
			break;
		}
		case 'h':
			snapshot_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "ironclaw snapshot create: see `ironclaw snapshot --help`\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ironclaw snapshot create: unexpected '%s'\n", argv[optind]);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "ironclaw snapshot create: must run as root: it boots a jailed VM\n");
		return 1;
	}
	struct err e = { 0 };
	vm_gc(&e);
	err_clear(&e);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct snap_create sc = { 0 };
	if (vm_template_build(&loop, &s, snapshot_on_built, &sc, &e) < 0) {
		fprintf(stderr, "ironclaw snapshot create: %s\n", e.msg);
		uv_loop_close(&loop);
		return 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (!sc.done || sc.e.code) {
		fprintf(stderr, "ironclaw snapshot create: %s\n", sc.done ? sc.e.msg : "did not finish");
		return 1;
	}
	printf("%.*s  %u CPU, %u MiB, %.1f MB state, saved in %.0f ms\n", VM_TEMPLATE_SHORT, sc.t.key,
	       sc.t.cpus, sc.t.memory_mib, (double)sc.t.state_bytes / 1e6, sc.t.save_ms);
	return 0;
}

static int snapshot_ls(int argc, char **argv)
{
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			snapshot_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ironclaw snapshot ls: unknown argument '%s' (takes only --json)\n", argv[i]);
			return 2;
		}
	}
	static struct vm_template list[SNAP_LIST_MAX];
	size_t n = 0;
	struct err e = { 0 };
	if (vm_template_list(list, SNAP_LIST_MAX, &n, &e) < 0) {
		fprintf(stderr, "ironclaw snapshot ls: %s\n", e.msg);
		return 1;
	}
	size_t shown = n < SNAP_LIST_MAX ? n : SNAP_LIST_MAX;
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < shown; i++) {
			const struct vm_template *t = &list[i];
			json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:b}", "key",
							   t->key, "dir", t->dir, "kernel", t->kernel,
							   "initrd", t->initrd, "cpus", (int)t->cpus,
							   "memory_mib", (int)t->memory_mib, "state_bytes",
							   (json_int_t)t->state_bytes, "created",
							   (json_int_t)t->created, "stale", t->stale));
		}
		char *text = json_dumps(a, JSON_INDENT(2));
		printf("%s\n", text ? text : "[]");
		free(text);
		json_decref(a);
		return 0;
	}
	if (n == 0) {
		printf("no templates (hint: ironclaw snapshot create)\n");
		return 0;
	}
	printf("%-12s  %4s  %7s  %9s  %-19s  %s\n", "KEY", "CPUS", "MEMORY", "STATE", "CREATED", "STATUS");
	for (size_t i = 0; i < shown; i++) {
		const struct vm_template *t = &list[i];
		char when[32] = "-";
		time_t c = (time_t)t->created;
		struct tm tm;
		if (c && localtime_r(&c, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%-12.12s  %4u  %4u MiB  %6.1f MB  %-19s  %s\n", t->key, t->cpus, t->memory_mib,
		       (double)t->state_bytes / 1e6, when,
		       t->stale ? "stale (prune removes it)" : "current");
	}
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		snapshot_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	struct err e = { 0 };
	if (!strcmp(sub, "create"))
		return snapshot_create(argc - 1, argv + 1);
	if (!strcmp(sub, "ls"))
		return snapshot_ls(argc - 1, argv + 1);
	if (!strcmp(sub, "rm")) {
		if (argc == 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
			snapshot_usage(stdout);
			return 0;
		}
		if (argc != 3) {
			fprintf(stderr, "ironclaw snapshot rm: give one key (see `ironclaw snapshot ls`)\n");
			return 2;
		}
		char key[VM_TEMPLATE_KEY_LEN + 1];
		if (vm_template_remove(argv[2], key, sizeof(key), &e) < 0) {
			fprintf(stderr, "ironclaw snapshot rm: %s\n", e.msg);
			return 1;
		}
		printf("removed %s\n", key);
		return 0;
	}
	if (!strcmp(sub, "prune")) {
		if (argc == 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
			snapshot_usage(stdout);
			return 0;
		}
		if (argc != 2) {
			fprintf(stderr, "ironclaw snapshot prune: takes no arguments\n");
			return 2;
		}
		unsigned n = 0;
		if (vm_template_prune(&n, &e) < 0) {
			fprintf(stderr, "ironclaw snapshot prune: %s\n", e.msg);
			return 1;
		}
		printf("removed %u stale template%s or build leftover%s\n", n, n == 1 ? "" : "s",
		       n == 1 ? "" : "s");
		return 0;
	}
	fprintf(stderr, "ironclaw snapshot: unknown subcommand '%s' (create, ls, rm, prune; see --help)\n", sub);
	return 2;
}
