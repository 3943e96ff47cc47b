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

static int frame_deliver(struct frame_decoder *d, frame_cb cb, void *ctx)
{
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

int frame_decoder_feed(struct frame_decoder *d, const uint8_t *p, size_t n,
		       frame_cb cb, void *ctx)
{
	if (d->failed)
		return d->failed;
	while (n > 0) {
		if (d->header_have < FRAME_HEADER) {
			size_t take = FRAME_HEADER - d->header_have;
			if (take > n)
				take = n;
			memcpy(d->header + d->header_have, p, take);
			d->header_have += take;
			p += take;
			n -= take;
			if (d->header_have < FRAME_HEADER)
				break;
			uint32_t len = (uint32_t)d->header[0] << 24 | (uint32_t)d->header[1] << 16 |
				       (uint32_t)d->header[2] << 8 | d->header[3];
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
		size_t take = d->body_len - d->body_have;
		if (take > n)
			take = n;
		memcpy(d->body + d->body_have, p, take);
		d->body_have += take;
		p += take;
		n -= take;
		if (d->body_have == d->body_len) {
			int rc = frame_deliver(d, cb, ctx);
			if (rc)
				return rc;
		}
	}
	return 0;
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
