/* The agent's poll loop: the channel, a signalfd for SIGCHLD, and every
 * command's pipes. The order inside one turn matters for the protocol: queued
 * requests first (their replies precede any output they cause), then finished
 * commands (exec.exit after their last output), then I/O. */
#include "guest/guest.h"
#include "guest/ws.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/log.h"

#define GUEST_POLL_MAX (2 + 3 * GUEST_EXEC_MAX)
#define GUEST_READS_PER_WAKE 256

static void guest_loop_signals(struct guest *g)
{
	struct signalfd_siginfo si[16];
	while (read(g->sig_fd, si, sizeof(si)) > 0)
		;
	guest_exec_reap(g);
}

/* Returns 1 to go on, 0 when the host ended the connection, -errno on a
 * protocol or I/O failure. */
static int guest_loop_channel(struct guest *g, short revents)
{
	if (revents & POLLOUT) {
		int rc = guest_chan_flush(g);
		if (rc < 0) {
			log_error("writing to the host: %s", strerror(-rc));
			return rc;
		}
	}
	if (revents & POLLIN) {
		/* A virtio-serial read returns one small buffer at a time: keep
		 * reading until a message is complete or the port is empty, instead
		 * of paying a poll round per read (costly under TCG). */
		for (int i = 0; i < GUEST_READS_PER_WAKE; i++) {
			ssize_t r = guest_chan_read(g);
			if (r == 0) {
				if (!frame_decoder_idle(&g->dec)) {
					log_error("host closed the channel in the middle of a frame");
					return -EPIPE;
				}
				return 0;
			}
			if (r == -EAGAIN || g->inq_len > 0)
				break;
			if (r < 0)
				return (int)r;
		}
		return 1;
	}
	if (revents & (POLLHUP | POLLERR))
		return 0;
	return 1;
}

int guest_loop_run(struct guest *g)
{
	struct pollfd pfds[GUEST_POLL_MAX];
	struct guest_in in;
	int rc = 0;

	for (;;) {
		while (!g->shutdown_pending && guest_chan_pending(g) < GUEST_OUTQ_HIGH &&
		       guest_chan_next(g, &in)) {
			rc = in.msg ? guest_dispatch(g, in.msg) : guest_dispatch_bin(g, &in);
			guest_in_free(&in);
			if (rc < 0)
				goto out;
		}
		int ws_more = guest_ws_pump(g);   /* a @ws-pack's output (ws.h) */
		if ((rc = ws_more) < 0)
			goto out;
		if ((rc = guest_exec_finish(g)) < 0 || (rc = guest_chan_flush(g)) < 0)
			goto out;
		if (g->shutdown_pending && guest_chan_pending(g) == 0)
			goto out;

		int timeout = ws_more ? 0 : guest_exec_timeouts(g);
		int room = guest_chan_pending(g) < GUEST_OUTQ_HIGH;
		pfds[0] = (struct pollfd){ .fd = g->chan_fd };
		if (room && g->inq_len == 0 && !g->shutdown_pending)
			pfds[0].events |= POLLIN;
		if (guest_chan_pending(g) > 0)
			pfds[0].events |= POLLOUT;
		pfds[1] = (struct pollfd){ .fd = g->sig_fd, .events = POLLIN };
		size_t n = 2 + guest_exec_pollfds(g, pfds + 2, GUEST_POLL_MAX - 2, room);
		if (poll(pfds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (pfds[1].revents)
			guest_loop_signals(g);
		if (pfds[0].revents && (rc = guest_loop_channel(g, pfds[0].revents)) <= 0)
			goto out;
		if ((rc = guest_exec_events(g, pfds + 2, n - 2)) < 0)
			goto out;
	}
out:
	guest_exec_kill_all(g);
	guest_ws_abort();
	if (rc < 0)
		return 1;
	return 0;
}
