/* `ironclaw serve`: run the daemon (src/serve): sandboxes for other programs
 * over an HTTP/1.1 + JSON API on a Unix socket (docs/api.yaml, docs/serve.md).
 * Exit status: 0 after a clean stop (SIGINT, SIGTERM), 1 when it could not
 * start, 2 for bad options. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "serve/serve.h"
#include "vm/vm.h"

const struct option cmd_serve_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "group", required_argument, NULL, 'g' },
	{ "pool", required_argument, NULL, 'p' },
	{ "pool-memory", required_argument, NULL, 'P' },
	{ "pool-idle", required_argument, NULL, 'I' },
	{ "pool-image", required_argument, NULL, 'i' },
	{ "max-sandboxes", required_argument, NULL, 'n' },
	{ "memory-cap", required_argument, NULL, 'M' },
	{ "max-booting", required_argument, NULL, 'B' },
	{ "boot-timeout", required_argument, NULL, 'b' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "memory", required_argument, NULL, 'm' },
	{ "no-snapshot", no_argument, NULL, 'S' },
	{ "max-ttl", required_argument, NULL, 'T' },
	{ "max-workspace-mib", required_argument, NULL, 'W' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
const char cmd_serve_shortopts[] = "h";

static void serve_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw serve [options]\n\n"
		"Run the IronClaw daemon: it keeps micro-VM sandboxes for other programs and\n"
		"answers an HTTP/1.1 + JSON API (docs/api.yaml) on a Unix socket. There is no\n"
		"TCP listener. Stop it with SIGINT or SIGTERM: every sandbox is destroyed.\n"
		"Leftovers of VMs from a daemon that was killed are removed before serving.\n\n"
		"options:\n"
		"  --socket PATH        the socket (default %s)\n"
		"  --group G            open the socket to group G (mode 0660); its members\n"
		"                       can run sandboxes without root. Default: 0600, root only\n"
		"  --pool N             keep N VMs of the default shape booted and ready\n"
		"                       (default 0); each is used once, then destroyed\n"
		"  --pool-image NAME    also keep N VMs of this image (from `ironclaw image ls`,\n"
		"                       a name or id) ready; repeat for more images (at most %d)\n"
		"  --pool-memory MiB    cap on the pool's guest memory (default N x --memory\n"
		"                       per pooled image)\n"
		"  --pool-idle S        drain the pool after S s without demand (default 0: never)\n"
		"  --max-sandboxes N    refuse (429) past N sandboxes (default %d)\n"
		"  --memory-cap MiB     refuse (429) past this much guest memory over sandboxes\n"
		"                       and pool together (default %d)\n"
		"  --max-booting N      VMs booting at once; more wait their turn (default:\n"
		"                       the number of CPUs)\n"
		"  --boot-timeout S     a VM not ready S s after its boot started fails\n"
		"                       (default %d)\n"
		"  --cpus N             default vCPUs of a sandbox (default %d)\n"
		"  --memory MiB         default guest memory of a sandbox (default %d)\n"
		"  --no-snapshot        boot every VM cold; by default VMs of a shape restore\n"
		"                       from its template, built in the background when missing\n"
		"  --max-ttl S          cap every sandbox TTL asked for (create and PATCH) at S\n"
		"                       seconds (default %d)\n"
		"  --max-workspace-mib N  refuse a PUT .../workspace tar stream over N MiB with\n"
		"                       413 (default %llu)\n"
		"  -h, --help           show this help\n\n"
		"example:\n"
		"  ironclaw serve --pool 2 &\n"
		"  curl --unix-socket %s -XPOST http://localhost/v1/sandboxes -d '{}'\n",
		SERVE_SOCKET_DEFAULT, SERVE_POOL_IMAGES_MAX, SERVE_MAX_SANDBOXES_DEFAULT,
		SERVE_MEMORY_MIB_DEFAULT,
		VM_DEFAULT_BOOT_TIMEOUT_MS / 1000, VM_DEFAULT_CPUS, VM_DEFAULT_MEMORY_MIB,
		SERVE_TTL_MAX_S, (unsigned long long)(SERVE_WORKSPACE_MAX_DEFAULT >> 20),
		SERVE_SOCKET_DEFAULT);
}

static int serve_parse_group(const char *g, gid_t *out)
{
	struct group *gr = getgrnam(g);
	char *end;
	if (gr) {
		*out = gr->gr_gid;
		return 0;
	}
	unsigned long v = strtoul(g, &end, 10);
	if (*g && !*end && v < (unsigned long)(gid_t)-1) {
		*out = (gid_t)v;
		return 0;
	}
	fprintf(stderr, "ironclaw serve: no group '%s' (hint: create it with `groupadd %s`, "
		"or give a numeric gid)\n", g, g);
	return -EINVAL;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_config c = { .group = (gid_t)-1, .stop_fd = -1 };
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, cmd_serve_shortopts, cmd_serve_options, NULL)) != -1) {
		switch (ch) {
		case 's':
			c.socket_path = optarg;
			break;
		case 'S':
			c.no_snapshot = 1;
			break;
		case 'g':
			if (serve_parse_group(optarg, &c.group) < 0)
				return 2;
			break;
		case 'p':
			if (cli_parse_uint("serve", "--pool", optarg, 0, 64, &c.pool_size) < 0)
				return 2;
			break;
		case 'P':
			if (cli_parse_uint("serve", "--pool-memory", optarg, 64, 1u << 20,
					   &c.pool_memory_mib) < 0)
				return 2;
			break;
		case 'i':
			if (c.n_pool_images >= SERVE_POOL_IMAGES_MAX) {
				fprintf(stderr, "ironclaw serve: at most %d --pool-image\n",
					SERVE_POOL_IMAGES_MAX);
				return 2;
			}
			c.pool_images[c.n_pool_images++] = optarg;
			break;
		case 'I':
			if (cli_parse_uint("serve", "--pool-idle", optarg, 0, 86400 * 7, &c.pool_idle_s) < 0)
				return 2;
			break;
		case 'n':
			if (cli_parse_uint("serve", "--max-sandboxes", optarg, 1, 4096, &c.max_sandboxes) < 0)
				return 2;
			break;
		case 'M':
			if (cli_parse_uint("serve", "--memory-cap", optarg, 64, 1u << 22, &c.memory_mib) < 0)
				return 2;
			break;
		case 'B':
			if (cli_parse_uint("serve", "--max-booting", optarg, 1, 256, &c.max_booting) < 0)
				return 2;
			break;
		case 'b':
			if (cli_parse_uint("serve", "--boot-timeout", optarg, 1, 3600, &c.boot_timeout_s) < 0)
				return 2;
			break;
		case 'c':
			if (cli_parse_uint("serve", "--cpus", optarg, 1, 16, &c.cpus) < 0)
				return 2;
			break;
		case 'm':
			if (cli_parse_uint("serve", "--memory", optarg, 64, 16384, &c.memory_default_mib) < 0)
				return 2;
			break;
		case 'T':
			if (cli_parse_uint("serve", "--max-ttl", optarg, 1, SERVE_TTL_MAX_S, &c.max_ttl_s) < 0)
				return 2;
			break;
		case 'W':
			if (cli_parse_uint("serve", "--max-workspace-mib", optarg, 1,
					   (unsigned)(SERVE_WORKSPACE_MAX_DEFAULT >> 20),
					   &c.workspace_max_mib) < 0)
				return 2;
			break;
		case 'h':
			serve_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "ironclaw serve: see `ironclaw serve --help`\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ironclaw serve: unexpected '%s' (see `ironclaw serve --help`)\n",
			argv[optind]);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "ironclaw serve: must run as root: the VMs' jails need namespaces, "
			"cgroups and nftables (hint: run it as root; members of --group G then use "
			"it without root)\n");
		return 1;
	}
	/* Tests stop the daemon by closing a pipe (IRONCLAW_SERVE_STOP_FD). */
	const char *sfd = getenv("IRONCLAW_SERVE_STOP_FD");
	if (sfd && *sfd)
		c.stop_fd = atoi(sfd);
	struct err e = { 0 };
	if (serve_run(&c, &e) < 0) {
		fprintf(stderr, "ironclaw serve: %s\n", e.msg);
		return 1;
	}
	return 0;
}
