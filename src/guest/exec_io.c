/* Commands' pipes, exits and timeouts. Output is streamed as binary output
 * frames (proto/frame.h) in the order read; exec.exit is sent only once the leader has
 * been reaped and its pipes have been read dry, so it always comes last. When
 * the leader exits, everything it wrote is already in the pipes; background
 * processes that outlive it lose the pipes (they get EPIPE) rather than holding
 * exec.exit back forever. */
#include "guest/guest.h"

#include "core/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "proto/rpc.h"

uint64_t guest_now_ms(void)
{
	return (uint64_t)clock_now_ms();
}

static void guest_fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Answers the exec.stdin calls whose bytes have all reached the pipe, or all of
 * them with an error when the pipe is gone. */
static int guest_exec_answer_waits(struct guest *g, struct guest_exec *e, const char *failure)
{
	int rc = 0, i = 0;
	for (; i < e->nwaits && rc == 0; i++) {
		if (failure)
			rc = guest_reply_error(g, e->waits[i].id, -32000, "stdin of exec %lld: %s",
					       (long long)e->id, failure);
		else if (e->waits[i].until <= e->in_written)
			rc = guest_reply(g, e->waits[i].id, json_object());
		else
			break;
	}
	memmove(e->waits, e->waits + i, (size_t)(e->nwaits - i) * sizeof(e->waits[0]));
	e->nwaits -= i;
	return rc;
}

int guest_exec_write_stdin(struct guest *g, struct guest_exec *e)
{
	while (e->in_fd >= 0 && e->inq.len > e->in_off) {
		ssize_t w = write(e->in_fd, e->inq.data + e->in_off, e->inq.len - e->in_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			/* The command closed its stdin: what is queued can never arrive. */
			char why[128];
			snprintf(why, sizeof(why), "the command closed it (%s)", strerror(errno));
			guest_fd_close(&e->in_fd);
			buf_reset(&e->inq);
			e->in_off = 0;
			return guest_exec_answer_waits(g, e, why);
		}
		e->in_off += (size_t)w;
		e->in_written += (uint64_t)w;
	}
	if (e->in_off == e->inq.len) {
		buf_reset(&e->inq);
		e->in_off = 0;
		if (e->in_eof)
			guest_fd_close(&e->in_fd);
	}
	return guest_exec_answer_waits(g, e, NULL);
}

/* Zero-copy output: splice(2) of a command's pipe into the channel, only where
 * the guest kernel gets it right. The 6.1 virtio_console
 * (port_fops_splice_write) allocates its scatterlist for the pipe's
 * occupancy, marks the list's end there, and hands virtqueue_add_outbuf the
 * number of entries it filled, while the ring code walks the list to that end
 * mark. A splice that visits fewer buffers than the pipe holds (a length
 * short of the pipe's content, a writer adding pages meanwhile, an empty
 * buffer, which a write() from a faulting address leaves in a pipe) puts
 * zero-length entries on the ring (QEMU: "virtio: zero sized buffers are not
 * allowed") and overruns the indirect descriptor table sized by the filled
 * count (the oops in PID 1). So a chunk first moves from the command's pipe
 * into a private pipe of exactly GUEST_OUTPUT_CHUNK bytes (page slots;
 * pipe-to-pipe splice only moves buffer references, and nobody else writes
 * there). Only when that moved a full chunk, which in that many slots means
 * every buffer is one full page, is the private pipe spliced to the port,
 * asking for all it holds. Anything else is read out of it, one copy, as
 * before. (A buffer larger than a page, spliced in by the command from a
 * socket, could hide an empty one in a full chunk; that takes a root process
 * in the guest, which can crash its kernel anyway, and the host trusts no
 * guest.) */
static int guest_splice_ready(struct guest *g)
{
	if (g->splice_state == 0) {
		g->splice_state = -1;
		if (guest_port_splice_ok(g->chan_fd) && pipe2(g->splice_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
			if (fcntl(g->splice_pipe[1], F_SETPIPE_SZ, (int)GUEST_OUTPUT_CHUNK) ==
			    (int)GUEST_OUTPUT_CHUNK)
				g->splice_state = 1;
			else {
				close(g->splice_pipe[0]);
				close(g->splice_pipe[1]);
			}
		}
		log_debug("exec output: splice %s", g->splice_state > 0 ? "on" : "off");
	}
	return g->splice_state > 0;
}

/* Reads exactly n bytes (all the private pipe holds) into p. */
static int guest_splice_unload(struct guest *g, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(g->splice_pipe[0], p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_error("exec output: private pipe read: %s", r < 0 ? strerror(errno) : "empty");
			return r < 0 ? -errno : -EIO;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Sends one output frame of up to GUEST_OUTPUT_CHUNK bytes from *fd through
 * the private pipe. Same returns as guest_exec_pump. */
static int guest_exec_pump_splice(struct guest *g, struct guest_exec *e, int *fd, int stream,
				  uint8_t *raw)
{
	ssize_t b;
	do
		b = splice(*fd, NULL, g->splice_pipe[1], NULL, GUEST_OUTPUT_CHUNK, SPLICE_F_NONBLOCK);
	while (b < 0 && errno == EINTR);
	if (b < 0 && errno == EAGAIN)
		return 0;
	if (b <= 0) {
		guest_fd_close(fd);
		return 0;
	}
	struct frame_bin fb = { .type = FRAME_BIN_OUTPUT, .arg = (uint8_t)stream,
				.exec = (uint64_t)e->id, .len = (size_t)b };
	int rc = frame_bin_header(&fb, raw);
	if (rc < 0)
		return rc;
	size_t hdr = 0, left = (size_t)b;
	if ((size_t)b == GUEST_OUTPUT_CHUNK) {
		while (hdr < FRAME_BIN_PREFIX) {
			ssize_t w = write(g->chan_fd, raw + hdr, FRAME_BIN_PREFIX - hdr);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			hdr += (size_t)w;
		}
		while (hdr == FRAME_BIN_PREFIX && left > 0) {
			/* Always all the private pipe holds: see above. */
			ssize_t w = splice(g->splice_pipe[0], NULL, g->chan_fd, NULL, left, SPLICE_F_NONBLOCK);
			if (w < 0 && errno == EINTR)
				continue;
			if (w == 0) {
				/* The driver dropped the pages (no ring slot): the frame is
				 * broken beyond repair. */
				log_error("exec output: the port dropped a spliced chunk");
				return -EIO;
			}
			if (w < 0)
				break; /* full (EAGAIN) or failing: the queue and the flush take over */
			left -= (size_t)w;
		}
	}
	if (left == 0)
		return (int)b;
	/* The rest of the frame, contiguous behind what was sent. */
	if ((rc = guest_splice_unload(g, raw + FRAME_BIN_PREFIX + ((size_t)b - left), left)) < 0)
		return rc;
	const uint8_t *from = hdr < FRAME_BIN_PREFIX ? raw + hdr : raw + FRAME_BIN_PREFIX + ((size_t)b - left);
	const uint8_t *end = raw + FRAME_BIN_PREFIX + (size_t)b;
	rc = guest_chan_append(g, from, (size_t)(end - from));
	return rc < 0 ? rc : (int)b;
}

/* Reads up to max bytes of fd into an exec.output notification. Returns the
 * bytes sent, 0 when the pipe is empty or at EOF (then closed), or -errno. */
static int guest_exec_pump(struct guest *g, struct guest_exec *e, int *fd, int stream,
			   size_t max)
{
	/* Read straight behind the frame's header: one copy into the queue, no
	 * base64, no JSON. */
	static uint8_t raw[FRAME_BIN_PREFIX + GUEST_OUTPUT_CHUNK];
	ssize_t r;
	if (max > GUEST_OUTPUT_CHUNK)
		max = GUEST_OUTPUT_CHUNK;
	/* Spliced output goes straight to the channel, so only when nothing is
	 * queued before it. */
	if (max == GUEST_OUTPUT_CHUNK && guest_chan_pending(g) == 0 && guest_splice_ready(g))
		return guest_exec_pump_splice(g, e, fd, stream, raw);
	do
		r = read(*fd, raw + FRAME_BIN_PREFIX, max);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r <= 0) {
		guest_fd_close(fd);
		return 0;
	}
	struct frame_bin b = { .type = FRAME_BIN_OUTPUT, .arg = (uint8_t)stream,
			       .exec = (uint64_t)e->id, .len = (size_t)r };
	int rc = frame_bin_header(&b, raw);
	if (rc == 0)
		rc = guest_chan_append(g, raw, FRAME_BIN_PREFIX + (size_t)r);
	return rc < 0 ? rc : (int)r;
}

static size_t guest_pipe_size(int fd)
{
	int n = fd >= 0 ? fcntl(fd, F_GETPIPE_SZ) : 0;
	return n > 0 ? (size_t)n : 1u << 20;
}

void guest_exec_reap(struct guest *g)
{
	int status;
	pid_t pid;
	/* PID 1 inherits every orphan: reap them all, keep the status of ours. */
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < GUEST_EXEC_MAX; i++) {
			struct guest_exec *e = &g->execs[i];
			if (e->in_use && !e->exited && e->pid == pid) {
				e->exited = 1;
				e->status = status;
				/* All the leader wrote is in the pipes now, at most
				 * their capacity: owe that much, not what background
				 * processes write later (they could write forever). */
				e->drain_left[0] = guest_pipe_size(e->out_fd);
				e->drain_left[1] = guest_pipe_size(e->err_fd);
			}
		}
	}
}

void guest_exec_kill_all(struct guest *g)
{
	for (int i = 0; i < GUEST_EXEC_MAX; i++)
		if (g->execs[i].in_use && !g->execs[i].exited)
			kill(-g->execs[i].pid, SIGKILL);
}

size_t guest_exec_pollfds(struct guest *g, struct pollfd *pfds, size_t max, int want_output)
{
	size_t n = 0;
	for (int i = 0; i < GUEST_EXEC_MAX && n + 3 <= max; i++) {
		struct guest_exec *e = &g->execs[i];
		if (!e->in_use)
			continue;
		if (want_output && e->out_fd >= 0)
			pfds[n++] = (struct pollfd){ .fd = e->out_fd, .events = POLLIN };
		if (want_output && e->err_fd >= 0)
			pfds[n++] = (struct pollfd){ .fd = e->err_fd, .events = POLLIN };
		if (e->in_fd >= 0 && e->inq.len > e->in_off)
			pfds[n++] = (struct pollfd){ .fd = e->in_fd, .events = POLLOUT };
	}
	return n;
}

int guest_exec_events(struct guest *g, const struct pollfd *pfds, size_t n)
{
	int rc = 0;
	for (size_t k = 0; k < n && rc >= 0; k++) {
		if (!pfds[k].revents)
			continue;
		for (int i = 0; i < GUEST_EXEC_MAX && rc >= 0; i++) {
			struct guest_exec *e = &g->execs[i];
			if (!e->in_use)
				continue;
			/* Re-check: a pump earlier in this pass may have closed the fd. */
			if (pfds[k].fd == e->out_fd && guest_chan_pending(g) < GUEST_OUTQ_HIGH)
				rc = guest_exec_pump(g, e, &e->out_fd, 1, GUEST_OUTPUT_CHUNK);
			else if (pfds[k].fd == e->err_fd && guest_chan_pending(g) < GUEST_OUTQ_HIGH)
				rc = guest_exec_pump(g, e, &e->err_fd, 2, GUEST_OUTPUT_CHUNK);
			else if (pfds[k].fd == e->in_fd)
				rc = guest_exec_write_stdin(g, e);
		}
	}
	return rc < 0 ? rc : 0;
}

int guest_exec_timeouts(struct guest *g)
{
	uint64_t now = guest_now_ms(), next = 0;
	for (int i = 0; i < GUEST_EXEC_MAX; i++) {
		struct guest_exec *e = &g->execs[i];
		if (!e->in_use || e->exited || !e->deadline_ms)
			continue;
		if (e->deadline_ms <= now) {
			kill(-e->pid, SIGKILL);
			e->timed_out = 1;
			e->deadline_ms = 0;
		} else if (!next || e->deadline_ms < next) {
			next = e->deadline_ms;
		}
	}
	if (!next)
		return -1;
	return next - now > 60000 ? 60000 : (int)(next - now);
}

/* One step of draining an exited command's pipe: read up to what is still
 * owed; close once it is paid, the pipe is empty, or at EOF. */
static int guest_exec_drain(struct guest *g, struct guest_exec *e, int *fd, int stream,
			    size_t *left)
{
	if (*fd < 0)
		return 0;
	int rc = *left ? guest_exec_pump(g, e, fd, stream, *left) : 0;
	if (rc > 0)
		*left -= (size_t)rc;
	if (rc == 0 || *left == 0)
		guest_fd_close(fd);
	return rc < 0 ? rc : 0;
}

static int guest_exec_send_exit(struct guest *g, struct guest_exec *e)
{
	json_t *p = json_pack("{s:I}", "exec", (json_int_t)e->id);
	if (WIFSIGNALED(e->status))
		json_object_set_new(p, "signal", json_integer(WTERMSIG(e->status)));
	else
		json_object_set_new(p, "code", json_integer(WEXITSTATUS(e->status)));
	if (e->timed_out)
		json_object_set_new(p, "timed_out", json_true());
	return guest_chan_send(g, rpc_notification("exec.exit", p));
}

int guest_exec_finish(struct guest *g)
{
	int rc = 0;
	for (int i = 0; i < GUEST_EXEC_MAX && rc >= 0; i++) {
		struct guest_exec *e = &g->execs[i];
		if (!e->in_use || !e->exited)
			continue;
		/* Read what the leader left behind, within the output budget. */
		while (rc >= 0 && (e->out_fd >= 0 || e->err_fd >= 0) &&
		       guest_chan_pending(g) < GUEST_OUTQ_HIGH) {
			rc = guest_exec_drain(g, e, &e->out_fd, 1, &e->drain_left[0]);
			if (rc >= 0)
				rc = guest_exec_drain(g, e, &e->err_fd, 2, &e->drain_left[1]);
		}
		if (rc < 0 || e->out_fd >= 0 || e->err_fd >= 0)
			continue;
		guest_fd_close(&e->in_fd);
		rc = guest_exec_answer_waits(g, e, "the command exited");
		if (rc >= 0)
			rc = guest_exec_send_exit(g, e);
		buf_free(&e->inq);
		memset(e, 0, sizeof(*e));
		e->out_fd = e->err_fd = e->in_fd = -1;
	}
	return rc < 0 ? rc : 0;
}
