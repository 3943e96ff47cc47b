/* Running commands in a ready VM through the guest agent (exec.* methods).
 *
 * Output and exit arrive as notifications tied to the exec.start request id;
 * vm.c routes them here with vm_exec_route. Every notification is validated:
 * an unknown exec id, a bad stream name or bad base64 is a protocol violation
 * and closes the channel. Several execs may run at once. */
#ifndef IRONCLAW_VM_EXEC_H
#define IRONCLAW_VM_EXEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct vm;
struct vm_exec;

struct vm_exec_spec {
	char *const *argv;        /* required, argv[0] non-empty */
	char *const *env;         /* "K=V" strings, NULL-terminated; NULL: guest default */
	const char *cwd;          /* NULL: "/" */
	unsigned timeout_ms;      /* 0: none */
	int want_stdin;           /* 1: stdin is a pipe fed by vm_exec_write_stdin */
};

struct vm_exec_result {
	int started;              /* the guest started the process */
	int code;                 /* exit code, when signal == 0 */
	int signal;               /* terminating signal, or 0 */
	int timed_out;
	/* The guest could not execute argv[0]: its errno (ENOENT, EACCES, ...), with
	 * err saying so; 0 otherwise. Shells exit 127 or 126 for these. */
	int exec_errno;
	struct err err;           /* set when the exec could not run or the VM failed */
};

struct vm_exec_handlers {
	/* stream is 1 (stdout) or 2 (stderr); data borrowed. */
	void (*output)(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx);
	/* Last call for this exec; the handle is freed after it returns. */
	void (*done)(struct vm_exec *x, const struct vm_exec_result *r, void *ctx);
};

/* Starts argv in the VM. The handle is owned by the VM until `done` runs. */
int vm_exec_start(struct vm *vm, const struct vm_exec_spec *spec,
		  const struct vm_exec_handlers *h, void *ctx, struct vm_exec **out,
		  struct err *e);
/* Sends stdin bytes (copied) and/or closes stdin. */
int vm_exec_write_stdin(struct vm_exec *x, const void *data, size_t len, int eof);
int vm_exec_kill(struct vm_exec *x, int signal);

/* For vm.c: handles exec.output / exec.exit. Returns 1 if handled, 0 if the
 * method is not an exec notification, or a negative errno (with e set). */
int vm_exec_route(struct vm *vm, const char *method, json_t *params, struct err *e);
/* For vm.c: the VM failed or is going away; every running exec gets `done`
 * with the error. */
void vm_exec_abort_all(struct vm *vm, const struct err *why);

#endif
