/* Frame codec: see frame.h. The state machine has two phases, header and body;
 * both accept any split of the input, which is what makes the decoder safe to
 * keep across reads. */
#include "proto/frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void frame_decoder_init(struct frame_decoder *d)
{
	memset(d, 0, sizeof(*d));
	d->max = FRAME_MAX;
}

void frame_decoder_free(struct frame_decoder *d)
{
	free(d->body);
	d->body = NULL;
}

void frame_decoder_accept_binary(struct frame_decoder *d, frame_bin_cb cb)
{
	d->bin_cb = cb;
}

uint8_t *frame_decoder_take_body(struct frame_decoder *d)
{
	uint8_t *body = d->body;
	d->body = NULL;
	return body;
}

int frame_decoder_idle(const struct frame_decoder *d)
{
	return d->header_have == 0 && d->body == NULL;
}

static int frame_fail(struct frame_decoder *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int frame_fail(struct frame_decoder *d, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	d->failed = code;
	return code;
}

static const char *frame_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: case JSON_REAL: return "number";
	case JSON_TRUE: case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	default: return "object";
	}
}

static uint64_t frame_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void frame_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int frame_bin_check(const struct frame_bin *b, char *why, size_t n)
{
	const char *bad = NULL;
	if (b->exec > INT64_MAX || b->id > INT64_MAX)
		bad = "an id over 2^63-1";
	else if (b->type == FRAME_BIN_OUTPUT && b->arg != 1 && b->arg != 2)
		bad = "an output stream other than 1 (stdout) or 2 (stderr)";
	else if (b->type == FRAME_BIN_OUTPUT && b->id != 0)
		bad = "a request id on output";
	else if (b->type == FRAME_BIN_OUTPUT && b->len == 0)
		bad = "no output bytes";
	else if (b->type == FRAME_BIN_STDIN && (b->arg & ~FRAME_BIN_EOF))
		bad = "unknown stdin flags";
	else if (b->type == FRAME_BIN_STDIN && b->id == 0)
		bad = "request id 0";
	else if (b->type != FRAME_BIN_OUTPUT && b->type != FRAME_BIN_STDIN)
		bad = "an unknown type";
	else if (b->len > FRAME_BIN_DATA_MAX)
		bad = "more than 16 MiB";
	if (!bad)
		return 0;
	if (why && n)
		snprintf(why, n, "binary frame of type %u has %s", b->type, bad);
	return -EBADMSG;
}

int frame_bin_header(const struct frame_bin *b, uint8_t out[FRAME_BIN_PREFIX])
{
	if (frame_bin_check(b, NULL, 0) < 0)
		return -EINVAL;
	uint32_t len = (uint32_t)(FRAME_BIN_HEADER + b->len) | FRAME_BINARY;
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	uint8_t *h = out + FRAME_HEADER;
	h[0] = b->type;
	h[1] = b->arg;
	h[2] = h[3] = 0;
	frame_put64(h + 4, b->exec);
	frame_put64(h + 12, b->id);
	return 0;
}

static int frame_deliver_binary(struct frame_decoder *d, void *ctx)
{
	const uint8_t *h = d->body;
	struct frame_bin b = {
		.type = h[0], .arg = h[1], .exec = frame_get64(h + 4), .id = frame_get64(h + 12),
		.data = h + FRAME_BIN_HEADER, .len = d->body_len - FRAME_BIN_HEADER,
	};
	char why[128];
	int rc;
	if (h[2] || h[3])
		rc = frame_fail(d, -EBADMSG, "binary frame has non-zero reserved bytes");
	else if (frame_bin_check(&b, why, sizeof(why)) < 0)
		rc = frame_fail(d, -EBADMSG, "%s", why);
	else
		rc = d->bin_cb(&b, ctx);
	free(d->body);
	d->body = NULL;
	d->header_have = 0;
	d->binary = 0;
	return rc;
}

static int frame_deliver(struct frame_decoder *d, frame_cb cb, void *ctx)
{
	if (d->binary)
		return frame_deliver_binary(d, ctx);
	json_error_t jerr;
	/* jansson rejects invalid UTF-8 and embedded NULs with these flags. */
	json_t *msg = json_loadb((const char *)d->body, d->body_len,
				 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	free(d->body);
	d->body = NULL;
	d->header_have = 0;
	if (!msg)
		return frame_fail(d, -EBADMSG, "frame is not valid UTF-8 JSON (at byte %lu)",
				  (unsigned long)jerr.position);
	if (!json_is_object(msg)) {
		int rc = frame_fail(d, -EBADMSG, "frame holds a JSON %s, not an object",
				    frame_json_type(msg));
		json_decref(msg);
		return rc;
	}
	int rc = cb ? cb(msg, ctx) : 0;
	json_decref(msg);
	return rc;
}

/* Moves what input there is, up to room bytes, into dst and consumes it: the
 * header and the body phases both fill a fixed-size space from any split of
 * the input. Returns the count moved. */
static size_t frame_copy_in(uint8_t *dst, size_t room, const uint8_t **p, size_t *n)
{
	size_t take = room < *n ? room : *n;
	memcpy(dst, *p, take);
	*p += take;
	*n -= take;
	return take;
}

int frame_decoder_feed(struct frame_decoder *d, const uint8_t *p, size_t n,
		       frame_cb cb, void *ctx)
{
	if (d->failed)
		return d->failed;
	while (n > 0) {
		if (d->header_have < FRAME_HEADER) {
			d->header_have += frame_copy_in(d->header + d->header_have,
							FRAME_HEADER - d->header_have, &p, &n);
			if (d->header_have < FRAME_HEADER)
				break;
			uint32_t len = (uint32_t)d->header[0] << 24 | (uint32_t)d->header[1] << 16 |
				       (uint32_t)d->header[2] << 8 | d->header[3];
			/* Without a binary handler the tag bit is just a length over the
			 * cap, as it was before binary frames existed. */
			if ((len & FRAME_BINARY) && d->bin_cb) {
				len &= ~FRAME_BINARY;
				if (len < FRAME_BIN_HEADER)
					return frame_fail(d, -EBADMSG, "binary frame of %lu bytes is "
							  "shorter than its header", (unsigned long)len);
				d->binary = 1;
			}
			if (len > d->max)
				return frame_fail(d, -EMSGSIZE,
						  "frame of %lu bytes is over the 16 MiB limit",
						  (unsigned long)len);
			if (len == 0)
				return frame_fail(d, -EBADMSG, "empty frame");
			d->body = malloc(len);
			if (!d->body)
				return frame_fail(d, -ENOMEM, "out of memory for a %lu-byte frame", (unsigned long)len);
			d->body_len = len;
			d->body_have = 0;
		}
		d->body_have += frame_copy_in(d->body + d->body_have, d->body_len - d->body_have,
					      &p, &n);
		if (d->body_have == d->body_len) {
			int rc = frame_deliver(d, cb, ctx);
			if (rc)
				return rc;
		}
	}
	return 0;
}

uint8_t *frame_decoder_body_room(struct frame_decoder *d, size_t *room)
{
	*room = 0;
	if (d->failed || d->header_have < FRAME_HEADER || !d->body)
		return NULL;
	*room = d->body_len - d->body_have;
	return d->body + d->body_have;
}

int frame_decoder_body_filled(struct frame_decoder *d, size_t n, frame_cb cb, void *ctx)
{
	if (d->failed)
		return d->failed;
	if (d->header_have < FRAME_HEADER || !d->body || n > d->body_len - d->body_have)
		return frame_fail(d, -EINVAL, "body_filled past the pending frame");
	d->body_have += n;
	return d->body_have == d->body_len ? frame_deliver(d, cb, ctx) : 0;
}

uint8_t *frame_encode(const json_t *msg, size_t *len)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	if (n == 0 || n > FRAME_MAX) {
		free(text);
		return NULL;
	}
	uint8_t *out = malloc(n + FRAME_HEADER);
	if (out) {
		out[0] = (uint8_t)(n >> 24);
		out[1] = (uint8_t)(n >> 16);
		out[2] = (uint8_t)(n >> 8);
		out[3] = (uint8_t)n;
		memcpy(out + FRAME_HEADER, text, n);
		*len = n + FRAME_HEADER;
	}
	free(text);
	return out;
}
