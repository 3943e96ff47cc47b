/* Progress on stderr, one line per step, and the short target of a call. The
 * model's and the guest's text is escaped: nothing they write can drive the
 * user's terminal. */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/internal.h"

void agent_progress(struct agent_run *r, const char *fmt, ...)
{
	FILE *f = r->o->progress;
	if (!f || r->o->json)
		return;
	if (r->progress_open) {
		fputs("\r\033[K", f);   /* replace the step's "running" line */
		r->progress_open = 0;
	}
	va_list ap;
	va_start(ap, fmt);
	fprintf(f, "ironclaw: ");
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	fflush(f);
	va_end(ap);
}

void agent_progress_begin(struct agent_run *r, const char *fmt, ...)
{
	FILE *f = r->o->progress;
	if (!f || r->o->json || !isatty(fileno(f)))
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(f, "ironclaw: ");
	vfprintf(f, fmt, ap);
	va_end(ap);
	fflush(f);
	r->progress_open = 1;
}

static void agent_clean(const char *in, size_t n, char *out, size_t cap)
{
	size_t w = 0;
	for (size_t i = 0; i < n && w + 4 < cap; i++) {
		unsigned char c = (unsigned char)in[i];
		out[w++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	if (w + 4 >= cap && n > 0) {
		memcpy(out + (w > 3 ? w - 3 : 0), "...", 3);
	}
	out[w] = '\0';
}

void agent_call_target(const char *name, json_t *args, char *out, size_t cap)
{
	const char *s = NULL;
	if (!strcmp(name, "run_command"))
		s = json_string_value(json_object_get(args, "command"));
	else
		s = json_string_value(json_object_get(args, "path"));
	char *dump = NULL;
	if (!s && args) {
		dump = json_dumps(args, JSON_COMPACT);
		s = dump;
	}
	size_t n = s ? strlen(s) : 0;
	if (cap > 64)
		cap = 64;
	agent_clean(s ? s : "", n, out, cap);
	free(dump);
}
