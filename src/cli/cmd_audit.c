/* `ironclaw audit`: shows the recorded security events (seccomp kills of a
 * VMM), oldest first. Loads the append-only log into the bounded ring, so a
 * huge log still costs bounded memory and the dropped count is shown. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "cli/commands.h"

int cmd_audit(int argc, char **argv)
{
	const char *path = audit_log_path();
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: ironclaw audit [--json] [--log PATH]\n\n"
			       "Shows seccomp violations of VMMs (kept in %s, or $IRONCLAW_AUDIT_LOG).\n"
			       "The last %d events are shown; older ones are counted as dropped.\n",
			       AUDIT_LOG_DEFAULT, AUDIT_RING_MAX);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--log") && i + 1 < argc && argv[i + 1][0] == '/') {
			path = argv[++i];
		} else {
			fprintf(stderr, "ironclaw audit: bad option '%s' (hint: --json, --log /absolute/path)\n", argv[i]);
			return 2;
		}
	}
	struct audit_ring *r = malloc(sizeof(*r));
	if (!r) {
		fprintf(stderr, "ironclaw audit: out of memory\n");
		return 1;
	}
	audit_ring_init(r, AUDIT_RING_MAX);
	struct err e = { 0 };
	int rc = 0;
	if (audit_log_load(path, r, &e)) {
		fprintf(stderr, "ironclaw audit: %s\n", e.msg);
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < r->count; i++) {
		const struct audit_event *ev = audit_ring_get(r, i);
		if (json) {
			/* jansson escapes: the log is ours but may have been edited. */
			json_t *o = json_pack("{s:I, s:s, s:s, s:i, s:I, s:s, s:s}", "time", (json_int_t)ev->time, "kind",
					      ev->kind, "vm", ev->vm_id, "pid", ev->pid, "syscall", (json_int_t)ev->syscall,
					      "syscall_name", ev->syscall_name, "detail", ev->detail);
			if (o) {
				json_dumpf(o, stdout, JSON_COMPACT);
				putchar('\n');
				json_decref(o);
			}
			continue;
		}
		char when[32];
		time_t t = (time_t)ev->time;
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		printf("%s %-8s vm=%s pid=%d syscall=%s (%ld) %s\n", when, ev->kind, ev->vm_id, ev->pid,
		       ev->syscall_name[0] ? ev->syscall_name : "?", ev->syscall, ev->detail);
	}
	if (!json)
		printf("%zu event%s shown, %llu older dropped (ring capacity %zu)\n", r->count, r->count == 1 ? "" : "s",
		       (unsigned long long)r->dropped, r->cap);
out:
	free(r);
	return rc;
}
