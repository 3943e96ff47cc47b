/* Strict schema checks for protocol messages, shared by both ends.
 *
 * Field checks (proto_param_*) are the building blocks: the guest uses them on
 * the host's requests, the host (through msg.h) on the guest's notifications and
 * replies. Each returns 0 or fills why (for a -32602 message or the host's
 * one-line error) and returns -EINVAL. Unknown fields are errors everywhere, so
 * a typo on either side fails loudly instead of being silently ignored. */
#ifndef IRONCLAW_PROTO_PARAMS_H
#define IRONCLAW_PROTO_PARAMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* params may be NULL (then it has no fields); otherwise it must be an object
 * whose every key is in allowed (NULL-terminated). */
int proto_param_only(json_t *params, const char *const *allowed, char *why, size_t n);
/* *out is left alone when the field is absent and not required. */
int proto_param_int(json_t *params, const char *key, int required, json_int_t lo,
		    json_int_t hi, json_int_t *out, char *why, size_t n);
int proto_param_bool(json_t *params, const char *key, int *out, char *why, size_t n);
/* *out borrows from params; *len excludes the NUL. Rejects embedded NULs. */
int proto_param_str(json_t *params, const char *key, int required, const char **out,
		    size_t *len, char *why, size_t n);
/* Decodes a base64 "data" field (required) of at most max decoded bytes.
 * *out is owned (may be NULL when empty). */
int proto_param_data(json_t *params, size_t max, uint8_t **out, size_t *len,
		     char *why, size_t n);

#endif
