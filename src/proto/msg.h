/* The guest's messages as the host accepts them: one strict check per
 * notification and per reply, on top of the field checks in params.h.
 *
 * The host sends only requests and the guest only notifications and replies,
 * so this is the whole surface the host parses from an untrusted guest (the
 * binary frames of frame.h aside). A check fills why with one line naming the
 * message and the field, and returns -EINVAL; the caller closes the channel. */
#ifndef IRONCLAW_PROTO_MSG_H
#define IRONCLAW_PROTO_MSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 2  /* 2: binary frames for exec output and stdin */
#define PROTO_FILE_MAX (8u << 20)   /* file.put / file.get bytes per call */

struct proto_hello {
	json_int_t version;
	const char *kernel;             /* borrowed from params */
};

struct proto_output {
	json_int_t exec;
	int stream;                     /* 1 stdout, 2 stderr */
	uint8_t *data;                  /* owned, NULL when empty */
	size_t len;
};

struct proto_exit {
	json_int_t exec;
	int code;                       /* valid when signal == 0 */
	int signal;
	int timed_out;
};

int proto_check_hello(json_t *params, struct proto_hello *out, char *why, size_t n);
/* Caps decoded data at max bytes. */
int proto_check_exec_output(json_t *params, size_t max, struct proto_output *out,
			    char *why, size_t n);
int proto_check_exec_exit(json_t *params, struct proto_exit *out, char *why, size_t n);
/* The notifications the channel itself can check without routing: hello is
 * checked fully; exec.output and exec.exit are left to their consumer, which
 * needs the values (proto_check_exec_*). Any other method is an error. */
int proto_check_notification(const char *method, json_t *params, char *why, size_t n);
/* The result of a reply to a request of this method. */
int proto_check_result(const char *method, json_t *result, char *why, size_t n);
/* A JSON-RPC error object: {code, message[, data]}. */
int proto_check_error(json_t *error, char *why, size_t n);

#endif
