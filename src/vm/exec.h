/* Running commands in a ready VM through the guest agent (exec.* methods).
 *
 * Output arrives as binary output frames (or exec.output notifications) and the
 * end as an exec.exit notification, tied to the exec.start request id; vm.c
 * routes them here. Every message is checked strictly (proto/msg.h): an unknown
 * exec id, a bad stream, bad base64 or an unknown field is a protocol violation
 * and closes the channel. Several execs may run at once.
 *
 * The guest is never trusted to stop: with timeout_ms > 0 the host keeps its
 * own timer at timeout_ms + VM_EXEC_GRACE_MS; when it fires the exec finishes
 * with timed_out = 1 and an err saying the guest did not stop it, and the owner
 * must destroy the VM (its guest is not behaving).
 *
 * Stdin moves on credit: at most VM_EXEC_STDIN_WINDOW bytes are sent and not
 * yet acknowledged by exec.stdin replies (the guest answers once the bytes
 * reached the command's pipe); the rest waits in a host queue capped at
 * VM_EXEC_STDIN_QUEUE_MAX. */
#ifndef IRONCLAW_VM_EXEC_H
#define IRONCLAW_VM_EXEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "proto/frame.h"

#define VM_EXEC_GRACE_MS 2000
#define VM_EXEC_STDIN_WINDOW (8u << 20)       /* unacknowledged stdin bytes */
#define VM_EXEC_STDIN_REQS 48                 /* unacknowledged exec.stdin requests */
#define VM_EXEC_STDIN_CHUNK (256u * 1024)     /* bytes per exec.stdin frame */
#define VM_EXEC_STDIN_QUEUE_MAX (8u << 20)    /* host-side queue behind the window */

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
	int timed_out;            /* the timeout killed it; with err set: the guest did
				   * not stop it and the host gave up (destroy the VM) */
	/* The guest could not execute argv[0]: its errno (ENOENT, EACCES, ...), with
	 * err saying so; 0 otherwise. Shells exit 127 or 126 for these. */
	int exec_errno;
	struct err err;           /* set when the exec could not run or the VM failed */
};

struct vm_exec_handlers {
	/* stream is 1 (stdout) or 2 (stderr); data borrowed. */
	void (*output)(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx);
	/* Optional: an exec.stdin acknowledgement returned credit; callers feeding
	 * bulk stdin send more now (see vm_exec_stdin_pending). */
	void (*stdin_credit)(struct vm_exec *x, void *ctx);
	/* Last call for this exec; the handle is freed after it returns. */
	void (*done)(struct vm_exec *x, const struct vm_exec_result *r, void *ctx);
};

/* Starts argv in the VM. The handle is owned by the VM until `done` runs. */
int vm_exec_start(struct vm *vm, const struct vm_exec_spec *spec,
		  const struct vm_exec_handlers *h, void *ctx, struct vm_exec **out,
		  struct err *e);
/* Queues stdin bytes (copied) and/or closes stdin (eof). Returns 0, -ENOBUFS
 * when the host queue would pass VM_EXEC_STDIN_QUEUE_MAX (wait until
 * vm_exec_stdin_pending drops), -EPIPE once stdin is closed or the command
 * stopped taking it, or another negative errno. */
int vm_exec_write_stdin(struct vm_exec *x, const void *data, size_t len, int eof);
/* Stdin bytes queued on the host or sent and not yet acknowledged. */
size_t vm_exec_stdin_pending(const struct vm_exec *x);
int vm_exec_kill(struct vm_exec *x, int signal);

/* For vm.c: handles exec.output / exec.exit. Returns 1 if handled, 0 if the
 * method is not an exec notification, or a negative errno (with e set). */
int vm_exec_route(struct vm *vm, const char *method, json_t *params, struct err *e);
/* For vm.c: a binary output frame. Returns 0 or a negative errno (e set). */
int vm_exec_route_data(struct vm *vm, const struct frame_bin *b, struct err *e);
/* For vm.c: the VM failed or is going away; every running exec gets `done`
 * with the error. */
void vm_exec_abort_all(struct vm *vm, const struct err *why);

#endif
