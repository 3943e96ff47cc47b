/* A fake guest for the channel and exec unit tests: the far end of a
 * socketpair whose near end the host channel owns (channel_open_fd). The test
 * plays the guest with real frames; the host side runs on a real libuv loop.
 * Waiting is on events (fd readable, loop callbacks), each bounded by a guard
 * so that a broken protection fails the test instead of hanging it. */
#ifndef IRONCLAW_TESTS_CHAN_FAKE_H
#define IRONCLAW_TESTS_CHAN_FAKE_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/b64.h"
#include "core/clock.h"
#include "proto/frame.h"
#include "proto/rpc.h"
#include "vm/channel.h"

#define FAKE_GUARD_MS 10000
#define FAKE_QMAX 256

struct fake_bin {
	struct frame_bin hdr;
	uint8_t *data;         /* owned */
};

struct fake {
	uv_loop_t loop;
	int fd;                /* the guest's end */
	int host_fd;           /* handed to channel_open_fd */
	struct frame_decoder dec;
	json_t *q[FAKE_QMAX];
	size_t nq, q_next;
	struct fake_bin bins[FAKE_QMAX];
	size_t nbins, bins_next;
	uint64_t bin_bytes;    /* binary payload bytes received in total */
	uv_timer_t guard;
	int guard_fired;
};

static inline int fake_queue(json_t *m, void *ctx)
{
	struct fake *f = ctx;
	cr_assert_lt(f->nq, FAKE_QMAX);
	f->q[f->nq++] = json_incref(m);
	return 0;
}

static inline int fake_queue_bin(const struct frame_bin *b, void *ctx)
{
	struct fake *f = ctx;
	cr_assert_lt(f->nbins, FAKE_QMAX);
	struct fake_bin *fb = &f->bins[f->nbins++];
	fb->hdr = *b;
	fb->data = malloc(b->len + 1);
	memcpy(fb->data, b->data, b->len);
	fb->hdr.data = fb->data;
	f->bin_bytes += b->len;
	return 0;
}

static inline void fake_on_guard(uv_timer_t *t)
{
	struct fake *f = t->data;
	f->guard_fired = 1;
}

static inline void fake_init(struct fake *f)
{
	int sv[2];
	memset(f, 0, sizeof(*f));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[0];
	f->host_fd = sv[1];
	cr_assert_eq(uv_loop_init(&f->loop), 0);
	frame_decoder_init(&f->dec);
	frame_decoder_accept_binary(&f->dec, fake_queue_bin);
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
}

/* Runs the host loop until *flag is set; fails if the guard fires first. */
static inline void fake_run_until(struct fake *f, const int *flag)
{
	f->guard_fired = 0;
	uv_timer_start(&f->guard, fake_on_guard, FAKE_GUARD_MS, 0);
	while (!*flag && !f->guard_fired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	cr_assert(*flag, "the expected event did not happen within %d ms", FAKE_GUARD_MS);
}

/* Reads what the host wrote, running its loop so its writes progress, until a
 * message (JSON or binary) is queued. */
static inline void fake_pump(struct fake *f, size_t want_json, size_t want_bin)
{
	static uint8_t chunk[1 << 16];
	double end = clock_now_ms() + FAKE_GUARD_MS;
	while ((f->nq - f->q_next) < want_json || (f->nbins - f->bins_next) < want_bin) {
		cr_assert_lt(clock_now_ms(), end, "the host sent nothing within %d ms", FAKE_GUARD_MS);
		uv_run(&f->loop, UV_RUN_NOWAIT);
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t r = read(f->fd, chunk, sizeof(chunk));
		cr_assert_gt(r, 0, "the host closed the channel");
		cr_assert_eq(frame_decoder_feed(&f->dec, chunk, (size_t)r, fake_queue, f), 0,
			     "host sent a bad frame: %s", f->dec.error);
	}
}

/* Reads everything the host has queued for writing (its backlog drains). */
static inline void fake_drain(struct fake *f, struct channel *ch)
{
	static uint8_t chunk[1 << 16];
	double end = clock_now_ms() + FAKE_GUARD_MS;
	for (;;) {
		cr_assert_lt(clock_now_ms(), end, "the host's write queue did not drain");
		uv_run(&f->loop, UV_RUN_NOWAIT);
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		if (poll(&p, 1, 0) <= 0) {
			if (channel_write_backlog(ch) == 0)
				return;
			poll(&p, 1, 10);
			continue;
		}
		ssize_t r = read(f->fd, chunk, sizeof(chunk));
		cr_assert_gt(r, 0);
		cr_assert_eq(frame_decoder_feed(&f->dec, chunk, (size_t)r, fake_queue, f), 0,
			     "host sent a bad frame: %s", f->dec.error);
	}
}

/* Next JSON message from the host (borrowed until fake_fini). */
static inline json_t *fake_recv(struct fake *f)
{
	fake_pump(f, 1, 0);
	return f->q[f->q_next++];
}

static inline struct fake_bin *fake_recv_bin(struct fake *f)
{
	fake_pump(f, 0, 1);
	return &f->bins[f->bins_next++];
}

static inline void fake_send_raw(struct fake *f, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n > 0) {
		ssize_t w = write(f->fd, c, n);
		cr_assert_gt(w, 0, "write to the host: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

/* Sends one frame holding text (JSON, not checked here: tests send bad ones). */
static inline void fake_send_text(struct fake *f, const char *text)
{
	size_t n = strlen(text);
	uint8_t h[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
	fake_send_raw(f, h, 4);
	fake_send_raw(f, text, n);
}

static inline void fake_send(struct fake *f, json_t *msg)
{
	size_t len;
	uint8_t *fr = frame_encode(msg, &len);
	cr_assert_not_null(fr);
	fake_send_raw(f, fr, len);
	free(fr);
	json_decref(msg);
}

static inline void fake_send_output(struct fake *f, uint64_t exec, int stream, const char *s)
{
	uint8_t pre[FRAME_BIN_PREFIX];
	struct frame_bin b = { .type = FRAME_BIN_OUTPUT, .arg = (uint8_t)stream, .exec = exec,
			       .len = strlen(s) };
	cr_assert_eq(frame_bin_header(&b, pre), 0);
	fake_send_raw(f, pre, sizeof(pre));
	fake_send_raw(f, s, strlen(s));
}

static inline json_int_t fake_id(json_t *m)
{
	return json_integer_value(json_object_get(m, "id"));
}

static inline const char *fake_method(json_t *m)
{
	return json_string_value(json_object_get(m, "method"));
}

/* Closes the guest end and lets every host handle close. */
static inline void fake_fini(struct fake *f)
{
	if (f->fd >= 0)
		close(f->fd);
	uv_close((uv_handle_t *)&f->guard, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&f->loop), 0, "a host handle was left open");
	for (size_t i = 0; i < f->nq; i++)
		json_decref(f->q[i]);
	for (size_t i = 0; i < f->nbins; i++)
		free(f->bins[i].data);
	frame_decoder_free(&f->dec);
}

#endif
