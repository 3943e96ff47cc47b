/* Human-readable rendering of MCP results: text as is, binary content as a
 * one-line summary (type, MIME type, decoded size), links and embedded
 * resources by URI, and structuredContent as indented JSON. Server text is
 * printed without terminal control characters, so a server cannot drive the
 * user's terminal. */
#include "mcp/mcp.h"

#include <string.h>

static void render_text(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 && ch != '\n' && ch != '\t')
			fputc('?', f);
		else if (ch == 0x7f)
			fputc('?', f);
		else
			fputc(ch, f);
	}
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : dflt;
}

static size_t b64_size(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return 0;
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	size_t pad = (n > 0 && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
	return n / 4 * 3 - pad;
}

static void render_resource(FILE *f, json_t *r)
{
	json_t *text = json_object_get(r, "text");
	if (json_is_string(text)) {
		fprintf(f, "[resource %s]\n", str_or(r, "uri", "?"));
		render_text(f, json_string_value(text), json_string_length(text));
		fputc('\n', f);
	} else {
		fprintf(f, "[resource %s: %s, %zu bytes]\n", str_or(r, "uri", "?"),
			str_or(r, "mimeType", "binary"), b64_size(r, "blob"));
	}
}

void mcp_render_content(FILE *f, json_t *c)
{
	const char *type = str_or(c, "type", "");
	if (!strcmp(type, "text")) {
		json_t *t = json_object_get(c, "text");
		if (json_is_string(t))
			render_text(f, json_string_value(t), json_string_length(t));
		fputc('\n', f);
	} else if (!strcmp(type, "image") || !strcmp(type, "audio")) {
		fprintf(f, "[%s %s, %zu bytes]\n", type, str_or(c, "mimeType", "?"),
			b64_size(c, "data"));
	} else if (!strcmp(type, "resource_link")) {
		fprintf(f, "[resource link %s", str_or(c, "uri", "?"));
		const char *name = str_or(c, "name", NULL);
		if (name)
			fprintf(f, " (%s)", name);
		fprintf(f, "]\n");
	} else if (!strcmp(type, "resource")) {
		render_resource(f, json_object_get(c, "resource"));
	} else {
		fprintf(f, "[content of unknown type '%s']\n", type);
	}
}

void mcp_render_result(FILE *f, json_t *result)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(result, "content"), i, c)
		mcp_render_content(f, c);
	json_array_foreach(json_object_get(result, "contents"), i, c)
		render_resource(f, c);
	json_array_foreach(json_object_get(result, "messages"), i, c) {
		fprintf(f, "%s: ", str_or(c, "role", "?"));
		mcp_render_content(f, json_object_get(c, "content"));
	}
	json_t *sc = json_object_get(result, "structuredContent");
	if (sc) {
		char *s = json_dumps(sc, JSON_INDENT(2) | JSON_ENCODE_ANY);
		if (s) {
			fprintf(f, "structured content:\n");
			render_text(f, s, strlen(s));
			fputc('\n', f);
		}
		free(s);
	}
}
