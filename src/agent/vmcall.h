/* One command in the run's VM with its output captured: the building block of
 * the in-VM tools. stdin bytes (optional) are fed on the exec's credit; stdout
 * and stderr are kept apart, each capped: in head-and-tail mode the first and
 * last halves of the cap are kept and the cut is counted (for command output the
 * model reads), in whole mode the capture fails once over the cap (for file
 * contents, which must be exact). */
#ifndef IRONCLAW_AGENT_VMCALL_H
#define IRONCLAW_AGENT_VMCALL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct vm;

struct vmcall_capture {
	uint8_t *head;        /* owned */
	size_t head_len;
	uint8_t *tail;        /* owned ring, unrolled when the call ends */
	size_t tail_len;
	size_t total;         /* bytes the command wrote on this stream */
	size_t cap;
	int whole;            /* 1: fail past cap instead of cutting */
	size_t ring_pos;
};

struct vmcall_result {
	int exit_code;        /* 128+N for signal N; -1 when it did not run */
	int timed_out;
	struct vmcall_capture out, err;
	int over_cap;         /* whole mode: stdout passed its cap */
	int refused;          /* the guest refused to start it (bad cwd, not executable):
			       * e says why; the VM itself is fine */
	struct err e;         /* set when the command could not run or the VM failed */
};

typedef void (*vmcall_cb)(void *ctx, struct vmcall_result *r);

struct vmcall_spec {
	char *const *argv;
	const char *cwd;
	unsigned timeout_ms;
	const uint8_t *stdin_data;   /* borrowed until cb; NULL: no stdin */
	size_t stdin_len;
	size_t out_cap, err_cap;
	int out_whole;               /* stdout in whole mode */
};

/* Starts the command; cb runs exactly once (possibly before this returns with
 * an error, never both). The result is freed after cb returns. */
int vmcall_start(struct vm *vm, const struct vmcall_spec *spec, vmcall_cb cb, void *ctx,
		 struct err *e);

/* For other transports of the same call (the daemon's, sandbox_daemon.c):
 * the result with its captures set up from spec (exit_code -1), one piece of
 * output added (stream 1 or 2; -EFBIG once a whole-mode stdout passes its
 * cap, and over_cap is set), and the captures freed. */
int vmcall_result_init(struct vmcall_result *r, const struct vmcall_spec *spec);
int vmcall_result_add(struct vmcall_result *r, int stream, const uint8_t *p, size_t n);
void vmcall_result_free(struct vmcall_result *r);

/* The capture as one buffer: head, a visible note of what was cut, tail.
 * Returns owned, NUL-terminated; *len without the NUL. */
char *vmcall_capture_text(const struct vmcall_capture *c, size_t *len);

#endif
