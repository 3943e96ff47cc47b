/* Leveled logging to stderr. The level comes from IRONCLAW_LOG (error, warn,
 * info, debug; default warn) so that normal runs print only what the user needs.
 * Never log secrets: callers pass redacted values. */
#ifndef IRONCLAW_CORE_LOG_H
#define IRONCLAW_CORE_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_enabled(enum log_level lvl);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
