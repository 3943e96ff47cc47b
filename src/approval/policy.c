/* The approval policy: the defaults and the config's "approval" section.
 *
 * The policy is data; the one classifier that reads it is classify.c. A user
 * tunes it with name globs in the same config file as "mcpServers":
 *
 *   "approval": {"red": ["*__delete_*"], "green": ["memory__read_graph"],
 *                "readOnlyWords": ["read", "list"], "promptTimeoutS": 120}
 *
 * Globs are how a user overrides what an untrusted server says about its own
 * tools. The section is checked strictly: a typo in a key would otherwise
 * silently leave a tool green that the user meant to be red. */
#include "approval/approval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/io.h"

#define POLICY_CONFIG_MAX (4u << 20)
#define POLICY_GLOB_MAX 256 /* bytes in one glob or word */

/* A read-only tool's name starts with one of these words. */
static const char *const policy_readonly_default[] = {
	"read", "list", "get", "search", "find", "query", "show", "describe", "view",
	"open", "lookup", "inspect", "count", "stat", "fetch", NULL,
};

/* Any of these words anywhere in the name makes it mutating, whatever it
 * starts with ("get_or_create", "read_and_delete"). */
static const char *const policy_mutating_default[] = {
	"write", "delete", "remove", "rm", "create", "update", "set", "put", "post",
	"send", "exec", "execute", "run", "move", "mv", "rename", "edit", "add",
	"insert", "drop", "kill", "push", "apply", "install", "modify", "patch",
	"upload", "truncate", "clear", "reset", "merge", "commit", "publish",
	"replace", "append", "save", "destroy", "purge", "revoke", "grant", NULL,
};

static char **policy_strv_dup(const char *const *src)
{
	size_t n = 0;
	while (src[n])
		n++;
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!(v[i] = strdup(src[i]))) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void policy_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int approval_policy_init(struct approval_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->timeout_ms = APPROVAL_TIMEOUT_MS_DEFAULT;
	p->readonly_words = policy_strv_dup(policy_readonly_default);
	p->mutating_words = policy_strv_dup(policy_mutating_default);
	if (!p->readonly_words || !p->mutating_words) {
		approval_policy_free(p);
		return -ENOMEM;
	}
	return 0;
}

void approval_policy_free(struct approval_policy *p)
{
	if (!p)
		return;
	policy_strv_free(p->red);
	policy_strv_free(p->green);
	policy_strv_free(p->readonly_words);
	policy_strv_free(p->mutating_words);
	memset(p, 0, sizeof(*p));
}

/* Reads an array of short strings into an owned NULL-terminated vector. */
static int policy_strv_from_json(const json_t *arr, const char *key, size_t max, char ***out,
				 struct err *e)
{
	if (!json_is_array(arr))
		return err_set(e, -EINVAL, "config \"approval\": \"%s\" must be an array of strings", key);
	size_t n = json_array_size(arr);
	if (n > max)
		return err_set(e, -E2BIG, "config \"approval\": \"%s\" has %zu entries, at most %zu",
			       key, n, max);
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return err_set(e, -ENOMEM, "config \"approval\": out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(arr, i));
		size_t len = s ? strlen(s) : 0;
		if (!s || !len || len > POLICY_GLOB_MAX) {
			policy_strv_free(v);
			return err_set(e, -EINVAL, "config \"approval\": \"%s\"[%zu] must be a string of "
				       "1 to %d bytes", key, i, POLICY_GLOB_MAX);
		}
		if (!(v[i] = strdup(s))) {
			policy_strv_free(v);
			return err_set(e, -ENOMEM, "config \"approval\": out of memory");
		}
	}
	policy_strv_free(*out);
	*out = v;
	return 0;
}

int approval_policy_from_json(struct approval_policy *p, const json_t *section, struct err *e)
{
	if (!json_is_object(section))
		return err_set(e, -EINVAL, "config: \"approval\" must be an object");
	const char *key;
	json_t *val;
	/* json_object_foreach wants a non-const object; we only read. */
	json_object_foreach((json_t *)section, key, val) {
		int rc;
		if (!strcmp(key, "red"))
			rc = policy_strv_from_json(val, key, APPROVAL_RULES_MAX, &p->red, e);
		else if (!strcmp(key, "green"))
			rc = policy_strv_from_json(val, key, APPROVAL_RULES_MAX, &p->green, e);
		else if (!strcmp(key, "readOnlyWords"))
			rc = policy_strv_from_json(val, key, APPROVAL_WORDS_MAX, &p->readonly_words, e);
		else if (!strcmp(key, "mutatingWords"))
			rc = policy_strv_from_json(val, key, APPROVAL_WORDS_MAX, &p->mutating_words, e);
		else if (!strcmp(key, "promptTimeoutS")) {
			json_int_t s = json_integer_value(val);
			if (!json_is_integer(val) || s < 1 || s > 86400)
				return err_set(e, -EINVAL, "config \"approval\": \"promptTimeoutS\" must be "
					       "a whole number of seconds from 1 to 86400");
			p->timeout_ms = (unsigned)s * 1000u;
			rc = 0;
		} else
			return err_set(e, -EINVAL, "config \"approval\": unknown key \"%s\" (known: red, "
				       "green, readOnlyWords, mutatingWords, promptTimeoutS)", key);
		if (rc)
			return rc;
	}
	return 0;
}

int approval_policy_load(struct approval_policy *p, const char *path, struct err *e)
{
	char *text = NULL;
	size_t len = 0;
	int rc = io_read_file(path, POLICY_CONFIG_MAX, &text, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return err_set(e, rc, "reading %s: %s", path, strerror(-rc));
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!json_is_object(root)) {
		json_decref(root);
		return err_set(e, -EINVAL, "%s: not a JSON object (line %d: %s)", path, je.line, je.text);
	}
	const json_t *section = json_object_get(root, "approval");
	rc = section ? approval_policy_from_json(p, section, e) : 0;
	if (rc)
		err_wrap(e, "%s", path);
	json_decref(root);
	return rc;
}
