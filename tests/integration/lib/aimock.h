/* @copilotkit/aimock (npm, pinned in tests/peers) as a test peer: a fake model
 * endpoint that serves the real OpenAI and Anthropic wire formats from a
 * fixture file. Each test starts its own on a free loopback port, so its
 * journal (/__aimock/journal: every request our client really sent) holds only
 * that test's requests, and stops it at the end. */
#ifndef IRONCLAW_TESTS_AIMOCK_H
#define IRONCLAW_TESTS_AIMOCK_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct aimock {
	pid_t pid;
	char url[128];          /* http://127.0.0.1:PORT, no trailing slash */
	int port;
	char log[96];           /* its stdout and stderr */
	int have_log;           /* log was created (and is removed at stop) */
	char why[512];          /* what went wrong, when a call returns < 0 */
};

/* Starts aimock on fixtures (a path; a bare name is looked up in
 * $IRONCLAW_ROOT/tests/peers/aimock/), with inbound key checking when keys is
 * set, and waits (up to 30 s) for it to listen. Returns 0, or -errno with
 * m->why set. */
int aimock_start(struct aimock *m, const char *fixtures, const char *keys);
/* Stops it (SIGTERM, then waits); safe on a never-started or stopped one. */
void aimock_stop(struct aimock *m);
/* GET /__aimock/journal (with "Authorization: Bearer key" when key is set) as
 * a JSON array; *raw_out (optional) gets the raw body. NULL on failure. */
json_t *aimock_journal(struct aimock *m, const char *key, char **raw_out);
/* The journal's entries whose path ends with suffix (NULL: all). */
size_t aimock_journal_count(json_t *journal, const char *suffix);

#endif
