/* Network plumbing shared by the MCP client (src/mcp) and the model clients
 * (src/llm): libcurl's multi interface driven by the caller's libuv loop, the
 * check of what kind of response a transfer is getting, and the Server-Sent
 * Events parser. Nothing here knows about MCP or any model.
 *
 * One struct net_curl is one curl multi handle bound to one uv_loop_t; it runs
 * any number of transfers at once, and any number of them may share a loop.
 * Completions arrive as callbacks on the loop, never from inside curl, so a
 * completion (or the after-action hook) may start transfers, remove them, or
 * close the whole net_curl. Nothing here blocks the loop.
 *
 * The SSE parser is incremental (bytes arrive in arbitrary chunks), takes
 * lengths and never trusts terminators, and caps what it keeps before
 * allocating: an over-long event is dropped whole and counted, and the stream
 * goes on. */
#ifndef IRONCLAW_NET_NET_H
#define IRONCLAW_NET_NET_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"

/* ---- libcurl on a libuv loop (curl_uv.c) ---- */

struct net_curl;

/* A transfer ended (res is curl's verdict). The easy handle has already been
 * removed from the multi and is the caller's again (to inspect and clean up). */
typedef void (*net_curl_done_cb)(void *opaque, CURL *easy, CURLcode res);

/* Creates a multi on loop. after, when set, runs after every batch of curl
 * activity (once curl has returned): the place to hand data queued by write
 * callbacks to code that may itself start transfers. Returns 0 or -errno. */
int net_curl_new(uv_loop_t *loop, void (*after)(void *opaque), void *opaque,
		 struct net_curl **out, struct err *e);
/* Starts a transfer. easy stays owned by the caller; CURLOPT_PRIVATE belongs
 * to this module. done fires exactly once, unless net_curl_remove() or
 * net_curl_close() comes first. */
int net_curl_add(struct net_curl *m, CURL *easy, net_curl_done_cb done, void *opaque,
		 struct err *e);
/* Aborts a transfer without its callback (easy is the caller's again). */
void net_curl_remove(struct net_curl *m, CURL *easy);
/* How many transfers are running. */
int net_curl_running(const struct net_curl *m);
/* Aborts every transfer (no callbacks), releases the loop handles, and calls
 * closed (may be NULL) once they are closed; m is freed then. The easy handles
 * of aborted transfers stay the caller's. Safe from any callback. */
void net_curl_close(struct net_curl *m, void (*closed)(void *opaque), void *opaque);

/* ---- responses (response.c) ---- */

/* For a write callback's first bytes: stores the response's HTTP status in
 * *status and returns 1 when the body is a Server-Sent Events stream
 * (text/event-stream with a status below 300), else 0. */
int net_curl_is_event_stream(CURL *easy, long *status);

/* ---- Server-Sent Events (sse.c) ---- */

struct net_sse_event {
	const char *event;      /* "message" when absent */
	const char *data;       /* joined data lines, '\n' between them */
	size_t data_len;
	const char *id;         /* the last event id seen on this stream, or NULL */
};

struct net_sse {
	struct buf line;        /* the field line being assembled, capped at max */
	struct buf data;        /* current event's data, capped at max */
	int line_over;          /* the current line passed the cap */
	int after_cr;           /* last byte was '\r': a following '\n' is the same break */
	char event[64];
	char last_id[256];
	int has_id;
	int has_data;
	long retry_ms;          /* last retry field, -1 when none */
	unsigned long dropped;  /* oversized events dropped */
	int overflow;           /* current event overflowed: drop it */
	int at_start;           /* before the first byte: skip a BOM */
	void (*cb)(void *opaque, const struct net_sse_event *ev);
	void *opaque;
};

void net_sse_init(struct net_sse *s, size_t max,
		  void (*cb)(void *opaque, const struct net_sse_event *ev), void *opaque);
/* Feeds n bytes; dispatches complete events (events with empty data, like a
 * priming event, update the id and retry but are not dispatched). */
void net_sse_feed(struct net_sse *s, const char *p, size_t n);
void net_sse_free(struct net_sse *s);

#endif
