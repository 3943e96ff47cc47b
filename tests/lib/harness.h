/* Test harness: run a real binary with arguments, feed it stdin, capture its
 * stdout and stderr separately (capped), and time it. Integration tests drive
 * the real `ironclaw` this way, as a user would. */
#ifndef IRONCLAW_TESTS_HARNESS_H
#define IRONCLAW_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct run_result {
	int status;          /* raw waitpid status */
	int exit_code;       /* WEXITSTATUS, or 128+signal */
	char *out;           /* owned, NUL-terminated */
	size_t out_len;
	char *err;           /* owned, NUL-terminated */
	size_t err_len;
	double elapsed_ms;
	int timed_out;       /* killed by the harness after timeout_ms */
};

/* Runs argv (argv[0] is a path) with optional stdin bytes, waits up to
 * timeout_ms. Returns 0, or -errno if it could not be started. */
int harness_run(char *const *argv, const char *stdin_data, size_t stdin_len,
		unsigned timeout_ms, struct run_result *r);
void harness_result_free(struct run_result *r);

/* Starts argv in the background with stdout/stderr to files in dir; returns pid. */
pid_t harness_spawn(char *const *argv, const char *out_path, const char *err_path);
/* Waits up to timeout_ms for pid; returns the status, or -ETIMEDOUT. */
int harness_wait(pid_t pid, unsigned timeout_ms, double *elapsed_ms);

/* The ironclaw binary under test ($IRONCLAW_BIN, else build/ironclaw). */
const char *harness_ironclaw(void);
/* $IRONCLAW_ROOT or ".". */
const char *harness_root(void);
double harness_now_ms(void);

/* Pids of running processes whose executable is `exe_basename` and whose
 * ancestry includes `ancestor` (0: any), leaving out ironclaw's one-time KVM
 * probe boot. Returns the count (up to max). */
int harness_find_processes(const char *exe_basename, pid_t ancestor, pid_t *pids, int max);
/* Polls until such a process exists; returns its pid, or 0 after timeout_ms. */
pid_t harness_await_process(const char *exe_basename, pid_t ancestor, unsigned timeout_ms);
/* Number of entries in /run/ironclaw (VM directories left behind). */
int harness_count_vm_dirs(void);
/* SHA-256 of a buffer as hex, computed by the host's sha256sum. */
int harness_sha256(const void *data, size_t len, char hex[65]);

#endif
