/* Workspace builtins: copy-in and copy-out done by the agent itself.
 *
 * An exec.start whose argv[0] is "@ws-unpack" or "@ws-pack" runs inside the
 * agent instead of forking a program, with exec semantics on the wire, so the
 * host drives it through vm_exec like any command (stdin credit, output
 * frames, exec.exit, exec.kill, its own deadline):
 *
 *   ["@ws-unpack", DIR]  creates DIR (mkdir -p) and unpacks the tar stream
 *                        that arrives as exec.stdin into it (untar.c); needs
 *                        "stdin":true; exec.exit code 0 once the stream ended
 *                        at its end-of-archive marker, else code 1 with the
 *                        reason on stderr.
 *   ["@ws-pack", DIR]    streams DIR as a tar on stdout (wspack.c), then
 *                        exec.exit code 0; code 1 with the reason on stderr.
 *
 * Why: busybox tar on the exec's pipes cost copy-in most of its time (it reads
 * a pipe in small pieces, a context switch each under TCG) and copy-out a
 * pipe crossing per byte (docs/bench.md, Agent). Here the bytes go from the
 * received frame straight into the file, and from the file straight into the
 * outgoing frame. One builtin runs at a time. The guest keeps no timer for
 * them: the host's exec deadline is what bounds them. */
#ifndef IRONCLAW_GUEST_WS_H
#define IRONCLAW_GUEST_WS_H

#include "guest/guest.h"

#define GUEST_WS_CHUNK (1u << 20)   /* bytes per output frame of @ws-pack */

/* dispatch.c: exec.start / exec.kill go here first. Returns 0 (handled, reply
 * queued), 1 (not a builtin: the caller runs the ordinary handler), or a
 * negative errno (fatal, as the handlers' returns). */
int guest_ws_exec_start(struct guest *g, json_int_t id, json_t *params);
int guest_ws_exec_kill(struct guest *g, json_int_t id, json_t *params);
/* A binary stdin frame for exec id `exec`: same returns. */
int guest_ws_stdin(struct guest *g, const struct frame_bin *b);
/* loop.c: produces @ws-pack output while the outbound queue has room.
 * Returns 1 when there is more to produce right away (poll without waiting),
 * 0 when idle or waiting for the channel, or a negative errno. */
int guest_ws_pump(struct guest *g);
/* Connection end: drops a running builtin. */
void guest_ws_abort(void);

#endif
