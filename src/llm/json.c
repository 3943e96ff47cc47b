/* JSON and text helpers for model replies: a nesting scan that runs before
 * jansson sees hostile text (jansson's own limit is 2048 levels, far past
 * what a reply needs and deep enough to hurt), one-line rendering of what a
 * server says in an error (printable, bounded, key redacted), and extraction
 * of the message from the error bodies both providers send. */
#include "llm/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int llm_json_depth_ok(const char *p, size_t n, int max)
{
	int depth = 0, in_str = 0, esc = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (in_str) {
			if (esc)
				esc = 0;
			else if (ch == '\\')
				esc = 1;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == '"') {
			in_str = 1;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return 0;
		} else if (ch == ']' || ch == '}') {
			depth--;
		}
	}
	return 1;
}

json_t *llm_json_parse(const char *p, size_t n, int depth_max, enum llm_error_kind *kind,
		       struct err *e)
{
	if (!llm_json_depth_ok(p, n, depth_max)) {
		*kind = LLM_ERR_TOO_LARGE;
		err_set(e, -EMSGSIZE, "JSON nested deeper than %d levels", depth_max);
		return NULL;
	}
	json_error_t je;
	json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!v) {
		*kind = LLM_ERR_MALFORMED;
		err_set(e, -EBADMSG, "invalid JSON at offset %d: %s", je.position, je.text);
	}
	return v;
}

void llm_text_line(char *out, size_t outsz, const char *s, size_t n, const char *key)
{
	if (outsz == 0)
		return;
	size_t klen = key ? strlen(key) : 0;
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < outsz;) {
		if (klen > 0 && n - i >= klen && !memcmp(s + i, key, klen)) {
			const char *r = "[REDACTED]";
			for (; *r && o + 1 < outsz; r++)
				out[o++] = *r;
			i += klen;
			continue;
		}
		unsigned char ch = (unsigned char)s[i++];
		out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	out[o] = '\0';
	/* A key cut at the end of the window must not leak its prefix either:
	 * drop a tail that is the start of the key. */
	if (klen > 1 && o > 0) {
		for (size_t t = klen - 1 < o ? klen - 1 : o; t >= 4; t--)
			if (!memcmp(out + o - t, key, t)) {
				out[o - t] = '\0';
				break;
			}
	}
}

int llm_redact(char **s, const char *key)
{
	size_t klen = key ? strlen(key) : 0;
	if (!*s || klen == 0 || !strstr(*s, key))
		return 0;
	static const char rep[] = "[REDACTED]";
	size_t count = 0;
	for (const char *q = *s; (q = strstr(q, key)); q += klen)
		count++;
	size_t len = strlen(*s);
	size_t outlen = len - count * klen + count * (sizeof(rep) - 1);
	char *out = malloc(outlen + 1);
	if (!out)
		return -ENOMEM;
	char *w = out;
	const char *q = *s, *hit;
	while ((hit = strstr(q, key))) {
		memcpy(w, q, (size_t)(hit - q));
		w += hit - q;
		memcpy(w, rep, sizeof(rep) - 1);
		w += sizeof(rep) - 1;
		q = hit + klen;
	}
	strcpy(w, q);
	free(*s);
	*s = out;
	return 0;
}

void llm_json_copy_str(const json_t *obj, const char *key, char *out, size_t outsz)
{
	const json_t *v = json_object_get(obj, key);
	out[0] = '\0';
	if (!json_is_string(v))
		return;
	size_t n = json_string_length(v);
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, json_string_value(v), n);
	out[n] = '\0';
}

void llm_error_message(const char *body, size_t n, int depth_max, const char *key, char *out,
		       size_t outsz)
{
	out[0] = '\0';
	enum llm_error_kind kind;
	struct err e = { 0 };
	json_t *v = n > 0 ? llm_json_parse(body, n, depth_max, &kind, &e) : NULL;
	const json_t *m = NULL;
	if (json_is_object(v)) {
		const json_t *err = json_object_get(v, "error");
		if (json_is_object(err))
			m = json_object_get(err, "message");
		else if (json_is_string(err))
			m = err;
		if (!json_is_string(m))
			m = json_object_get(v, "message");
		if (!json_is_string(m))
			m = json_object_get(v, "detail");
	}
	if (json_is_string(m)) {
		llm_text_line(out, outsz, json_string_value(m), json_string_length(m), key);
	} else if (!v && n > 0) {
		/* Not JSON (a proxy's HTML page, plain text): its start, on one line. */
		llm_text_line(out, outsz, body, n < 200 ? n : 200, key);
	}
	json_decref(v);
}
