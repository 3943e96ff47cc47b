/* One event loop, never blocked: while VMs start and stop (with and without a
 * network, one destroyed mid-boot), no loop iteration may be busy for longer
 * than 50 ms. The probe itself is shown to see a callback that blocks, so the
 * second test cannot pass by measuring nothing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "integration/lib/vmrun.h"
#include "loop/loop.h"

#define LAG_LIMIT_MS 50.0

static void blocking_timer(uv_timer_t *t)
{
	(void)t;
	usleep(80 * 1000);   /* what a waitpid or a forked `ip` would do */
}

Test(loop_lag, probe_sees_a_blocking_callback)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct loop_lag lag;
	cr_assert_eq(loop_lag_start(&lag, &loop, LAG_LIMIT_MS), 0);
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	uv_timer_start(&t, blocking_timer, 5, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	loop_lag_stop(&lag);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
	cr_assert_geq(lag.worst_ms, 79.0, "the probe saw only %.1f ms of an 80 ms block", lag.worst_ms);
	cr_assert_geq(lag.over, 1);
}

static void lag_run_done(struct vmrun *r)
{
	(void)r;
}

Test(loop_lag, vms_start_and_stop_without_holding_the_loop, .timeout = 300)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct loop_lag lag;
	cr_assert_eq(loop_lag_start(&lag, &loop, LAG_LIMIT_MS), 0);
	static char *argv[] = { "sh", "-c", "echo hi", NULL };
	struct vmrun runs[3] = {
		{ .loop = &loop, .argv = argv, .on_done = lag_run_done },
		{ .loop = &loop, .argv = argv, .net = 1, .on_done = lag_run_done },
		{ .loop = &loop, .argv = argv, .abandon = 1, .on_done = lag_run_done },
	};
	for (int i = 0; i < 3; i++)
		cr_assert_eq(vmrun_start(&runs[i]), 0, "vm_create: %s", runs[i].why);
	uv_run(&loop, UV_RUN_DEFAULT);
	loop_lag_stop(&lag);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
	printf("loop lag: %lu iterations, worst %.1f ms\n", lag.iterations, lag.worst_ms);
	for (int i = 0; i < 2; i++) {
		cr_assert_not(runs[i].failed, "run %d: %s", i, runs[i].why);
		cr_assert_eq(runs[i].exit_code, 0);
		cr_assert_eq(runs[i].out_len, 3);
	}
	cr_assert(runs[2].destroyed);
	cr_assert_gt(lag.iterations, 10);
	cr_assert_lt(lag.worst_ms, LAG_LIMIT_MS, "one loop iteration was busy for %.1f ms", lag.worst_ms);
}
