/* Tool arguments from the command line: one JSON object, or key=value pairs.
 *
 * A pair's value is typed by the tool's inputSchema when the property declares
 * a type (so message=123 stays a string for a string property, and a=2 is a
 * number for a number property). Without a declared type, a value that parses
 * as JSON is that JSON and anything else is a string. */
#include "mcp/mcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARGS_MAX 256

static json_t *args_json_value(const char *v)
{
	return json_loads(v, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

int mcp_args_need_schema(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		if (!eq)
			continue;
		json_t *v = args_json_value(eq + 1);
		int typed = v && !json_is_string(v);
		json_decref(v);
		if (typed)
			return 1;
	}
	return 0;
}

static int schema_has_type(json_t *prop, const char *type)
{
	json_t *t = json_object_get(prop, "type");
	if (json_is_string(t))
		return !strcmp(json_string_value(t), type);
	size_t i;
	json_t *x;
	json_array_foreach(t, i, x)
		if (json_is_string(x) && !strcmp(json_string_value(x), type))
			return 1;
	return 0;
}

static int args_typed(const char *key, const char *val, json_t *prop, json_t **out, struct err *e)
{
	json_t *j = args_json_value(val);
	*out = NULL;
	if (!json_object_get(prop, "type")) {
		*out = j ? j : json_string(val);
		return 0;
	}
	if ((schema_has_type(prop, "number") && json_is_number(j)) ||
	    (schema_has_type(prop, "integer") && json_is_integer(j)) ||
	    (schema_has_type(prop, "boolean") && json_is_boolean(j)) ||
	    (schema_has_type(prop, "object") && json_is_object(j)) ||
	    (schema_has_type(prop, "array") && json_is_array(j)) ||
	    (schema_has_type(prop, "null") && json_is_null(j))) {
		*out = j;
		return 0;
	}
	json_decref(j);
	if (schema_has_type(prop, "string")) {
		*out = json_string(val);
		return *out ? 0 : err_set(e, -EINVAL, "argument '%s' is not valid UTF-8", key);
	}
	json_t *t = json_object_get(prop, "type");
	char *ts = json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY);
	int rc = err_set(e, -EINVAL, "argument '%s': '%s' is not of type %s (hint: for "
			 "objects and arrays give JSON, e.g. %s='{\"k\":1}')", key, val,
			 ts ? ts : "?", key);
	free(ts);
	return rc;
}

int mcp_args_parse(int argc, char **argv, json_t *schema, json_t **out, struct err *e)
{
	*out = NULL;
	if (argc > ARGS_MAX)
		return err_set(e, -E2BIG, "too many arguments (at most %d)", ARGS_MAX);
	if (argc == 1 && argv[0][0] == '{') {
		json_error_t jerr;
		json_t *o = json_loads(argv[0], JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(o)) {
			json_decref(o);
			return err_set(e, -EINVAL, "arguments are not a JSON object: %s (hint: quote "
				       "the JSON for the shell, or use key=value pairs)", jerr.text);
		}
		*out = o;
		return 0;
	}
	json_t *props = json_object_get(schema, "properties");
	json_t *obj = json_object();
	if (!obj)
		return err_set(e, -ENOMEM, "out of memory");
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i]) {
			json_decref(obj);
			return err_set(e, -EINVAL, "argument '%s' is not key=value (hint: or pass one "
				       "JSON object)", argv[i]);
		}
		char key[256];
		size_t kl = (size_t)(eq - argv[i]);
		if (kl >= sizeof(key)) {
			json_decref(obj);
			return err_set(e, -EINVAL, "argument name too long");
		}
		memcpy(key, argv[i], kl);
		key[kl] = '\0';
		if (json_object_get(obj, key)) {
			json_decref(obj);
			return err_set(e, -EINVAL, "argument '%s' given twice", key);
		}
		json_t *v;
		int rc = args_typed(key, eq + 1, json_object_get(props, key), &v, e);
		if (rc < 0 || !v) {
			json_decref(obj);
			return rc < 0 ? rc : err_set(e, -EINVAL, "argument '%s' is not valid UTF-8", key);
		}
		json_object_set_new(obj, key, v);
	}
	*out = obj;
	return 0;
}
