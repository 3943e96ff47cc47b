/* Tool definitions as a server hands them out: which ones the client keeps,
 * and the HTTP headers a kept one asks for.
 *
 * A server's tools/list is hostile input and one bad entry must not cost the
 * caller the good ones, so each definition is checked on its own and a
 * malformed one is skipped with a warning naming the tool and the reason; the
 * CLI and the agent both list through mcp_list_all(), so they see the same
 * tools. A kept definition's inputSchema is passed on exactly as received
 * (JSON Schema 2020-12: $schema, $defs, $anchor, composition, conditionals):
 * the model gets what the server wrote, and no $ref is ever fetched.
 *
 * 2026-07-28 (SEP-2243): a top-level property may carry "x-mcp-header": NAME,
 * and over Streamable HTTP the argument's value then also travels as
 * `Mcp-Param-NAME`. NAME must be a non-empty HTTP token (RFC 9110 tchar:
 * no space, colon, control or non-ASCII byte), unique case-insensitively, and
 * only on a string, integer or boolean property; a definition breaking any of
 * that is malformed. Values are encoded as the spec's "Value Encoding" says:
 * visible ASCII without edge whitespace as is, anything else (or a value that
 * looks like the sentinel) as =?base64?...?= of its UTF-8 bytes. */
#include "mcp/tooldefs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/b64.h"
#include "core/log.h"

#define HEADER_NAME_MAX 64
#define HEADER_VALUE_MAX 4096     /* longer values stay in the body only */
#define SAFE_INTEGER_MAX 9007199254740991LL

static int is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		(ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The property's JSON type when it is a single string ("string", ...), else NULL. */
static const char *prop_type(json_t *prop)
{
	json_t *t = json_object_get(prop, "type");
	return json_is_string(t) ? json_string_value(t) : NULL;
}

int mcp_tooldef_check(json_t *tool, char *why, size_t whylen)
{
	json_t *name = json_object_get(tool, "name");
	if (!json_is_object(tool) || !json_is_string(name) || !json_string_length(name)) {
		snprintf(why, whylen, "it has no \"name\" string");
		return -EINVAL;
	}
	json_t *schema = json_object_get(tool, "inputSchema");
	if (!json_is_object(schema)) {
		snprintf(why, whylen, "its \"inputSchema\" is not an object");
		return -EINVAL;
	}
	json_t *type = json_object_get(schema, "type");
	if (!json_is_string(type) || strcmp(json_string_value(type), "object")) {
		snprintf(why, whylen, "its inputSchema's \"type\" is not \"object\"");
		return -EINVAL;
	}
	json_t *props = json_object_get(schema, "properties");
	if (props && !json_is_object(props)) {
		snprintf(why, whylen, "its inputSchema's \"properties\" is not an object");
		return -EINVAL;
	}
	const char *seen[64];
	size_t nseen = 0;
	const char *key;
	json_t *prop;
	json_object_foreach(props, key, prop) {
		json_t *h = json_object_get(prop, "x-mcp-header");
		if (!h)
			continue;
		const char *hn = json_string_value(h);
		size_t n = hn ? strlen(hn) : 0;
		if (!hn || n == 0 || n > HEADER_NAME_MAX) {
			snprintf(why, whylen, "property '%.64s' has an empty or over-long "
				 "\"x-mcp-header\"", key);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if (!is_tchar((unsigned char)hn[i])) {
				snprintf(why, whylen, "property '%.64s': \"x-mcp-header\" '%.64s' is "
					 "not an HTTP token (no spaces, colons, control or non-ASCII "
					 "characters)", key, hn);
				return -EINVAL;
			}
		const char *t = prop_type(prop);
		if (!t || (strcmp(t, "string") && strcmp(t, "integer") && strcmp(t, "boolean"))) {
			snprintf(why, whylen, "property '%.64s' carries \"x-mcp-header\" but its type "
				 "is %s%.32s%s (only string, integer and boolean may)", key,
				 t ? "'" : "", t ? t : "not a single type", t ? "'" : "");
			return -EINVAL;
		}
		for (size_t i = 0; i < nseen; i++)
			if (!strcasecmp(seen[i], hn)) {
				snprintf(why, whylen, "\"x-mcp-header\" '%.64s' appears twice (names "
					 "are case-insensitive)", hn);
				return -EINVAL;
			}
		if (nseen >= sizeof(seen) / sizeof(seen[0])) {
			snprintf(why, whylen, "more than %zu \"x-mcp-header\" properties",
				 sizeof(seen) / sizeof(seen[0]));
			return -EINVAL;
		}
		seen[nseen++] = hn;
	}
	return 0;
}

json_t *mcp_tooldefs_filter(const char *server, json_t *tools)
{
	json_t *kept = json_array();
	size_t i;
	json_t *t;
	if (!kept)
		return NULL;
	json_array_foreach(tools, i, t) {
		char why[256];
		if (mcp_tooldef_check(t, why, sizeof(why)) == 0) {
			json_array_append(kept, t);
			continue;
		}
		json_t *name = json_object_get(t, "name");
		log_warn("mcp: server '%s': skipping tool '%.64s': %s; the other tools stay usable",
			 server, json_is_string(name) ? json_string_value(name) : "(unnamed)", why);
	}
	return kept;
}

int mcp_header_encode(const char *v, size_t n, char *out, size_t cap)
{
	int plain = n == 0 || (v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t');
	for (size_t i = 0; plain && i < n; i++)
		plain = (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] < 0x7f;
	/* A plain value that looks like the sentinel is encoded too, so decoding is
	 * never ambiguous. */
	if (plain && n >= 11 && !strncmp(v, "=?base64?", 9) && !strcmp(v + n - 2, "?="))
		plain = 0;
	if (plain) {
		if (n + 1 > cap)
			return -E2BIG;
		memcpy(out, v, n);
		out[n] = '\0';
		return 0;
	}
	if (9 + b64_encoded_len(n) + 2 + 1 > cap)
		return -E2BIG;
	memcpy(out, "=?base64?", 9);
	b64_encode((const uint8_t *)v, n, out + 9);
	strcat(out, "?=");
	return 0;
}

/* Appends ["Mcp-Param-NAME", value] for one argument, or nothing when it has
 * no header form (null, absent, too long). */
static void add_param(json_t *out, const char *hname, json_t *v, const char *type)
{
	char text[64];
	const char *s = NULL;
	size_t n = 0;
	if (json_is_string(v) && !strcmp(type, "string")) {
		s = json_string_value(v);
		n = json_string_length(v);
	} else if (json_is_integer(v) && !strcmp(type, "integer")) {
		long long x = (long long)json_integer_value(v);
		if (x > SAFE_INTEGER_MAX || x < -SAFE_INTEGER_MAX)
			return;
		snprintf(text, sizeof(text), "%lld", x);
		s = text;
		n = strlen(text);
	} else if (json_is_boolean(v) && !strcmp(type, "boolean")) {
		s = json_is_true(v) ? "true" : "false";
		n = strlen(s);
	} else {
		return;   /* null or a value of the wrong type: the body alone carries it */
	}
	char name[HEADER_NAME_MAX + 16];
	snprintf(name, sizeof(name), "Mcp-Param-%s", hname);
	/* A NUL inside the string has no header form; the transport encodes the
	 * rest and drops a value too long for a header (the body carries it). */
	if (strlen(s) == n && n < HEADER_VALUE_MAX)
		json_array_append_new(out, json_pack("[ss]", name, s));
}

json_t *mcp_tooldef_param_headers(json_t *tool, json_t *args)
{
	json_t *props = json_object_get(json_object_get(tool, "inputSchema"), "properties");
	json_t *out = NULL;
	const char *key;
	json_t *prop;
	json_object_foreach(props, key, prop) {
		const char *hn = json_string_value(json_object_get(prop, "x-mcp-header"));
		json_t *v = json_object_get(args, key);
		if (!hn || !v)
			continue;
		if (!out && !(out = json_array()))
			return NULL;
		add_param(out, hn, v, prop_type(prop));
	}
	if (out && json_array_size(out) == 0) {
		json_decref(out);
		out = NULL;
	}
	return out;
}
