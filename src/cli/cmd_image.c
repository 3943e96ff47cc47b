/* `ironclaw image`: build, import, list, inspect and remove guest images (the
 * Debian userlands a VM boots with `--image NAME`; src/image/image.h). The
 * builds run as child processes on this command's libuv loop. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/commands.h"
#include "image/image.h"

static void image_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw image build NAME [--packages P1,P2,...] [--suite SUITE] [--size MiB]\n"
		"                            [--sources FILE] [--quiet]\n"
		"       ironclaw image import NAME PATH     OCI layout dir (DIR or DIR:TAG) or `docker save` tar\n"
		"       ironclaw image ls [--json]\n"
		"       ironclaw image inspect NAME [--json]\n"
		"       ironclaw image rm NAME\n\n"
		"Guest images are Debian roots (mmdebstrap, minbase variant, unshare mode) packed\n"
		"into ext4 with mkfs.ext4 -d. A VM boots one read-only with `exec --image NAME`;\n"
		"its writes go to a throwaway layer. The same inputs (suite, packages, resolved\n"
		"versions, guest agent) give the same id, and a rebuild reuses the cached file.\n\n"
		"  --packages LIST  packages beside minbase (comma-separated). `build dev` without\n"
		"                   it gets %s\n"
		"  --suite SUITE    Debian suite (default %s)\n"
		"  --size MiB       filesystem size (default: the root's size plus a quarter)\n"
		"  --sources FILE   apt sources (default %s, the host's)\n"
		"  --json           machine-readable output\n\n"
		"Images live in $IRONCLAW_IMAGES (default ~/.cache/ironclaw/images).\n",
		IMAGE_DEV_PACKAGES, IMAGE_DEFAULT_SUITE, IMAGE_DEFAULT_SOURCES);
}

struct image_cmd {
	int rc;
	int json;
};

static void image_print_info(const struct image_info *info, int json)
{
	if (json) {
		json_t *o = image_info_json(info);
		json_object_set_new(o, "reused", json_boolean(info->reused));
		char *t = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (t)
			printf("%s\n", t);
		free(t);
		json_decref(o);
		return;
	}
	printf("name:     %s\nid:       %s\npath:     %s\nsize:     %.1f MiB\n", info->name, info->id,
	       info->path, (double)info->bytes / 1048576.0);
	const char *keys[] = { "source", "suite", "created", "reference" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = json_string_value(json_object_get(info->meta, keys[i]));
		if (v)
			printf("%-9s %s\n", keys[i], v);
	}
	json_t *pk = json_object_get(info->meta, "packages");
	size_t i;
	json_t *v;
	if (json_array_size(pk)) {
		printf("packages:");
		json_array_foreach(pk, i, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
	json_t *res = json_object_get(info->meta, "resolved");
	if (json_array_size(res))
		printf("resolved: %zu packages (`--json` lists their versions)\n", json_array_size(res));
}

static void image_on_done(void *ctx, const struct image_info *info, const struct err *e)
{
	struct image_cmd *c = ctx;
	if (e) {
		fprintf(stderr, "ironclaw image: %s\n", e->msg);
		c->rc = 1;
		return;
	}
	if (c->json)
		image_print_info(info, 1);
	else
		printf("%s %.12s %s\n", info->name, info->id, info->path);
	c->rc = 0;
}

static int image_split_packages(char *list, const char **out, size_t *n)
{
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!*t)
			continue;
		if (*n >= IMAGE_PACKAGES_MAX) {
			fprintf(stderr, "ironclaw image: at most %d packages\n", IMAGE_PACKAGES_MAX);
			return -E2BIG;
		}
		out[(*n)++] = t;
	}
	return 0;
}

static int image_run_loop(int (*start)(uv_loop_t *, void *, struct image_cmd *, struct err *), void *arg,
			  int json)
{
	uv_loop_t loop;
	struct image_cmd c = { .rc = 1, .json = json };
	struct err e = { 0 };
	uv_loop_init(&loop);
	if (start(&loop, arg, &c, &e) < 0) {
		fprintf(stderr, "ironclaw image: %s\n", e.msg);
		c.rc = 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return c.rc;
}

static int image_start_build(uv_loop_t *loop, void *arg, struct image_cmd *c, struct err *e)
{
	return image_build_start(loop, arg, image_on_done, c, e);
}

struct image_import_arg {
	const char *name, *path;
	int progress;
};

static int image_start_import(uv_loop_t *loop, void *arg, struct image_cmd *c, struct err *e)
{
	struct image_import_arg *a = arg;
	return image_import_start(loop, a->name, a->path, a->progress, image_on_done, c, e);
}

static int image_cmd_ls(int json)
{
	json_t *arr = NULL;
	struct err e = { 0 };
	if (image_list(&arr, &e) < 0) {
		fprintf(stderr, "ironclaw image: %s\n", e.msg);
		return 1;
	}
	if (json) {
		char *t = json_dumps(arr, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", t ? t : "[]");
		free(t);
	} else {
		size_t i;
		json_t *o;
		printf("%-16s %-12s %9s  %-20s  %s\n", "NAME", "ID", "SIZE", "CREATED", "PACKAGES");
		json_array_foreach(arr, i, o) {
			char pk[200] = "";
			size_t k, at = 0;
			json_t *v;
			json_array_foreach(json_object_get(o, "packages"), k, v) {
				int w = snprintf(pk + at, sizeof(pk) - at, "%s%s", k ? "," : "", json_string_value(v));
				if (w < 0 || (size_t)w >= sizeof(pk) - at)
					break;
				at += (size_t)w;
			}
			const char *ref = json_string_value(json_object_get(o, "reference"));
			printf("%-16s %-12.12s %7.1fMi  %-20s  %s\n", json_string_value(json_object_get(o, "name")),
			       json_string_value(json_object_get(o, "id")),
			       (double)json_integer_value(json_object_get(o, "bytes")) / 1048576.0,
			       json_string_value(json_object_get(o, "created")) ?: "-",
			       at ? pk : ref ? ref : "(minbase)");
		}
	}
	json_decref(arr);
	return 0;
}

int cmd_image(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "packages", required_argument, NULL, 'p' },
		{ "suite", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'S' },
		{ "sources", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_build_spec spec = { .progress = 1 };
	char *packages = NULL;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			packages = optarg;
			break;
		case 's':
			spec.suite = optarg;
			break;
		case 'S':
			if (cli_parse_uint("image", "--size", optarg, 16, 1u << 20, &spec.size_mib) < 0)
				return 2;
			break;
		case 'a':
			spec.sources = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'q':
			spec.progress = 0;
			break;
		case 'h':
			image_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "ironclaw image: see `ironclaw image --help`\n");
			return 2;
		}
	}
	const char *sub = optind < argc ? argv[optind] : NULL;
	int nargs = argc - optind - 1;
	if (!sub) {
		image_usage(stderr);
		return 2;
	}
	if (!strcmp(sub, "ls") && nargs == 0)
		return image_cmd_ls(json);
	if (!strcmp(sub, "build") && nargs == 1) {
		char dev[] = IMAGE_DEV_PACKAGES;
		spec.name = argv[optind + 1];
		if (!packages && !strcmp(spec.name, "dev"))
			packages = dev;
		if (packages && image_split_packages(packages, spec.packages, &spec.n_packages) < 0)
			return 2;
		return image_run_loop(image_start_build, &spec, json);
	}
	if (!strcmp(sub, "import") && nargs == 2) {
		struct image_import_arg a = { argv[optind + 1], argv[optind + 2], spec.progress };
		return image_run_loop(image_start_import, &a, json);
	}
	if ((!strcmp(sub, "inspect") || !strcmp(sub, "rm")) && nargs == 1) {
		struct err e = { 0 };
		struct image_info info;
		if (!strcmp(sub, "rm")) {
			if (image_remove(argv[optind + 1], &e) < 0) {
				fprintf(stderr, "ironclaw image: %s\n", e.msg);
				return 1;
			}
			return 0;
		}
		if (image_lookup(argv[optind + 1], &info, &e) < 0) {
			fprintf(stderr, "ironclaw image: %s\n", e.msg);
			return 1;
		}
		image_print_info(&info, json);
		image_info_free(&info);
		return 0;
	}
	fprintf(stderr, "ironclaw image: '%s' with %d argument%s is not a subcommand (hint: `ironclaw image --help`)\n",
		sub, nargs, nargs == 1 ? "" : "s");
	return 2;
}
