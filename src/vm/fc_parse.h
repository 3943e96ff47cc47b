/* The two things Firecracker (or whatever answers on its sockets) sends us that
 * we must parse ourselves: an API response (status + body) and the vsock
 * handshake's `OK <port>\n` line. Both come from a process that runs next to a
 * guest and is therefore untrusted: lengths are capped before anything is
 * parsed, nothing is NUL-terminated on trust, and anything outside the
 * specification is refused rather than guessed at. Pure functions (libc and
 * jansson), so the fuzz targets link them alone.
 *
 * Why hand-written: the OK line is one line of a tiny protocol no library
 * speaks, and the response check is the spec's rule (a 2xx carries nothing we
 * need; anything else carries an Error object whose `fault_message` we must
 * surface verbatim) applied to jansson's parse. */
#ifndef IRONCLAW_VM_FC_PARSE_H
#define IRONCLAW_VM_FC_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Largest API response body we read; Firecracker's own errors are a few
 * hundred bytes, and the largest body we ask for (GET /vm/config) is a few KiB. */
#define FC_API_BODY_MAX (64u * 1024)
/* Longest fault_message we keep (it goes into a struct err with context). */
#define FC_FAULT_MAX 512

/* What a response said. */
struct fc_api_reply {
	long status;                 /* the HTTP status */
	char fault[FC_FAULT_MAX];    /* the fault_message, verbatim ("" when none) */
};

/* Checks one API response. 204 must have an empty body (or whitespace); 200 a
 * JSON object; 400 and every other status an Error object, whose
 * fault_message (a string, when present) is copied verbatim, cut at
 * FC_FAULT_MAX with "..." and its control characters shown as '?'. Returns 0
 * for an accepted success, -EREMOTEIO for a well-formed error response (the
 * fault in r and e), -EPROTO for anything malformed. body need not be
 * NUL-terminated; len > FC_API_BODY_MAX is malformed. */
int fc_api_parse_reply(long status, const char *body, size_t len, struct fc_api_reply *r,
		       struct err *e);

/* Longest handshake reply line we accept: "OK " + a u32 + "\n". */
#define FC_VSOCK_LINE_MAX 16

/* Looks for the handshake reply in the first n bytes received. Returns the
 * line's length including its '\n' (> 0) with *port set (the host-side port
 * Firecracker assigned), 0 when more bytes are needed (no '\n' yet and n <
 * FC_VSOCK_LINE_MAX), -EPROTO for anything else. (A refused port is no line at
 * all: Firecracker closes the connection, which the caller sees as EOF.) Only bytes up to the first '\n' are ever looked at, so
 * a frame that follows in the same read is never touched. */
int fc_vsock_parse_ok(const char *p, size_t n, uint32_t *port);

#endif
