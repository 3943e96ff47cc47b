/* The one monotonic clock every timeout, deadline and measurement uses. */
#ifndef IRONCLAW_CORE_CLOCK_H
#define IRONCLAW_CORE_CLOCK_H

/* Milliseconds since an arbitrary fixed point (CLOCK_MONOTONIC), with the
 * sub-millisecond part kept as the fraction. */
double clock_now_ms(void);

#endif
