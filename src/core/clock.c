/* Monotonic clock: see clock.h. Never the wall clock, which can jump. */
#include "core/clock.h"

#include <time.h>

double clock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}
