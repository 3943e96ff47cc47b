/* Frame codec for the host <-> guest channel (DESIGN.md §4).
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
 * JSON holding exactly one JSON object. The decoder is persistent, one per
 * connection: bytes may arrive one at a time or many frames per read, and none
 * is dropped between messages. The length is checked against FRAME_MAX before
 * any allocation. After the first error the decoder stays failed: the caller
 * must close the connection. No I/O happens here. */
#ifndef IRONCLAW_PROTO_FRAME_H
#define IRONCLAW_PROTO_FRAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX (16u * 1024 * 1024)
#define FRAME_HEADER 4

struct frame_decoder {
	uint8_t header[FRAME_HEADER];
	size_t header_have;
	uint8_t *body;       /* owned; allocated once the length is known and valid */
	size_t body_len;
	size_t body_have;
	size_t max;          /* FRAME_MAX unless a test lowers it */
	int failed;          /* sticky negative errno */
	char error[256];     /* why it failed, for the one-line report */
};

/* Called once per complete frame with the parsed object (borrowed: incref to
 * keep it). A non-zero return stops decoding and is returned by feed. */
typedef int (*frame_cb)(json_t *msg, void *ctx);

void frame_decoder_init(struct frame_decoder *d);
/* Feeds n bytes. Returns 0, the callback's non-zero value, or a negative errno:
 * -EMSGSIZE (length over max), -EBADMSG (invalid UTF-8/JSON or not an object).
 * Bytes after a failure are ignored. */
int frame_decoder_feed(struct frame_decoder *d, const uint8_t *p, size_t n,
		       frame_cb cb, void *ctx);
/* True when no partial frame is pending (a clean place for EOF). */
int frame_decoder_idle(const struct frame_decoder *d);
void frame_decoder_free(struct frame_decoder *d);

/* Serialises msg into a newly allocated frame (returns owned, *len set), or NULL
 * when it cannot be encoded or is larger than FRAME_MAX. */
uint8_t *frame_encode(const json_t *msg, size_t *len);

#endif
