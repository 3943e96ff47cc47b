/* Bounded growable byte buffer (after curl's dynbuf).
 *
 * Every buffer has a hard maximum fixed at init: an append that would pass it
 * fails with -EMSGSIZE before any allocation, so hostile input cannot make us
 * grow without bound. The data is always NUL-terminated one past `len` for
 * convenience, but the terminator is never trusted as a length. */
#ifndef IRONCLAW_CORE_BUF_H
#define IRONCLAW_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;  /* owned; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;     /* hard cap on len */
};

void buf_init(struct buf *b, size_t max);
/* Returns 0, -EMSGSIZE (would exceed max) or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Hands the data to the caller (returns owned, NUL-terminated, may be NULL when
 * empty) and resets the buffer. */
uint8_t *buf_steal(struct buf *b, size_t *len);

#endif
