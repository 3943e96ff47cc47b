/* `ironclaw mcp`: talk to one configured MCP server from the shell.
 *
 *   ironclaw mcp list-tools|list-resources|list-prompts --server NAME
 *   ironclaw mcp call --server NAME TOOL [key=value ... | '{"json":1}']
 *   ironclaw mcp read --server NAME URI
 *   ironclaw mcp get-prompt --server NAME PROMPT [key=value ...]
 *   ironclaw mcp servers
 *   ironclaw mcp login|logout --server NAME
 *
 * Options may come before or after the action (git/kubectl style); `--` ends
 * the options, so a tool argument may start with '-'. `--help` works for mcp
 * and for each action.
 *
 * Output is for people by default and JSON with --json. Exit status: 0 ok,
 * 1 failure (transport or protocol), 2 usage, 3 the tool reported an error
 * (isError), which is the tool's answer rather than a failure of ours. */
#include "cli/commands.h"
#include "core/clock.h"
#include "mcp/mcp.h"
#include "mcp/oauth.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MCP_EXIT_FAIL 1
#define MCP_EXIT_USAGE 2
#define MCP_EXIT_TOOL_ERROR 3
#define MCP_CLI_ROOTS_MAX 64

struct mcp_cli {
	const char *config;
	const char *server;
	const char *url;
	const char *log;
	const char *version;
	const char *roots[MCP_CLI_ROOTS_MAX];
	int nroots;
	long timeout_ms;
	long repeat;
	int json;
	int progress;
	int elicit_defaults;
	int help;
};

struct mcp_action {
	const char *name;
	const char *synopsis;
	const char *help;
};

static const struct mcp_action mcp_actions[] = {
	{ "list-tools", "list-tools", "tools of the server (all pages)" },
	{ "call", "call TOOL [ARGS]", "call a tool; ARGS are key=value pairs or one JSON object\n"
	  "  (a value is typed by the tool's inputSchema; use -- before an argument that\n"
	  "  starts with '-')" },
	{ "list-resources", "list-resources", "resources of the server" },
	{ "read", "read URI", "read one resource" },
	{ "list-prompts", "list-prompts", "prompts of the server" },
	{ "get-prompt", "get-prompt NAME [ARGS]", "get a prompt, with key=value arguments" },
	{ "servers", "servers", "names in the config file" },
	{ "login", "login", "authorize IronClaw at the server's OAuth authorization server: opens\n"
	  "  the authorization URL in a browser ($IRONCLAW_BROWSER, else xdg-open when there is a\n"
	  "  display; the URL is printed either way) and waits for the redirect on 127.0.0.1.\n"
	  "  The tokens are stored in ~/.config/ironclaw/oauth/NAME.json (mode 0600) and\n"
	  "  refreshed when they expire; other commands and `ironclaw run` use them" },
	{ "logout", "logout", "forget the server's stored OAuth tokens (removes the token file)" },
	{ NULL, NULL, NULL },
};

static const struct mcp_action *mcp_action_find(const char *name)
{
	for (const struct mcp_action *a = mcp_actions; name && a->name; a++)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

static void mcp_action_usage(FILE *f, const struct mcp_action *a)
{
	fprintf(f, "usage: ironclaw mcp %s [options]%s\n\n%s\n\n", a->synopsis,
		strcmp(a->name, "servers") ? " (--server NAME | --url URL)" : "", a->help);
	fprintf(f, "options may come before or after the action; see `ironclaw mcp --help`\n");
}

static void mcp_cli_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw mcp [options] <action> [options] [args]\n"
		"       (--server NAME | --url URL) picks the server; options may come before or\n"
		"       after the action, and `--` ends them\n\n"
		"actions:\n"
		"  list-tools                 tools of the server (all pages)\n"
		"  call TOOL [ARGS]           call a tool; ARGS are key=value pairs or one JSON object\n"
		"  list-resources             resources of the server\n"
		"  read URI                   read one resource\n"
		"  list-prompts               prompts of the server\n"
		"  get-prompt NAME [ARGS]     get a prompt, with key=value arguments\n"
		"  servers                    names in the config file\n"
		"  login                      OAuth: authorize in a browser, store the tokens\n"
		"  logout                     OAuth: forget the stored tokens\n\n"
		"options:\n"
		"  --server NAME              server from the config's \"mcpServers\"\n"
		"  --url URL                  a Streamable HTTP server not in the config\n"
		"  --config PATH              config file (default ~/.config/ironclaw/config.json)\n"
		"  --json                     machine-readable output\n"
		"  --timeout MS               per-request timeout (default: config, else 60000)\n"
		"  --root DIR                 offer DIR to the server as a root (repeatable)\n"
		"  --protocol-version V       force one protocol revision (e.g. 2025-06-18)\n"
		"  --stderr-log PATH          where a stdio server's stderr goes\n"
		"  --progress                 print progress notifications to stderr\n"
		"  --elicit-defaults          answer elicitation requests with the schema's defaults\n"
		"  --repeat N                 call: then call N more times in the same session and\n"
		"                             print the mean latency per call to stderr\n"
		"  --help                     this text; `ironclaw mcp ACTION --help` for one action\n\n"
		"exit status: 0 ok, 1 failure, 2 usage, 3 the tool reported an error\n");
}

static void cli_on_progress(void *opaque, struct mcp_call *call, double progress, double total,
			    const char *message)
{
	struct mcp_cli *o = opaque;
	(void)call;
	if (!o->progress)
		return;
	if (total >= 0)
		fprintf(stderr, "progress: %g/%g%s%s\n", progress, total, message ? " " : "",
			message ? message : "");
	else
		fprintf(stderr, "progress: %g%s%s\n", progress, message ? " " : "",
			message ? message : "");
}

/* Accepts an elicitation with every default the requested schema declares
 * (answered at once; the responder could as well be kept for later). */
static void cli_on_request(void *opaque, struct mcp_responder *r, const char *method,
			   json_t *params)
{
	(void)opaque;
	if (strcmp(method, "elicitation/create")) {
		mcp_respond_error(r, -32601, "this client does not do sampling");
		return;
	}
	json_t *content = json_object();
	json_t *props = json_object_get(json_object_get(params, "requestedSchema"), "properties");
	const char *k;
	json_t *p;
	json_object_foreach(props, k, p) {
		json_t *d = json_object_get(p, "default");
		if (d)
			json_object_set(content, k, d);
	}
	mcp_respond(r, json_pack("{s:s,s:o}", "action", "accept", "content", content));
}

/* ~/.cache/ironclaw/mcp/NAME.stderr.log, created as needed; NULL on failure. */
static char *cli_default_log(const char *name)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char dir[4096];
	if (xdg && *xdg)
		snprintf(dir, sizeof(dir), "%s/ironclaw", xdg);
	else if (home && *home)
		snprintf(dir, sizeof(dir), "%s/.cache/ironclaw", home);
	else
		return NULL;
	char sub[4200];
	snprintf(sub, sizeof(sub), "%s/mcp", dir);
	if (xdg && *xdg)
		mkdir(xdg, 0700);
	else {
		char cache[4096];
		snprintf(cache, sizeof(cache), "%s/.cache", home);
		mkdir(cache, 0700);
	}
	mkdir(dir, 0700);
	mkdir(sub, 0700);
	char *out = NULL;
	/* Server names come from the user's own config; still keep them path-safe. */
	for (const char *p = name; *p; p++)
		if (*p == '/' || (p == name && *p == '.'))
			return NULL;
	if (asprintf(&out, "%s/%s.stderr.log", sub, name) < 0)
		return NULL;
	return out;
}

static int cli_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (!s)
		return MCP_EXIT_FAIL;
	printf("%s\n", s);
	free(s);
	return 0;
}

static const char *str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void cli_print_list(const char *what, json_t *items)
{
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		const char *name = str_of(it, !strcmp(what, "resources") ? "uri" : "name");
		const char *desc = str_of(it, "description");
		if (!strcmp(what, "resources") && str_of(it, "name"))
			desc = str_of(it, "name");
		printf("%s", name ? name : "?");
		if (desc) {
			/* First line only: descriptions can be long. */
			const char *nl = strchr(desc, '\n');
			printf("  %.*s", nl ? (int)(nl - desc) : (int)strlen(desc), desc);
		}
		printf("\n");
	}
	if (json_array_size(items) == 0)
		printf("(no %s)\n", what);
}

/* Finds the tool's inputSchema when a key=value needs typing. Returns borrowed
 * from *tools (owned by the caller). */
static json_t *cli_tool_schema(struct mcp_client *c, const char *tool, json_t **tools,
			       struct err *e)
{
	if (mcp_sync_list_all(c, "tools", tools, e) < 0)
		return NULL;
	size_t i;
	json_t *t;
	json_array_foreach(*tools, i, t)
		if (str_of(t, "name") && !strcmp(str_of(t, "name"), tool))
			return json_object_get(t, "inputSchema");
	return NULL;
}

/* --repeat: the same call n more times in this session, timed. */
static int cli_repeat(struct mcp_cli *o, struct mcp_client *c, const char *tool, json_t *args,
		      struct err *e)
{
	double t0 = clock_now_ms();
	for (long i = 0; i < o->repeat; i++) {
		json_t *res = NULL;
		if (mcp_sync_call_tool(c, tool, json_deep_copy(args), &res, e) < 0)
			return e->code;
		json_decref(res);
	}
	double us = (clock_now_ms() - t0) * 1e3;
	fprintf(stderr, "ironclaw mcp: %ld calls in one session, mean %.1f us per call\n",
		o->repeat, us / (double)o->repeat);
	return 0;
}

static int cli_run(struct mcp_cli *o, const char *action, int argc, char **argv,
		   struct mcp_client *c)
{
	struct err e = { 0 };
	json_t *res = NULL, *tools = NULL;
	int rc = 0;
	const char *what = !strcmp(action, "list-tools") ? "tools" :
		!strcmp(action, "list-resources") ? "resources" :
		!strcmp(action, "list-prompts") ? "prompts" : NULL;
	if (what) {
		if (mcp_sync_list_all(c, what, &res, &e) < 0)
			goto fail;
		if (o->json)
			cli_print_json(res);
		else
			cli_print_list(what, res);
	} else if (!strcmp(action, "call") || !strcmp(action, "get-prompt")) {
		int is_call = !strcmp(action, "call");
		json_t *schema = NULL, *args = NULL;
		if (is_call && mcp_args_need_schema(argc - 1, argv + 1)) {
			schema = cli_tool_schema(c, argv[0], &tools, &e);
			if (!schema && e.code)
				goto fail;
		}
		if (mcp_args_parse(argc - 1, argv + 1, schema, &args, &e) < 0)
			goto fail;
		json_t *again = is_call && o->repeat > 0 ? json_deep_copy(args) : NULL;
		if (is_call ? mcp_sync_call_tool(c, argv[0], args, &res, &e) < 0 :
		    mcp_sync_get_prompt(c, argv[0], args, &res, &e) < 0) {
			json_decref(again);
			goto fail;
		}
		if (again && cli_repeat(o, c, argv[0], again, &e) < 0) {
			json_decref(again);
			goto fail;
		}
		json_decref(again);
		if (o->json)
			cli_print_json(res);
		else
			mcp_render_result(mcp_result_is_error(res) ? stderr : stdout, res);
		if (mcp_result_is_error(res)) {
			if (!o->json)
				fprintf(stderr, "ironclaw mcp: tool '%s' reported an error\n", argv[0]);
			rc = MCP_EXIT_TOOL_ERROR;
		}
	} else if (!strcmp(action, "read")) {
		if (mcp_sync_read_resource(c, argv[0], &res, &e) < 0)
			goto fail;
		if (o->json)
			cli_print_json(res);
		else
			mcp_render_result(stdout, res);
	}
	goto out;
fail:
	fprintf(stderr, "ironclaw mcp: %s\n", e.msg);
	rc = MCP_EXIT_FAIL;
out:
	json_decref(res);
	json_decref(tools);
	return rc;
}

struct cli_revoke_wait {
	int done, rc;
	struct err e;
};

static void cli_on_revoked(void *opaque, int rc, const struct err *e)
{
	struct cli_revoke_wait *w = opaque;
	w->done = 1;
	w->rc = rc;
	if (rc < 0 && e)
		w->e = *e;
}

/* RFC 7009 before forgetting: on a private loop (the CLI has no other), the
 * stored tokens are revoked at the authorization server when it publishes a
 * revocation_endpoint. A failure is a warning only: the file goes anyway. */
static void cli_revoke(const struct mcp_server_config *cfg, const char *path)
{
	struct err e = { 0 };
	struct oauth_store *st = calloc(1, sizeof(*st));
	struct cli_revoke_wait w = { 0 };
	uv_loop_t loop;
	if (!st || uv_loop_init(&loop) < 0) {
		free(st);
		return;
	}
	if (oauth_tokens_load_file(path, st, &e) < 0) {
		fprintf(stderr, "ironclaw mcp logout: warning: cannot read the tokens to revoke "
			"them: %s\n", e.msg);
	} else if (oauth_revoke(&loop, cfg->url, st, cli_on_revoked, &w, &e) < 0) {
		fprintf(stderr, "ironclaw mcp logout: warning: tokens not revoked: %s\n", e.msg);
	} else {
		while (!w.done && uv_run(&loop, UV_RUN_ONCE))
			;
		if (w.rc == -ENOTSUP)
			fprintf(stderr, "ironclaw mcp logout: %s; the tokens stay valid there "
				"until they expire\n", w.e.msg);
		else if (w.rc < 0)
			fprintf(stderr, "ironclaw mcp logout: warning: tokens not revoked: %s\n",
				w.e.msg);
		else
			printf("revoked the tokens of '%s' at its authorization server\n",
			       cfg->name);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	memset(st, 0, sizeof(*st));
	free(st);
}

/* `login`: connect with stored tokens ignored, so the server's 401 starts the
 * browser flow; the token file tells whether one happened. `logout`: revoke
 * (cli_revoke), then remove the file (no loop is running then, so the
 * blocking unlink is fine). */
static int cli_oauth(const char *action, struct mcp_server_config *cfg)
{
	struct err e = { 0 };
	struct mcp_client *c = NULL;
	struct stat before, after;
	int rc = MCP_EXIT_FAIL;
	if (cfg->kind != MCP_HTTP || cfg->oauth_off) {
		fprintf(stderr, "ironclaw mcp %s: server '%s' %s\n", action, cfg->name,
			cfg->kind != MCP_HTTP ? "is not an HTTP server (OAuth is for HTTP servers)" :
			"has a static token (\"bearerTokenEnv\"); remove it to use OAuth");
		return MCP_EXIT_USAGE;
	}
	char *path = oauth_tokens_path(cfg->name, cfg->url);
	if (!path) {
		fprintf(stderr, "ironclaw mcp %s: no config directory (set HOME or "
			"XDG_CONFIG_HOME)\n", action);
		return MCP_EXIT_FAIL;
	}
	if (!strcmp(action, "logout")) {
		int had = stat(path, &before) == 0;
		if (had)
			cli_revoke(cfg, path);
		if (oauth_tokens_remove(path, &e) < 0) {
			fprintf(stderr, "ironclaw mcp logout: %s\n", e.msg);
		} else {
			printf(had ? "removed the tokens of '%s' (%s)\n" :
			       "no stored tokens for '%s' (%s)\n", cfg->name, path);
			rc = 0;
		}
		free(path);
		return rc;
	}
	int existed = stat(path, &before) == 0;
	cfg->oauth_interactive = 1;
	cfg->oauth_login = 1;
	if (cfg->timeout_ms < 300000)
		cfg->timeout_ms = 300000;   /* a person is typing a password meanwhile */
	struct mcp_events ev = { 0 };
	if (mcp_sync_new(cfg, &ev, &c, &e) < 0 || mcp_sync_connect(c, &e) < 0) {
		fprintf(stderr, "ironclaw mcp login: %s\n", e.msg);
		goto out;
	}
	/* The tokens are written on the thread pool; the close waits for that. */
	mcp_sync_close(c);
	c = NULL;
	if (stat(path, &after) == 0 && (!existed || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
					after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
					after.st_ino != before.st_ino)) {
		printf("logged in to '%s'; tokens stored in %s\n", cfg->name, path);
		rc = 0;
	} else {
		printf("server '%s' did not ask for authorization; nothing stored\n", cfg->name);
		rc = 0;
	}
out:
	mcp_sync_close(c);
	free(path);
	return rc;
}

static int cli_servers(const char *path)
{
	char **names = NULL;
	struct err e = { 0 };
	if (mcp_config_list(path, &names, &e) < 0) {
		fprintf(stderr, "ironclaw mcp: %s\n", e.msg);
		mcp_strv_free(names);
		return MCP_EXIT_FAIL;
	}
	for (char **p = names; *p; p++)
		printf("%s\n", *p);
	mcp_strv_free(names);
	return 0;
}

/* Parses options anywhere in argv (argv[0] is "mcp"); the positionals, in
 * order, go to pos (the action first). Returns 0, or -1 on a usage error. */
static int cli_parse(struct mcp_cli *o, int argc, char **argv, char **pos, int *npos)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "url", required_argument, NULL, 'u' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "root", required_argument, NULL, 'r' },
		{ "protocol-version", required_argument, NULL, 'V' },
		{ "stderr-log", required_argument, NULL, 'l' },
		{ "progress", no_argument, NULL, 'p' },
		{ "elicit-defaults", no_argument, NULL, 'E' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int ch;
	char *end;
	/* '-': positionals come back in order as ch 1 wherever they stand (no
	 * reliance on GNU permutation or POSIXLY_CORRECT); `--` ends the options. */
	optind = 1;
	*npos = 0;
	while ((ch = getopt_long(argc, argv, "-h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1: pos[(*npos)++] = optarg; break;
		case 's': o->server = optarg; break;
		case 'u': o->url = optarg; break;
		case 'c': o->config = optarg; break;
		case 'j': o->json = 1; break;
		case 'p': o->progress = 1; break;
		case 'E': o->elicit_defaults = 1; break;
		case 'V': o->version = optarg; break;
		case 'l': o->log = optarg; break;
		case 'r':
			if (o->nroots >= MCP_CLI_ROOTS_MAX) {
				fprintf(stderr, "ironclaw mcp: at most %d --root\n", MCP_CLI_ROOTS_MAX);
				return -1;
			}
			o->roots[o->nroots++] = optarg;
			break;
		case 't':
			errno = 0;
			o->timeout_ms = strtol(optarg, &end, 10);
			if (errno || *end || o->timeout_ms <= 0) {
				fprintf(stderr, "ironclaw mcp: --timeout wants milliseconds, got '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'R':
			errno = 0;
			o->repeat = strtol(optarg, &end, 10);
			if (errno || *end || o->repeat <= 0 || o->repeat > 1000000) {
				fprintf(stderr, "ironclaw mcp: --repeat wants a count (1..1000000), "
					"got '%s'\n", optarg);
				return -1;
			}
			break;
		case 'h': o->help = 1; break;
		default:
			fprintf(stderr, "ironclaw mcp: see `ironclaw mcp --help`\n");
			return -1;
		}
	}
	while (optind < argc)
		pos[(*npos)++] = argv[optind++];
	return 0;
}

int cmd_mcp(int argc, char **argv)
{
	struct mcp_cli o = { 0 };
	struct mcp_server_config cfg = { 0 };
	struct mcp_client *c = NULL;
	struct err e = { 0 };
	char *defpath = NULL, *log = NULL;
	int rc;
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	int npos = 0;
	if (!pos)
		return MCP_EXIT_FAIL;
	if (cli_parse(&o, argc, argv, pos, &npos) < 0) {
		free(pos);
		return MCP_EXIT_USAGE;
	}
	const char *action = npos > 0 ? pos[0] : NULL;
	if (action && !strcmp(action, "help")) {
		/* `ironclaw mcp help [ACTION]` */
		o.help = 1;
		action = npos > 1 ? pos[1] : NULL;
	}
	const struct mcp_action *act = mcp_action_find(action);
	if (o.help) {
		if (act)
			mcp_action_usage(stdout, act);
		else
			mcp_cli_usage(stdout);
		free(pos);
		return 0;
	}
	if (!action) {
		mcp_cli_usage(stderr);
		free(pos);
		return MCP_EXIT_USAGE;
	}
	if (!act) {
		fprintf(stderr, "ironclaw mcp: unknown action '%s' (hint: `ironclaw mcp --help`)\n",
			action);
		free(pos);
		return MCP_EXIT_USAGE;
	}
	int nargs = npos - 1;
	char **args = pos + 1;
	int wants = !strcmp(action, "call") || !strcmp(action, "read") ||
		!strcmp(action, "get-prompt");
	if ((wants && nargs < 1) || (!wants && nargs > 0) ||
	    (!strcmp(action, "read") && nargs != 1)) {
		fprintf(stderr, "ironclaw mcp %s: %s\n", action, wants ?
			(nargs < 1 ? "missing the tool, URI or prompt name" : "takes one URI") :
			"takes no arguments");
		free(pos);
		return MCP_EXIT_USAGE;
	}
	if (!o.config)
		o.config = defpath = mcp_config_default_path();
	if (!strcmp(action, "servers")) {
		rc = cli_servers(o.config);
		goto out;
	}
	if (!!o.server == !!o.url) {
		fprintf(stderr, "ironclaw mcp: give exactly one of --server NAME and --url URL\n");
		rc = MCP_EXIT_USAGE;
		goto out;
	}
	if (o.server) {
		rc = mcp_config_load(o.config, o.server, &cfg, &e);
	} else {
		json_t *srv = json_pack("{s:s}", "url", o.url);
		rc = mcp_config_from_json("url", srv, &cfg, &e);
		json_decref(srv);
	}
	if (rc < 0)
		goto fail;
	if (o.timeout_ms > 0)
		cfg.timeout_ms = o.timeout_ms;
	/* A browser flow only where someone can answer it: a terminal, or a
	 * browser command the user configured. */
	cfg.oauth_interactive = isatty(0) || (getenv("IRONCLAW_BROWSER") &&
					      *getenv("IRONCLAW_BROWSER"));
	if (o.version) {
		free(cfg.protocol_version);
		cfg.protocol_version = strdup(o.version);
	}
	for (int i = 0; i < o.nroots; i++)
		if ((rc = mcp_config_add_root(&cfg, o.roots[i])) < 0) {
			err_set(&e, rc, "--root %s: %s (hint: it must be an existing directory)",
				o.roots[i], strerror(-rc));
			goto fail;
		}
	if (cfg.kind == MCP_STDIO && !cfg.stderr_log) {
		cfg.stderr_log = o.log ? strdup(o.log) : (log = cli_default_log(cfg.name));
		log = NULL;
	}
	if (!strcmp(action, "login") || !strcmp(action, "logout")) {
		rc = cli_oauth(action, &cfg);
		goto out;
	}
	struct mcp_events ev = {
		.on_progress = o.progress ? cli_on_progress : NULL,
		.on_request = o.elicit_defaults ? cli_on_request : NULL,
		.opaque = &o,
	};
	if ((rc = mcp_sync_new(&cfg, &ev, &c, &e)) < 0)
		goto fail;
	if ((rc = mcp_sync_connect(c, &e)) < 0)
		goto fail;
	rc = cli_run(&o, action, nargs, args, c);
	goto out;
fail:
	fprintf(stderr, "ironclaw mcp: %s\n", e.msg);
	rc = MCP_EXIT_FAIL;
out:
	mcp_sync_close(c);
	mcp_server_config_free(&cfg);
	free(defpath);
	free(log);
	free(pos);
	return rc;
}
