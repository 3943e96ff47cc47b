/* Frame codec for the host <-> guest channel (DESIGN.md §4).
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
 * JSON holding exactly one JSON object. The decoder is persistent, one per
 * connection: bytes may arrive one at a time or many frames per read, and none
 * is dropped between messages. The length is checked against FRAME_MAX before
 * any allocation. After the first error the decoder stays failed: the caller
 * must close the connection. No I/O happens here.
 *
 * Bulk data (exec output, stdin) travels in binary frames instead: bit 31 of
 * the length word is set, and the body is a fixed 20-byte header (type, arg,
 * two zero bytes, exec id and request id as 64-bit big-endian) followed by the
 * raw bytes. No JSON and no base64: under TCG those cost the guest most of the
 * channel's speed (docs/protocol.md). A decoder accepts binary frames only when
 * its owner asked for them with frame_decoder_accept_binary. */
#ifndef IRONCLAW_PROTO_FRAME_H
#define IRONCLAW_PROTO_FRAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX (16u * 1024 * 1024)
#define FRAME_HEADER 4
#define FRAME_BINARY 0x80000000u    /* length-word tag of a binary frame */
#define FRAME_BIN_HEADER 20         /* fixed header inside a binary frame's body */
#define FRAME_BIN_DATA_MAX (FRAME_MAX - FRAME_BIN_HEADER)

enum frame_bin_type {
	FRAME_BIN_OUTPUT = 1,       /* guest -> host: exec output; arg = stream 1|2, id = 0 */
	FRAME_BIN_STDIN = 2,        /* host -> guest: an exec.stdin request; arg = flags, id > 0 */
};
#define FRAME_BIN_EOF 0x01          /* FRAME_BIN_STDIN flag: close stdin after the data */

struct frame_bin {
	uint8_t type;
	uint8_t arg;
	uint64_t exec;              /* <= INT64_MAX */
	uint64_t id;                /* <= INT64_MAX */
	const uint8_t *data;        /* borrowed */
	size_t len;
};

/* Called once per complete binary frame; b and its data are borrowed. */
typedef int (*frame_bin_cb)(const struct frame_bin *b, void *ctx);

struct frame_decoder {
	uint8_t header[FRAME_HEADER];
	size_t header_have;
	uint8_t *body;       /* owned; allocated once the length is known and valid */
	size_t body_len;
	size_t body_have;
	size_t max;          /* FRAME_MAX unless a test lowers it */
	int binary;          /* the pending frame is a binary one */
	frame_bin_cb bin_cb; /* NULL: binary frames are an error */
	int failed;          /* sticky negative errno */
	char error[256];     /* why it failed, for the one-line report */
};

/* Called once per complete frame with the parsed object (borrowed: incref to
 * keep it). A non-zero return stops decoding and is returned by feed. */
typedef int (*frame_cb)(json_t *msg, void *ctx);

void frame_decoder_init(struct frame_decoder *d);
/* From now on, binary frames are checked (type, arg, zero bytes, id ranges)
 * and delivered to cb with feed's ctx. */
void frame_decoder_accept_binary(struct frame_decoder *d, frame_bin_cb cb);
/* Only inside a binary frame callback: hands the frame's body to the caller
 * (returns owned; b->data points FRAME_BIN_HEADER bytes into it), saving a
 * copy of bulk data. */
uint8_t *frame_decoder_take_body(struct frame_decoder *d);
/* Feeds n bytes. Returns 0, the callback's non-zero value, or a negative errno:
 * -EMSGSIZE (length over max), -EBADMSG (invalid UTF-8/JSON or not an object).
 * Bytes after a failure are ignored. */
int frame_decoder_feed(struct frame_decoder *d, const uint8_t *p, size_t n,
		       frame_cb cb, void *ctx);
/* Reading straight into the decoder: the pending frame's unfilled body and
 * its size in *room, or NULL (room 0) when no body is pending. After reading n
 * bytes there, body_filled completes the frame as feed would (same returns;
 * n over the room fails the decoder). Saves a copy of bulk data. */
uint8_t *frame_decoder_body_room(struct frame_decoder *d, size_t *room);
int frame_decoder_body_filled(struct frame_decoder *d, size_t n, frame_cb cb, void *ctx);
/* True when no partial frame is pending (a clean place for EOF). */
int frame_decoder_idle(const struct frame_decoder *d);
void frame_decoder_free(struct frame_decoder *d);

/* Serialises msg into a newly allocated frame (returns owned, *len set), or NULL
 * when it cannot be encoded or is larger than FRAME_MAX. */
uint8_t *frame_encode(const json_t *msg, size_t *len);
/* Writes the length word and fixed header of a binary frame carrying b->len
 * bytes (b->data unused) into out. Returns 0, or -EINVAL when b would not pass
 * the decoder's checks (b->len over FRAME_BIN_DATA_MAX included). */
#define FRAME_BIN_PREFIX (FRAME_HEADER + FRAME_BIN_HEADER)
int frame_bin_header(const struct frame_bin *b, uint8_t out[FRAME_BIN_PREFIX]);
/* The decoder's checks on a binary frame's header fields: 0 or -EBADMSG with
 * why filled. */
int frame_bin_check(const struct frame_bin *b, char *why, size_t n);

#endif
