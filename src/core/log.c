/* Leveled logging: see log.h. The level is read once from the environment. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int log_level_current = -1;

static int log_level_from_env(void)
{
	const char *v = getenv("IRONCLAW_LOG");
	if (!v)
		return LOG_WARN;
	if (!strcmp(v, "error"))
		return LOG_ERROR;
	if (!strcmp(v, "info"))
		return LOG_INFO;
	if (!strcmp(v, "debug"))
		return LOG_DEBUG;
	return LOG_WARN;
}

int log_enabled(enum log_level lvl)
{
	if (log_level_current < 0)
		log_level_current = log_level_from_env();
	return (int)lvl <= log_level_current;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	if (!log_enabled(lvl))
		return;
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ironclaw: %s: %s\n", names[lvl], line);
}
