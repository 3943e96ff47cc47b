/* MCP server configuration in the ecosystem's format:
 *
 *   {"mcpServers": {"NAME": {"command": "...", "args": [...], "env": {...}},
 *                   "NAME2": {"url": "http://...", "headers": {...}}}}
 *
 * plus IronClaw's optional keys per server: "roots" (directories offered to the
 * server), "timeoutMs", "inputTimeoutMs", "stderrLog", "maxLineBytes", "protocolVersion", and for
 * an HTTP server "bearerTokenEnv": the NAME of an environment variable holding
 * a static bearer token, sent as "Authorization: Bearer ..." (the token itself
 * never sits in the file, and no message of ours ever prints it). The file is
 * read with a size cap and checked strictly: a wrong type is an error that
 * names the server and the key, never a silent default. */
#include "mcp/mcp.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/io.h"

#define CONFIG_MAX_BYTES (4u << 20)
#define CONFIG_MAX_ITEMS 4096

void mcp_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void mcp_server_config_free(struct mcp_server_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->name);
	free(cfg->command);
	mcp_strv_free(cfg->args);
	mcp_strv_free(cfg->env);
	free(cfg->cwd);
	free(cfg->url);
	mcp_strv_free(cfg->headers);
	mcp_strv_free(cfg->roots);
	free(cfg->stderr_log);
	free(cfg->protocol_version);
	free(cfg->oauth_client_id);
	if (cfg->oauth_client_secret)
		memset(cfg->oauth_client_secret, 0, strlen(cfg->oauth_client_secret));
	free(cfg->oauth_client_secret);
	free(cfg->oauth_metadata_url);
	memset(cfg, 0, sizeof(*cfg));
}

char *mcp_config_default_path(void)
{
	const char *env = getenv("IRONCLAW_CONFIG");
	if (env && *env)
		return strdup(env);
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *out = NULL;
	if (xdg && *xdg) {
		if (asprintf(&out, "%s/ironclaw/config.json", xdg) < 0)
			return NULL;
	} else if (asprintf(&out, "%s/.config/ironclaw/config.json", home ? home : ".") < 0) {
		return NULL;
	}
	return out;
}

static int strv_push(char ***v, char *s)
{
	size_t n = 0;
	if (!s)
		return -ENOMEM;
	while (*v && (*v)[n])
		n++;
	if (n >= CONFIG_MAX_ITEMS) {
		free(s);
		return -E2BIG;
	}
	char **nv = realloc(*v, (n + 2) * sizeof(*nv));
	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	nv[n] = s;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

int mcp_config_add_root(struct mcp_server_config *cfg, const char *dir_or_uri)
{
	char *uri = NULL;
	if (!strncmp(dir_or_uri, "file://", 7)) {
		uri = strdup(dir_or_uri);
	} else {
		char abs[PATH_MAX];
		if (!realpath(dir_or_uri, abs))
			return -errno;
		if (asprintf(&uri, "file://%s", abs) < 0)
			uri = NULL;
	}
	if (!cfg->roots) {
		cfg->roots = calloc(1, sizeof(char *));
		if (!cfg->roots) {
			free(uri);
			return -ENOMEM;
		}
	}
	return strv_push(&cfg->roots, uri);
}

static int cfg_strings(const char *name, const char *key, json_t *arr, char ***out, struct err *e)
{
	if (!json_is_array(arr))
		return err_set(e, -EINVAL, "server '%s': \"%s\" must be an array of strings", name, key);
	*out = calloc(1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			return err_set(e, -EINVAL, "server '%s': \"%s\"[%zu] is not a string", name, key, i);
		int rc = strv_push(out, strdup(json_string_value(v)));
		if (rc < 0)
			return err_set(e, rc, "server '%s': \"%s\" is too long", name, key);
	}
	return 0;
}

static int cfg_pairs(const char *name, const char *key, json_t *obj, const char *sep,
		     char ***out, struct err *e)
{
	if (!json_is_object(obj))
		return err_set(e, -EINVAL, "server '%s': \"%s\" must be an object of strings", name, key);
	*out = calloc(1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (!json_is_string(v))
			return err_set(e, -EINVAL, "server '%s': \"%s\".%s is not a string", name, key, k);
		if (strpbrk(k, "\r\n") || strpbrk(json_string_value(v), "\r\n") ||
		    (!strcmp(sep, "=") && (!*k || strchr(k, '='))))
			return err_set(e, -EINVAL, "server '%s': \"%s\".%s has a forbidden character",
				       name, key, k);
		char *s = NULL;
		if (asprintf(&s, "%s%s%s", k, sep, json_string_value(v)) < 0)
			s = NULL;
		int rc = strv_push(out, s);
		if (rc < 0)
			return err_set(e, rc, "server '%s': \"%s\" is too long", name, key);
	}
	return 0;
}

static int cfg_string(const char *name, json_t *server, const char *key, char **out, struct err *e)
{
	json_t *v = json_object_get(server, key);
	if (!v)
		return 0;
	if (!json_is_string(v))
		return err_set(e, -EINVAL, "server '%s': \"%s\" must be a string", name, key);
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

/* "bearerTokenEnv": the variable must be set, and its value must be a header
 * value that cannot smuggle another header in (visible ASCII only). The error
 * names the variable, never the value. */
static int cfg_bearer(const char *name, json_t *var, struct mcp_server_config *cfg,
		      struct err *e)
{
	if (!json_is_string(var) || !json_string_length(var))
		return err_set(e, -EINVAL, "server '%s': \"bearerTokenEnv\" must name an "
			       "environment variable", name);
	const char *v = getenv(json_string_value(var));
	if (!v || !*v)
		return err_set(e, -ENOENT, "server '%s': environment variable %s (from "
			       "\"bearerTokenEnv\") is not set (hint: export it with the token)",
			       name, json_string_value(var));
	size_t n = strlen(v);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return err_set(e, -EINVAL, "server '%s': the token in %s has a space, "
				       "control or non-ASCII character", name,
				       json_string_value(var));
	if (n > 8192)
		return err_set(e, -E2BIG, "server '%s': the token in %s is longer than 8192 "
			       "bytes", name, json_string_value(var));
	char *line = NULL;
	if (asprintf(&line, "Authorization: Bearer %s", v) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	return strv_push(&cfg->headers, line) < 0 ? err_set(e, -ENOMEM, "out of memory") : 0;
}

/* "oauth": {"clientId", "clientSecretEnv", "clientMetadataUrl"}: a client
 * registered with the authorization server beforehand (its secret from an
 * environment variable, never from the file), or the URL of a client ID
 * metadata document. Everything else about OAuth is discovered. */
static int cfg_oauth(const char *name, json_t *o, struct mcp_server_config *cfg, struct err *e)
{
	int rc;
	if (!json_is_object(o))
		return err_set(e, -EINVAL, "server '%s': \"oauth\" must be an object", name);
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
		if (strcmp(k, "clientId") && strcmp(k, "clientSecretEnv") &&
		    strcmp(k, "clientMetadataUrl"))
			return err_set(e, -EINVAL, "server '%s': unknown key \"oauth\".\"%s\" "
				       "(known: clientId, clientSecretEnv, clientMetadataUrl)", name, k);
	if ((rc = cfg_string(name, o, "clientId", &cfg->oauth_client_id, e)) < 0 ||
	    (rc = cfg_string(name, o, "clientMetadataUrl", &cfg->oauth_metadata_url, e)) < 0)
		return rc;
	if (cfg->oauth_metadata_url && strncmp(cfg->oauth_metadata_url, "https://", 8))
		return err_set(e, -EINVAL, "server '%s': \"oauth\".\"clientMetadataUrl\" must be "
			       "an https URL", name);
	json_t *se = json_object_get(o, "clientSecretEnv");
	if (se) {
		if (!json_is_string(se) || !cfg->oauth_client_id)
			return err_set(e, -EINVAL, "server '%s': \"oauth\".\"clientSecretEnv\" must "
				       "name an environment variable, next to \"clientId\"", name);
		const char *sv = getenv(json_string_value(se));
		if (!sv || !*sv)
			return err_set(e, -ENOENT, "server '%s': environment variable %s (from "
				       "\"oauth\".\"clientSecretEnv\") is not set", name,
				       json_string_value(se));
		if (!(cfg->oauth_client_secret = strdup(sv)))
			return -ENOMEM;
	}
	return 0;
}

static int cfg_fill(const char *name, json_t *server, struct mcp_server_config *cfg, struct err *e)
{
	int rc;
	if (!json_is_object(server))
		return err_set(e, -EINVAL, "server '%s' must be an object", name);
	cfg->name = strdup(name);
	cfg->timeout_ms = MCP_TIMEOUT_MS_DEFAULT;
	cfg->line_max = MCP_LINE_MAX_DEFAULT;
	if (!cfg->name)
		return -ENOMEM;
	json_t *cmd = json_object_get(server, "command");
	json_t *url = json_object_get(server, "url");
	if (!!cmd == !!url)
		return err_set(e, -EINVAL, "server '%s' needs exactly one of \"command\" (stdio) "
			       "and \"url\" (HTTP)", name);
	json_t *type = json_object_get(server, "type");
	if (type && !json_is_string(type))
		return err_set(e, -EINVAL, "server '%s': \"type\" must be a string", name);
	const char *ts = type ? json_string_value(type) : NULL;
	if (ts && !strcmp(ts, "sse"))
		return err_set(e, -ENOTSUP, "server '%s': the old HTTP+SSE transport (\"type\": "
			       "\"sse\") is not supported (hint: servers since 2025-03-26 speak "
			       "Streamable HTTP at the same \"url\"; drop \"type\")", name);
	if (ts && strcmp(ts, "stdio") && strcmp(ts, "http") && strcmp(ts, "streamable-http") &&
	    strcmp(ts, "streamableHttp"))
		return err_set(e, -EINVAL, "server '%s': unknown \"type\" '%s' (want stdio or "
			       "http)", name, ts);
	if (cmd) {
		cfg->kind = MCP_STDIO;
		if ((rc = cfg_string(name, server, "command", &cfg->command, e)) < 0)
			return rc;
		if (!*cfg->command)
			return err_set(e, -EINVAL, "server '%s': \"command\" is empty", name);
		json_t *args = json_object_get(server, "args");
		if (args && (rc = cfg_strings(name, "args", args, &cfg->args, e)) < 0)
			return rc;
		json_t *env = json_object_get(server, "env");
		if (env && (rc = cfg_pairs(name, "env", env, "=", &cfg->env, e)) < 0)
			return rc;
		if ((rc = cfg_string(name, server, "cwd", &cfg->cwd, e)) < 0)
			return rc;
	} else {
		cfg->kind = MCP_HTTP;
		if ((rc = cfg_string(name, server, "url", &cfg->url, e)) < 0)
			return rc;
		if (strncmp(cfg->url, "http://", 7) && strncmp(cfg->url, "https://", 8))
			return err_set(e, -EINVAL, "server '%s': \"url\" must start with http:// or "
				       "https://", name);
		json_t *h = json_object_get(server, "headers");
		if (h && (rc = cfg_pairs(name, "headers", h, ": ", &cfg->headers, e)) < 0)
			return rc;
		json_t *bt = json_object_get(server, "bearerTokenEnv");
		if (bt && (rc = cfg_bearer(name, bt, cfg, e)) < 0)
			return rc;
		cfg->oauth_off = bt != NULL;
		json_t *oa = json_object_get(server, "oauth");
		if (oa && (rc = cfg_oauth(name, oa, cfg, e)) < 0)
			return rc;
	}
	json_t *roots = json_object_get(server, "roots");
	if (roots) {
		if (!json_is_array(roots))
			return err_set(e, -EINVAL, "server '%s': \"roots\" must be an array of "
				       "directories", name);
		/* Present but empty still declares the capability (roots may come later). */
		if (!cfg->roots && !(cfg->roots = calloc(1, sizeof(char *))))
			return -ENOMEM;
		size_t i;
		json_t *r;
		json_array_foreach(roots, i, r) {
			if (!json_is_string(r))
				return err_set(e, -EINVAL, "server '%s': \"roots\"[%zu] is not a string",
					       name, i);
			if ((rc = mcp_config_add_root(cfg, json_string_value(r))) < 0)
				return err_set(e, rc, "server '%s': root '%s' does not resolve "
					       "(hint: it must be an existing directory)", name,
					       json_string_value(r));
		}
	}
	json_t *t = json_object_get(server, "timeoutMs");
	if (t) {
		if (!json_is_integer(t) || json_integer_value(t) <= 0 ||
		    json_integer_value(t) > 24L * 3600 * 1000)
			return err_set(e, -EINVAL, "server '%s': \"timeoutMs\" must be a positive "
				       "integer (milliseconds, at most a day)", name);
		cfg->timeout_ms = (long)json_integer_value(t);
	}
	json_t *it = json_object_get(server, "inputTimeoutMs");
	if (it) {
		if (!json_is_integer(it) || json_integer_value(it) <= 0 ||
		    json_integer_value(it) > 24L * 3600 * 1000)
			return err_set(e, -EINVAL, "server '%s': \"inputTimeoutMs\" must be a "
				       "positive integer (milliseconds, at most a day)", name);
		cfg->input_timeout_ms = (long)json_integer_value(it);
	}
	json_t *lm = json_object_get(server, "maxLineBytes");
	if (lm) {
		if (!json_is_integer(lm) || json_integer_value(lm) < 1024 ||
		    json_integer_value(lm) > (json_int_t)MCP_BODY_MAX * 4)
			return err_set(e, -EINVAL, "server '%s': \"maxLineBytes\" must be between "
				       "1024 and %u", name, MCP_BODY_MAX * 4);
		cfg->line_max = (size_t)json_integer_value(lm);
	}
	if ((rc = cfg_string(name, server, "stderrLog", &cfg->stderr_log, e)) < 0)
		return rc;
	if ((rc = cfg_string(name, server, "protocolVersion", &cfg->protocol_version, e)) < 0)
		return rc;
	return 0;
}

int mcp_config_from_json(const char *name, json_t *server, struct mcp_server_config *cfg,
			 struct err *e)
{
	memset(cfg, 0, sizeof(*cfg));
	int rc = cfg_fill(name, server, cfg, e);
	if (rc < 0) {
		if (rc == -ENOMEM && e && !e->code)
			err_set(e, rc, "out of memory reading server '%s'", name);
		mcp_server_config_free(cfg);
	}
	return rc;
}

static int config_read(const char *path, json_t **servers, json_t **root, struct err *e)
{
	char *text = NULL;
	size_t len = 0;
	int rc = io_read_file(path, CONFIG_MAX_BYTES, &text, &len);
	if (rc < 0)
		return err_set(e, rc, "reading MCP config %s: %s (hint: create it with an "
			       "\"mcpServers\" object, or pass --config)", path, strerror(-rc));
	json_error_t jerr;
	*root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!*root)
		return err_set(e, -EINVAL, "MCP config %s: line %d: %s", path, jerr.line, jerr.text);
	*servers = json_object_get(*root, "mcpServers");
	if (!json_is_object(*servers)) {
		json_decref(*root);
		*root = NULL;
		return err_set(e, -EINVAL, "MCP config %s has no \"mcpServers\" object", path);
	}
	return 0;
}

int mcp_config_load(const char *path, const char *name, struct mcp_server_config *cfg,
		    struct err *e)
{
	json_t *root = NULL, *servers = NULL;
	memset(cfg, 0, sizeof(*cfg));
	int rc = config_read(path, &servers, &root, e);
	if (rc < 0)
		return rc;
	json_t *server = json_object_get(servers, name);
	if (!server) {
		char known[512] = "";
		const char *k;
		json_t *v;
		size_t used = 0;
		json_object_foreach(servers, k, v) {
			int w = snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", k);
			if (w < 0 || (size_t)w >= sizeof(known) - used)
				break;
			used += (size_t)w;
		}
		rc = err_set(e, -ENOENT, "no MCP server named '%s' in %s (known: %s)", name, path,
			     used ? known : "none");
		goto out;
	}
	rc = mcp_config_from_json(name, server, cfg, e);
out:
	json_decref(root);
	return rc;
}

int mcp_config_list(const char *path, char ***names, struct err *e)
{
	json_t *root = NULL, *servers = NULL;
	int rc = config_read(path, &servers, &root, e);
	if (rc < 0)
		return rc;
	*names = calloc(1, sizeof(char *));
	if (!*names) {
		rc = -ENOMEM;
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(servers, k, v) {
		if ((rc = strv_push(names, strdup(k))) < 0)
			goto out;
	}
out:
	json_decref(root);
	return rc;
}
