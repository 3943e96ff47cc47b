/* Error message chains: see err.h. Truncation is acceptable; losing the error
 * itself is not, so every path here writes something into the buffer. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char prefix[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);

	/* Build "prefix: old" in place; truncation keeps the prefix, which is the
	 * part that says where the failure happened. */
	size_t plen = strnlen(prefix, sizeof(prefix) - 3);
	size_t olen = strnlen(e->msg, sizeof(e->msg) - 1);
	if (plen + 2 + olen > sizeof(e->msg) - 1)
		olen = sizeof(e->msg) - 1 - plen - 2;
	memmove(e->msg + plen + 2, e->msg, olen);
	memcpy(e->msg, prefix, plen);
	e->msg[plen] = ':';
	e->msg[plen + 1] = ' ';
	e->msg[plen + 2 + olen] = '\0';
	return e->code;
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}
