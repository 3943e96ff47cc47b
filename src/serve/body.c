/* Strict checks of request bodies, against the schemas in docs/api.yaml.
 *
 * Bodies are hostile: jansson parses them with a length (never trusting a
 * terminator) and a depth limit, and every field is checked for type and range
 * before use. An unknown field is an error too, so a typo ("memory_mb") is
 * never silently ignored. A failure names the field (`*field`) and says what
 * is allowed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "serve/internal.h"

#define BODY_ENV_MAX 256
#define BODY_ARG_MAX 4096
#define BODY_STR_MAX 65536

static json_t *body_parse(const char *p, size_t n, char *field, struct err *e)
{
	json_error_t je;
	json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(field, SERVE_FIELD_MAX, "%s", "");
		err_set(e, -EINVAL, "the body is not valid JSON: %s at line %d column %d", je.text,
			je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(field, SERVE_FIELD_MAX, "%s", "");
		err_set(e, -EINVAL, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

static int body_unknown(json_t *j, const char *const *known, char *field, struct err *e)
{
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		int ok = 0;
		for (size_t i = 0; known[i]; i++)
			ok |= !strcmp(k, known[i]);
		if (!ok) {
			snprintf(field, SERVE_FIELD_MAX, "%s", k);
			return err_set(e, -EINVAL, "unknown field '%.64s'", k);
		}
	}
	return 0;
}

static int body_uint(json_t *j, const char *name, json_int_t min, json_int_t max, unsigned *out,
		     char *field, struct err *e)
{
	json_t *v = json_object_get(j, name);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(field, SERVE_FIELD_MAX, "%s", name);
		return err_set(e, -EINVAL, "'%s' must be a whole number from %lld to %lld", name,
			       (long long)min, (long long)max);
	}
	*out = (unsigned)json_integer_value(v);
	return 0;
}

/* An object of string values with keys that are safe names; returns a copy. */
static int body_string_map(json_t *j, const char *name, int env_names, json_t **out,
			   char *field, struct err *e)
{
	json_t *v = json_object_get(j, name);
	*out = NULL;
	if (!v) {
		*out = json_object();
		return *out ? 0 : err_set(e, -ENOMEM, "out of memory");
	}
	if (!json_is_object(v) || json_object_size(v) > (env_names ? BODY_ENV_MAX : SERVE_LABELS_MAX)) {
		snprintf(field, SERVE_FIELD_MAX, "%s", name);
		return err_set(e, -EINVAL, "'%s' must be an object of at most %d strings", name,
			       env_names ? BODY_ENV_MAX : SERVE_LABELS_MAX);
	}
	const char *k;
	json_t *s;
	json_object_foreach(v, k, s) {
		size_t kl = strlen(k);
		int bad = !kl || kl > 256 || !json_is_string(s) || json_string_length(s) > BODY_STR_MAX;
		for (size_t i = 0; !bad && env_names && i < kl; i++)
			bad = !(k[i] == '_' || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
				(i && k[i] >= '0' && k[i] <= '9'));
		if (!bad && memchr(json_string_value(s), 0, json_string_length(s)))
			bad = 1;
		if (bad) {
			snprintf(field, SERVE_FIELD_MAX, "%s", name);
			return err_set(e, -EINVAL, "'%s.%.64s' must be a string%s", name, k,
				       env_names ? " under a name of letters, digits and _" : "");
		}
	}
	*out = json_deep_copy(v);
	return *out ? 0 : err_set(e, -ENOMEM, "out of memory");
}

int serve_body_create(struct serve *s, const char *p, size_t n, struct serve_shape *shape,
		      unsigned *ttl_s, json_t **env, json_t **labels, char *field,
		      struct err *e)
{
	static const char *const known[] = { "image", "cpus", "memory_mib", "net", "ttl_s",
					     "env", "labels", NULL };
	int rc = -EINVAL;
	*env = *labels = NULL;
	json_t *j = n ? body_parse(p, n, field, e) : json_object();
	if (!j)
		return -EINVAL;
	*shape = s->default_shape;
	*ttl_s = SERVE_TTL_DEFAULT_S;
	if (body_unknown(j, known, field, e) < 0)
		goto out;
	json_t *img = json_object_get(j, "image");
	if (img && (!json_is_string(img) || strlen(json_string_value(img)) != json_string_length(img) ||
		    serve_shape_set_image(shape, json_string_value(img), e) < 0)) {
		snprintf(field, SERVE_FIELD_MAX, "%s", "image");
		if (!json_is_string(img) || !e->code)
			err_set(e, -EINVAL, "'image' must be a string: \"default\" or an image name or "
				"id from `ironclaw image ls`");
		goto out;
	}
	if (body_uint(j, "cpus", 1, 16, &shape->cpus, field, e) < 0 ||
	    body_uint(j, "memory_mib", 64, 16384, &shape->memory_mib, field, e) < 0 ||
	    body_uint(j, "ttl_s", 1, 86400, ttl_s, field, e) < 0)
		goto out;
	json_t *net = json_object_get(j, "net");
	if (net) {
		struct err pe = { 0 };
		if (!json_is_string(net) || json_string_length(net) >= SERVE_NET_SPEC_MAX ||
		    vm_net_parse_allow(json_string_value(net), json_string_length(net), shape->allow,
				       VM_NET_ALLOW_MAX, &shape->n_allow, &pe) < 0) {
			snprintf(field, SERVE_FIELD_MAX, "%s", "net");
			err_set(e, -EINVAL, "'net' must be \"none\" or \"allow=CIDR[:PORT],...\"%s%s",
				pe.code ? ": " : "", pe.msg);
			goto out;
		}
		snprintf(shape->net_spec, sizeof(shape->net_spec), "%s", json_string_value(net));
		shape->net = strcmp(shape->net_spec, "none") != 0;
	}
	if (body_string_map(j, "env", 1, env, field, e) < 0 ||
	    body_string_map(j, "labels", 0, labels, field, e) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		json_decref(*env);
		json_decref(*labels);
		*env = *labels = NULL;
	}
	json_decref(j);
	return rc;
}

static char *body_dup(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static int body_env_add(char **env, size_t *k, const char *name, json_t *v)
{
	size_t nl = strlen(name), vl = json_string_length(v);
	for (size_t i = 0; i < *k; i++) {
		if (!strncmp(env[i], name, nl) && env[i][nl] == '=') {
			free(env[i]);
			env[i] = env[--*k];
			env[*k] = NULL;
			break;
		}
	}
	char *s = malloc(nl + vl + 2);
	if (!s)
		return -ENOMEM;
	memcpy(s, name, nl);
	s[nl] = '=';
	memcpy(s + nl + 1, json_string_value(v), vl);
	s[nl + 1 + vl] = 0;
	env[(*k)++] = s;
	return 0;
}

int serve_body_exec(const char *p, size_t n, json_t *sandbox_env, struct serve_exec_req *x,
		    char *field, struct err *e)
{
	static const char *const known[] = { "argv", "env", "cwd", "timeout_s", "stdin", NULL };
	int rc = -EINVAL;
	json_t *env = NULL;
	memset(x, 0, sizeof(*x));
	json_t *j = body_parse(p, n, field, e);
	if (!j)
		return -EINVAL;
	if (body_unknown(j, known, field, e) < 0)
		goto out;
	json_t *argv = json_object_get(j, "argv");
	size_t na = json_array_size(argv);
	if (!json_is_array(argv) || na == 0 || na > BODY_ARG_MAX) {
		snprintf(field, SERVE_FIELD_MAX, "%s", "argv");
		err_set(e, -EINVAL, "'argv' must be an array of 1 to %d strings", BODY_ARG_MAX);
		goto out;
	}
	x->argv = calloc(na + 1, sizeof(char *));
	if (!x->argv) {
		err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < na; i++) {
		json_t *a = json_array_get(argv, i);
		if (!json_is_string(a) || json_string_length(a) > BODY_STR_MAX ||
		    memchr(json_string_value(a), 0, json_string_length(a)) ||
		    (i == 0 && json_string_length(a) == 0)) {
			snprintf(field, SERVE_FIELD_MAX, "%s", "argv");
			err_set(e, -EINVAL, "'argv[%zu]' must be a%s string without NUL bytes", i,
				i == 0 ? " non-empty" : "");
			goto out;
		}
		if (!(x->argv[i] = body_dup(json_string_value(a), json_string_length(a)))) {
			err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (body_string_map(j, "env", 1, &env, field, e) < 0)
		goto out;
	x->env = calloc(2 * BODY_ENV_MAX + 1, sizeof(char *));
	if (!x->env) {
		err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	size_t k = 0;
	const char *name;
	json_t *v;
	json_object_foreach(sandbox_env, name, v)
		if (body_env_add(x->env, &k, name, v) < 0)
			goto oom;
	json_object_foreach(env, name, v)
		if (body_env_add(x->env, &k, name, v) < 0)
			goto oom;
	json_t *cwd = json_object_get(j, "cwd");
	if (cwd) {
		if (!json_is_string(cwd) || json_string_value(cwd)[0] != '/' ||
		    json_string_length(cwd) > 4096 ||
		    strlen(json_string_value(cwd)) != json_string_length(cwd)) {
			snprintf(field, SERVE_FIELD_MAX, "%s", "cwd");
			err_set(e, -EINVAL, "'cwd' must be an absolute guest path");
			goto out;
		}
		if (!(x->cwd = strdup(json_string_value(cwd))))
			goto oom;
	}
	if (body_uint(j, "timeout_s", 1, 86400, &x->timeout_s, field, e) < 0)
		goto out;
	json_t *in = json_object_get(j, "stdin");
	if (in) {
		size_t l = json_string_length(in);
		if (!json_is_string(in) || l % 4) {
			snprintf(field, SERVE_FIELD_MAX, "%s", "stdin");
			err_set(e, -EINVAL, "'stdin' must be base64 (RFC 4648, padded)");
			goto out;
		}
		x->stdin_data = malloc(l / 4 * 3 + 1);
		if (!x->stdin_data)
			goto oom;
		long d = b64_decode(json_string_value(in), l, x->stdin_data);
		if (d < 0) {
			snprintf(field, SERVE_FIELD_MAX, "%s", "stdin");
			err_set(e, -EINVAL, "'stdin' must be base64 (RFC 4648, padded)");
			goto out;
		}
		x->stdin_len = (size_t)d;
		x->has_stdin = 1;
	}
	rc = 0;
	goto out;
oom:
	err_set(e, -ENOMEM, "out of memory");
out:
	if (rc < 0)
		serve_exec_req_free(x);
	json_decref(env);
	json_decref(j);
	return rc;
}

void serve_exec_req_free(struct serve_exec_req *x)
{
	for (size_t i = 0; x->argv && x->argv[i]; i++)
		free(x->argv[i]);
	for (size_t i = 0; x->env && x->env[i]; i++)
		free(x->env[i]);
	free(x->argv);
	free(x->env);
	free(x->cwd);
	free(x->stdin_data);
	memset(x, 0, sizeof(*x));
}
