/* THE classifier: green (runs at once) or red (needs an approval), red first.
 *
 * This is the only place in IronClaw that decides whether an action is
 * dangerous; the agent loop, the CLI and the docs all defer to it. The rules,
 * in the order they are tried (the first that applies wins):
 *
 *   1. no name, or a name no one offered (neither an in-VM tool nor a tool
 *      listed by an MCP server): red;
 *   2. a "red" glob of the policy matches: red;
 *   3. a "green" glob of the policy matches: green;
 *   4. an in-VM tool: green (the VM is disposable and offline unless --net);
 *   5. an MCP tool is green only when BOTH its name reads as read-only (it
 *      starts with a read-only word and has no mutating word anywhere) AND its
 *      server marks it readOnlyHint: true without destructiveHint: true;
 *   6. everything else: red.
 *
 * Annotations come from a server we only half trust, so they can only ever
 * narrow what the name already suggests, and the user's globs (2, 3) beat
 * them both ways. Applying workspace changes to the host is always red. */
#include "approval/approval.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CLASSIFY_WORDS_MAX 32
#define CLASSIFY_WORD_LEN 48

/* A name from a server or the model, safe for a one-line reason. */
static void classify_quote(char *dst, size_t len, const char *s)
{
	size_t o = 0;
	for (; s && *s && o + 4 < len; s++)
		dst[o++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	if (s && *s && o + 4 >= len)
		memcpy(dst + o, "...", 3), o += 3;
	dst[o] = 0;
}

__attribute__((format(printf, 3, 4)))
static void classify_set(struct approval_class_result *out, enum approval_class cls,
			 const char *fmt, ...)
{
	va_list ap;
	out->cls = cls;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

static int classify_is_vm_tool(const char *name)
{
	static const char *const vm_tools[] = { APPROVAL_VM_TOOLS, NULL };
	for (const char *const *t = vm_tools; *t; t++)
		if (!strcmp(name, *t))
			return 1;
	return 0;
}

static const char *classify_glob(char *const *globs, const char *name)
{
	for (char *const *g = globs; g && *g; g++)
		if (fnmatch(*g, name, 0) == 0)
			return *g;
	return NULL;
}

static int classify_in(char *const *words, const char *w)
{
	for (char *const *p = words; p && *p; p++)
		if (!strcasecmp(*p, w))
			return 1;
	return 0;
}

/* Splits a tool name into lowercase words at '_', '-', '.', blanks and
 * camelCase humps ("readFile" -> read, file). Returns the count. */
static size_t classify_words(const char *s, char w[][CLASSIFY_WORD_LEN], size_t max)
{
	size_t n = 0, len = 0;
	for (const char *c = s;; c++) {
		int sep = !*c || *c == '_' || *c == '-' || *c == '.' || isspace((unsigned char)*c);
		int hump = !sep && len && isupper((unsigned char)*c) && islower((unsigned char)c[-1]);
		if ((sep || hump) && len) {
			if (n == max)
				return n;
			w[n++][len] = 0;
			len = 0;
		}
		if (!*c)
			break;
		if (!sep && n < max && len + 1 < CLASSIFY_WORD_LEN)
			w[n][len++] = (char)tolower((unsigned char)*c);
	}
	return n;
}

/* Rule 5: both the name and the annotations must say read-only. */
static void classify_mcp(const struct approval_policy *p, const char *name, const char *tool,
			 const json_t *desc, struct approval_class_result *out)
{
	char q[96];
	classify_quote(q, sizeof(q), name);
	char words[CLASSIFY_WORDS_MAX][CLASSIFY_WORD_LEN];
	size_t n = classify_words(tool, words, CLASSIFY_WORDS_MAX);
	if (n == CLASSIFY_WORDS_MAX) {
		classify_set(out, APPROVAL_RED, "%s: a name of too many words is not read as read-only", q);
		return;
	}
	if (!n || !classify_in(p->readonly_words, words[0])) {
		classify_set(out, APPROVAL_RED, "%s: the name does not start with a read-only word", q);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (classify_in(p->mutating_words, words[i])) {
			classify_set(out, APPROVAL_RED, "%s: the name has the mutating word \"%s\"", q,
				     words[i]);
			return;
		}
	}
	const json_t *ann = json_object_get(desc, "annotations");
	if (!json_is_true(json_object_get(ann, "readOnlyHint"))) {
		classify_set(out, APPROVAL_RED, "%s: its server does not mark it readOnlyHint", q);
		return;
	}
	if (json_is_true(json_object_get(ann, "destructiveHint"))) {
		classify_set(out, APPROVAL_RED, "%s: its server marks it destructiveHint", q);
		return;
	}
	classify_set(out, APPROVAL_GREEN, "%s: read-only by name and by its server's annotations", q);
}

void approval_classify_tool(const struct approval_policy *p, const char *name,
			    const json_t *mcp_tool, struct approval_class_result *out)
{
	char q[96];
	const char *sep = name ? strstr(name, "__") : NULL;
	if (!name || !*name) {
		classify_set(out, APPROVAL_RED, "a call without a tool name");
		return;
	}
	classify_quote(q, sizeof(q), name);
	int vm = classify_is_vm_tool(name);
	/* Rule 1: the server's listing must name this very tool. */
	const char *listed = json_string_value(json_object_get(mcp_tool, "name"));
	if (!vm && (!sep || !sep[2] || sep == name || !mcp_tool || !listed || strcmp(listed, sep + 2))) {
		classify_set(out, APPROVAL_RED, "%s: unknown tool (not in the VM, not listed by a server)", q);
		return;
	}
	const char *g;
	if ((g = classify_glob(p->red, name))) {
		classify_set(out, APPROVAL_RED, "%s: policy marks \"%s\" red", q, g);
		return;
	}
	if ((g = classify_glob(p->green, name))) {
		classify_set(out, APPROVAL_GREEN, "%s: policy marks \"%s\" green", q, g);
		return;
	}
	if (vm) {
		classify_set(out, APPROVAL_GREEN, "%s: runs inside the disposable VM", q);
		return;
	}
	classify_mcp(p, name, sep + 2, mcp_tool, out);
}

void approval_classify_changes(struct approval_class_result *out)
{
	classify_set(out, APPROVAL_RED, "applying workspace changes to the host is always red");
}
