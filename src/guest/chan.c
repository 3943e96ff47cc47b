/* The agent's end of the channel: an outbound queue of encoded frames and an
 * inbound queue of decoded messages, both capped (see guest.h for the numbers).
 * The channel fd is non-blocking; the loop writes when poll says POLLOUT. The
 * inbound queue exists because one read can hold many small requests whose
 * replies could be large: they wait here, decoded, until the outbound queue has
 * drained below its high-water mark, and no further read happens meanwhile. */
#include "guest/guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/io.h"
#include "core/log.h"

static int guest_chan_queue_bin(const struct frame_bin *b, void *ctx);

void guest_chan_init(struct guest *g, int fd)
{
	g->chan_fd = fd;
	frame_decoder_init(&g->dec);
	frame_decoder_accept_binary(&g->dec, guest_chan_queue_bin);
	buf_init(&g->outq, GUEST_OUTQ_MAX);
	g->outq_off = 0;
	g->inq_head = g->inq_len = 0;
}

size_t guest_chan_pending(const struct guest *g)
{
	return g->outq.len - g->outq_off;
}

int guest_chan_append(struct guest *g, const uint8_t *frame, size_t len)
{
	/* Nothing queued: write straight from the caller's buffer as far as the
	 * channel takes it, and queue only the rest (one copy less per byte of
	 * output). Errors are left to the next flush, which reports them. */
	if (guest_chan_pending(g) == 0) {
		while (len > 0) {
			ssize_t w = write(g->chan_fd, frame, len);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			frame += w;
			len -= (size_t)w;
		}
		if (len == 0)
			return 0;
	}
	/* Compact before growing: written bytes are dead weight. */
	if (g->outq_off > 0 && g->outq.len + len > g->outq.max) {
		buf_consume(&g->outq, g->outq_off);
		g->outq_off = 0;
	}
	int rc = buf_append(&g->outq, frame, len);
	if (rc < 0)
		log_error("outbound queue full (%zu bytes pending)", guest_chan_pending(g));
	return rc;
}

int guest_chan_send(struct guest *g, json_t *msg)
{
	size_t len = 0;
	uint8_t *frame = msg ? frame_encode(msg, &len) : NULL;
	json_decref(msg);
	if (!frame) {
		log_error("cannot encode an outgoing message (over 16 MiB or out of memory)");
		return -EMSGSIZE;
	}
	int rc = guest_chan_append(g, frame, len);
	free(frame);
	return rc;
}

int guest_chan_flush(struct guest *g)
{
	while (guest_chan_pending(g) > 0) {
		ssize_t w = write(g->chan_fd, g->outq.data + g->outq_off, guest_chan_pending(g));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		g->outq_off += (size_t)w;
	}
	if (g->outq_off == g->outq.len) {
		buf_reset(&g->outq);
		g->outq_off = 0;
	} else if (g->outq_off > GUEST_OUTQ_HIGH) {
		/* Keep memmove cost proportional to what was written. */
		buf_consume(&g->outq, g->outq_off);
		g->outq_off = 0;
	}
	return 0;
}

int guest_chan_drain(struct guest *g)
{
	while (guest_chan_pending(g) > 0) {
		struct pollfd p = { .fd = g->chan_fd, .events = POLLOUT };
		int rc = guest_chan_flush(g);
		if (rc < 0)
			return rc;
		if (guest_chan_pending(g) > 0 && poll(&p, 1, 5000) <= 0)
			return -ETIMEDOUT;
		if (p.revents & (POLLERR | POLLHUP))
			return -EPIPE;
	}
	return 0;
}

static int guest_chan_queue(json_t *msg, void *ctx)
{
	struct guest *g = ctx;
	/* Cannot overflow: GUEST_INQ_MAX frames fit no read of GUEST_READ_CHUNK
	 * bytes, and we only read when the queue is empty. Checked anyway. */
	if (g->inq_len >= GUEST_INQ_MAX)
		return -ENOBUFS;
	g->inq[(g->inq_head + g->inq_len) % GUEST_INQ_MAX] = (struct guest_in){ .msg = json_incref(msg) };
	g->inq_len++;
	return 0;
}

static int guest_chan_queue_bin(const struct frame_bin *b, void *ctx)
{
	struct guest *g = ctx;
	if (g->inq_len >= GUEST_INQ_MAX)
		return -ENOBUFS;
	/* Keep the decoder's body rather than copy the bulk data out of it. */
	struct guest_in in = { .bin = *b, .data = frame_decoder_take_body(&g->dec) };
	g->inq[(g->inq_head + g->inq_len) % GUEST_INQ_MAX] = in;
	g->inq_len++;
	return 0;
}

void guest_in_free(struct guest_in *in)
{
	json_decref(in->msg);
	free(in->data);
	memset(in, 0, sizeof(*in));
}

/* A port read returns one receive buffer (a page) at most, and the port has
 * no read_iter, so readv calls it once per iovec until one comes back
 * short: page-sized iovecs take up to GUEST_READV_PAGES buffers per
 * syscall. */
#define GUEST_READV_PAGES 16
static ssize_t guest_chan_readv(int fd, uint8_t *p, size_t room)
{
	struct iovec iov[GUEST_READV_PAGES];
	int n = 0;
	while (room > 0 && n < GUEST_READV_PAGES) {
		size_t len = room < 4096 ? room : 4096;
		iov[n++] = (struct iovec){ .iov_base = p, .iov_len = len };
		p += len;
		room -= len;
	}
	for (;;) {
		ssize_t r = readv(fd, iov, n);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t guest_chan_read(struct guest *g)
{
	uint8_t chunk[GUEST_READ_CHUNK];
	size_t room;
	uint8_t *body = frame_decoder_body_room(&g->dec, &room);
	ssize_t r;
	int rc;
	if (body && room >= GUEST_READ_DIRECT_MIN) {
		/* Inside a large body (stdin): read straight into it, one copy
		 * less per byte. Never past its end, so the next frame's header
		 * still goes through feed. */
		r = guest_chan_readv(g->chan_fd, body, room);
		if (r <= 0)
			return r;
		rc = frame_decoder_body_filled(&g->dec, (size_t)r, guest_chan_queue, g);
	} else {
		r = io_read(g->chan_fd, chunk, sizeof(chunk));
		if (r <= 0)
			return r;
		rc = frame_decoder_feed(&g->dec, chunk, (size_t)r, guest_chan_queue, g);
	}
	if (rc < 0) {
		log_error("bad frame from host: %s; closing the channel",
			  g->dec.failed ? g->dec.error : strerror(-rc));
		return rc;
	}
	return r;
}

int guest_chan_next(struct guest *g, struct guest_in *in)
{
	if (g->inq_len == 0)
		return 0;
	*in = g->inq[g->inq_head];
	memset(&g->inq[g->inq_head], 0, sizeof(*in));
	g->inq_head = (g->inq_head + 1) % GUEST_INQ_MAX;
	g->inq_len--;
	return 1;
}
