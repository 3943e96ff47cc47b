/* A child on a REAL pseudo-terminal, for the approval prompt tests: forkpty
 * makes the pty the child's controlling terminal, so the code under test opens
 * the real /dev/tty, while its stdout goes to a file the test reads afterwards
 * (it must hold no prompt). The test plays the person at the master side: it
 * waits for a question to appear (an event: bytes on the master) and types. */
#ifndef IRONCLAW_TESTS_PTY_H
#define IRONCLAW_TESTS_PTY_H

#include <sys/types.h>

#include "core/buf.h"

struct pty_child {
	pid_t pid;
	int master;
	struct buf screen;      /* everything the "terminal" showed, NUL-terminated */
};

/* Forks; the child gets stdout on out_fd and runs child(arg), which must not
 * return (it execs or _exits). Returns 0, or -errno. */
int pty_child_start(struct pty_child *p, int out_fd, void (*child)(void *arg), void *arg);
/* Reads the master until want (NULL: nothing) has appeared on the screen (1),
 * the child closed the terminal or the time ran out (0). */
int pty_child_await(struct pty_child *p, const char *want, unsigned timeout_ms);
/* Types s at the terminal. Returns 0, or -errno. */
int pty_child_say(struct pty_child *p, const char *s);
/* Drains the terminal until the child exits; *status gets its wait status.
 * Returns 0, or -ETIMEDOUT after killing a child that did not finish. Closes
 * the master either way; the screen stays readable until pty_child_free. */
int pty_child_wait(struct pty_child *p, unsigned timeout_ms, int *status);
void pty_child_free(struct pty_child *p);

#endif
