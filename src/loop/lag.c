/* The loop-lag probe: see loop.h. */
#include "loop/loop.h"

#include <string.h>

#include "core/log.h"

static void loop_lag_on_prepare(uv_prepare_t *p)
{
	struct loop_lag *lag = p->data;
	uint64_t wall = uv_hrtime();
	uint64_t idle = uv_metrics_idle_time(lag->loop);
	if (lag->last_wall_ns) {
		uint64_t busy_ns = (wall - lag->last_wall_ns) - (idle - lag->last_idle_ns);
		double busy_ms = (double)busy_ns / 1e6;
		lag->iterations++;
		if (busy_ms > lag->worst_ms)
			lag->worst_ms = busy_ms;
		if (busy_ms > lag->threshold_ms) {
			lag->over++;
			log_debug("loop: one iteration held the loop for %.1f ms (threshold %.0f ms)", busy_ms,
				  lag->threshold_ms);
		}
	}
	lag->last_wall_ns = wall;
	lag->last_idle_ns = idle;
}

int loop_lag_start(struct loop_lag *lag, uv_loop_t *loop, double threshold_ms)
{
	memset(lag, 0, sizeof(*lag));
	lag->loop = loop;
	lag->threshold_ms = threshold_ms;
	/* Idle time is only accumulated once asked for; asking twice is harmless. */
	int rc = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
	if (rc < 0)
		return rc;
	uv_prepare_init(loop, &lag->prepare);
	lag->prepare.data = lag;
	uv_prepare_start(&lag->prepare, loop_lag_on_prepare);
	uv_unref((uv_handle_t *)&lag->prepare);
	lag->running = 1;
	return 0;
}

void loop_lag_stop(struct loop_lag *lag)
{
	if (!lag->running)
		return;
	lag->running = 0;
	uv_prepare_stop(&lag->prepare);
	uv_close((uv_handle_t *)&lag->prepare, NULL);
	log_debug("loop: %lu iterations, worst %.1f ms, %lu over %.0f ms", lag->iterations,
		  lag->worst_ms, lag->over, lag->threshold_ms);
}

void loop_lag_debug(struct loop_lag *lag, uv_loop_t *loop)
{
	memset(lag, 0, sizeof(*lag));
	if (log_enabled(LOG_DEBUG))
		loop_lag_start(lag, loop, 50.0);
}
