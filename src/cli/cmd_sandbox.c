/* `ironclaw sandbox create|ls|exec|cp|rm`: the daemon's sandboxes from the
 * shell (libcurl over its Unix socket; `ironclaw serve` must be running).
 * Root is not needed: a member of the socket's group may use it.
 * Exit codes: 0 done, 1 the daemon refused or is unreachable, 2 bad usage;
 * `exec` returns the command's status as `ironclaw exec` does (125: ironclaw
 * failed). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/commands.h"
#include "core/io.h"
#include "serve/serve.h"

#include <curl/curl.h>

#define SB_FILE_MAX (8u << 20)

static void sandbox_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw sandbox create [--cpus N] [--memory MiB] [--net SPEC] [--ttl S]\n"
		"                               [--label K=V]...   prints the new sandbox's id\n"
		"       ironclaw sandbox ls\n"
		"       ironclaw sandbox exec ID [--env K=V]... [--workdir DIR] [--timeout S] -- CMD...\n"
		"       ironclaw sandbox cp SRC DST     one side is ID:/guest/path (at most 8 MiB)\n"
		"       ironclaw sandbox rm ID...\n\n"
		"Drives the sandboxes of a running `ironclaw serve` over its socket\n"
		"($IRONCLAW_SOCKET, default %s). Needs no root: members of the\n"
		"socket's group (`ironclaw serve --group G`) may use it.\n",
		SERVE_SOCKET_DEFAULT);
}

static int sandbox_call(const char *method, const char *path, const void *body, size_t n,
			const char *ctype, long want, struct buf *out)
{
	struct err e = { 0 };
	long status = 0;
	int rc = serve_client_do(serve_client_socket(), &(struct serve_client_req){ .method = method,
				 .path = path, .body = body, .body_len = n, .content_type = ctype },
				 &status, out, &e);
	if (rc < 0) {
		fprintf(stderr, "ironclaw sandbox: %s\n", e.msg);
		return 1;
	}
	if (status != want) {
		json_t *j = json_loadb((const char *)out->data, out->len, 0, NULL);
		const char *m = json_string_value(json_object_get(j, "error"));
		fprintf(stderr, "ironclaw sandbox: the daemon answered %ld: %s\n", status,
			m ? m : "no reason given");
		json_decref(j);
		return 1;
	}
	return 0;
}

static int sandbox_kv(json_t *obj, const char *kv, const char *what)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		fprintf(stderr, "ironclaw sandbox: %s needs K=V, not '%s'\n", what, kv);
		return -1;
	}
	char k[257];
	snprintf(k, sizeof(k), "%.*s", (int)(eq - kv), kv);
	json_object_set_new(obj, k, json_string(eq + 1));
	return 0;
}

static int sandbox_create(int argc, char **argv)
{
	static const struct option o[] = {
		{ "cpus", required_argument, NULL, 'c' }, { "memory", required_argument, NULL, 'm' },
		{ "net", required_argument, NULL, 'n' }, { "ttl", required_argument, NULL, 't' },
		{ "label", required_argument, NULL, 'l' }, { NULL, 0, NULL, 0 },
	};
	json_t *b = json_object(), *labels = json_object();
	unsigned v;
	int c, rc = 2;
	while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (cli_parse_uint("sandbox create", "--cpus", optarg, 1, 16, &v) < 0)
				goto out;
			json_object_set_new(b, "cpus", json_integer(v));
			break;
		case 'm':
			if (cli_parse_uint("sandbox create", "--memory", optarg, 64, 16384, &v) < 0)
				goto out;
			json_object_set_new(b, "memory_mib", json_integer(v));
			break;
		case 't':
			if (cli_parse_uint("sandbox create", "--ttl", optarg, 1, 86400, &v) < 0)
				goto out;
			json_object_set_new(b, "ttl_s", json_integer(v));
			break;
		case 'n':
			json_object_set_new(b, "net", json_string(optarg));
			break;
		case 'l':
			if (sandbox_kv(labels, optarg, "--label") < 0)
				goto out;
			break;
		default:
			goto out;
		}
	}
	json_object_set(b, "labels", labels);
	char *body = json_dumps(b, JSON_COMPACT);
	struct buf out;
	buf_init(&out, 65536);
	rc = sandbox_call("POST", "/v1/sandboxes", body, strlen(body), NULL, 201, &out);
	if (rc == 0) {
		json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL);
		printf("%s\n", json_string_value(json_object_get(j, "id")));
		fprintf(stderr, "made: %s in %.0f ms\n", json_string_value(json_object_get(j, "made")),
			json_number_value(json_object_get(j, "ms")));
		json_decref(j);
	}
	free(body);
	buf_free(&out);
out:
	json_decref(b);
	json_decref(labels);
	return rc;
}

static int sandbox_ls(void)
{
	struct buf out;
	buf_init(&out, SERVE_CLIENT_BODY_MAX);
	int rc = sandbox_call("GET", "/v1/sandboxes", NULL, 0, NULL, 200, &out);
	if (rc == 0) {
		json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL), *sb;
		size_t i;
		printf("%-18s %-9s %-9s %8s %5s %7s %8s\n", "ID", "STATE", "MADE", "MS", "CPUS",
		       "MEMORY", "EXPIRES");
		json_array_foreach(json_object_get(j, "sandboxes"), i, sb)
			printf("%-18s %-9s %-9s %8.0f %5lld %7lld %7llds\n",
			       json_string_value(json_object_get(sb, "id")),
			       json_string_value(json_object_get(sb, "state")),
			       json_string_value(json_object_get(sb, "made")),
			       json_number_value(json_object_get(sb, "ms")),
			       json_integer_value(json_object_get(sb, "cpus")),
			       json_integer_value(json_object_get(sb, "memory_mib")),
			       json_integer_value(json_object_get(sb, "expires_in_s")));
		json_decref(j);
	}
	buf_free(&out);
	return rc;
}

static int sandbox_exec(int argc, char **argv)
{
	static const struct option o[] = {
		{ "env", required_argument, NULL, 'e' }, { "workdir", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 },
	};
	json_t *b = json_object(), *env = json_object(), *av = json_array();
	unsigned v;
	int c, rc = 2;
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "ironclaw sandbox exec: give the sandbox's ID first\n");
		goto out;
	}
	const char *id = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", o, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (sandbox_kv(env, optarg, "--env") < 0)
				goto out;
			break;
		case 'w':
			json_object_set_new(b, "cwd", json_string(optarg));
			break;
		case 't':
			if (cli_parse_uint("sandbox exec", "--timeout", optarg, 1, 86400, &v) < 0)
				goto out;
			json_object_set_new(b, "timeout_s", json_integer(v));
			break;
		default:
			goto out;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ironclaw sandbox exec: no command (hint: ... exec ID -- echo hi)\n");
		goto out;
	}
	for (int i = optind; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_object_set(b, "argv", av);
	json_object_set(b, "env", env);
	char *body = json_dumps(b, JSON_COMPACT);
	struct err e = { 0 };
	rc = serve_client_exec(serve_client_socket(), id, body, &e);
	if (e.code)
		fprintf(stderr, "ironclaw: %s\n", e.msg);
	free(body);
out:
	json_decref(b);
	json_decref(env);
	json_decref(av);
	return rc;
}

/* "ID:/path" → id and path; returns 0 when src is not of that form. */
static int sandbox_remote(const char *s, char *id, size_t n, const char **path)
{
	const char *colon = strchr(s, ':');
	if (!colon || colon == s || colon[1] != '/' || (size_t)(colon - s) >= n)
		return 0;
	snprintf(id, n, "%.*s", (int)(colon - s), s);
	*path = colon + 1;
	return 1;
}

static void sandbox_query_path(char *out, size_t n, const char *id, const char *path)
{
	char *esc = curl_easy_escape(NULL, path, 0);
	snprintf(out, n, "/v1/sandboxes/%s/files?path=%s", id, esc ? esc : "");
	curl_free(esc);
}

static int sandbox_cp(int argc, char **argv)
{
	char id[80], q[8400];
	const char *path;
	struct buf out;
	int rc = 1;
	if (argc != 3) {
		fprintf(stderr, "ironclaw sandbox cp: needs SRC and DST, one of them ID:/path\n");
		return 2;
	}
	buf_init(&out, SB_FILE_MAX + 1);
	if (sandbox_remote(argv[1], id, sizeof(id), &path)) {
		sandbox_query_path(q, sizeof(q), id, path);
		if (sandbox_call("GET", q, NULL, 0, NULL, 200, &out) == 0) {
			rc = io_write_file(argv[2], out.data, out.len, 0644);
			if (rc < 0)
				fprintf(stderr, "ironclaw sandbox cp: writing %s: %s\n", argv[2],
					strerror(-rc));
			rc = rc < 0;
		}
	} else if (sandbox_remote(argv[2], id, sizeof(id), &path)) {
		char *data = NULL;
		size_t len = 0;
		int r = io_read_file(argv[1], SB_FILE_MAX, &data, &len);
		if (r < 0) {
			fprintf(stderr, "ironclaw sandbox cp: reading %s: %s\n", argv[1],
				r == -EMSGSIZE ? "over 8 MiB" : strerror(-r));
		} else {
			sandbox_query_path(q, sizeof(q), id, path);
			rc = sandbox_call("PUT", q, data ? data : "", len, "application/octet-stream",
					  201, &out);
		}
		free(data);
	} else {
		fprintf(stderr, "ironclaw sandbox cp: one side must be ID:/guest/path\n");
		rc = 2;
	}
	buf_free(&out);
	return rc;
}

static int sandbox_rm(int argc, char **argv)
{
	int rc = 0;
	if (argc < 2) {
		fprintf(stderr, "ironclaw sandbox rm: give the IDs to remove\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		char path[128];
		struct buf out;
		buf_init(&out, 65536);
		snprintf(path, sizeof(path), "/v1/sandboxes/%.80s", argv[i]);
		rc |= sandbox_call("DELETE", path, NULL, 0, NULL, 204, &out);
		buf_free(&out);
	}
	return rc;
}

int cmd_sandbox(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		sandbox_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	optind = 1;
	if (!strcmp(sub, "create"))
		return sandbox_create(argc - 1, argv + 1);
	if (!strcmp(sub, "ls"))
		return sandbox_ls();
	if (!strcmp(sub, "exec"))
		return sandbox_exec(argc - 1, argv + 1);
	if (!strcmp(sub, "cp"))
		return sandbox_cp(argc - 1, argv + 1);
	if (!strcmp(sub, "rm"))
		return sandbox_rm(argc - 1, argv + 1);
	fprintf(stderr, "ironclaw sandbox: unknown action '%s' (see `ironclaw sandbox --help`)\n", sub);
	return 2;
}
