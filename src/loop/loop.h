/* Helpers for the host's one libuv loop, shared by every host subsystem.
 *
 * The loop-lag probe measures how long the loop was busy in each iteration:
 * the wall time between two iterations minus the time the loop spent waiting in
 * epoll (libuv's idle-time metric). A callback that blocks (a waitpid, a sleep, a
 * fork of a helper tool, a synchronous connect) shows up as one busy iteration of
 * at least that length, whatever else runs. Iterations over the threshold are
 * logged at debug level (IRONCLAW_LOG=debug), with the worst kept for tests and
 * benchmarks. */
#ifndef IRONCLAW_LOOP_LOOP_H
#define IRONCLAW_LOOP_LOOP_H

#include <stdint.h>
#include <uv.h>

struct loop_lag {
	uv_loop_t *loop;
	uv_prepare_t prepare;
	double threshold_ms;
	uint64_t last_wall_ns;
	uint64_t last_idle_ns;
	double worst_ms;          /* the longest busy iteration seen */
	unsigned long iterations;
	unsigned long over;       /* iterations longer than threshold_ms */
	int running;
};

/* Starts measuring loop's iterations (the prepare handle keeps the loop alive
 * only while other handles do: it is unref'ed). Returns 0 or a negative errno. */
int loop_lag_start(struct loop_lag *lag, uv_loop_t *loop, double threshold_ms);
/* Stops and closes the handle (asynchronously, like any libuv handle). */
void loop_lag_stop(struct loop_lag *lag);
/* Starts the probe on loop when IRONCLAW_LOG=debug, leaking nothing otherwise:
 * a convenience for the CLI's commands. */
void loop_lag_debug(struct loop_lag *lag, uv_loop_t *loop);

#endif
