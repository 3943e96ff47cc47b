/* Measurements both VM benchmarks take the same way (bench/vm_bench.c,
 * bench/agent_bench.c): statistics, the exec round-trip in a running VM, and
 * the raw virtio-serial port (a guest whose /init,
 * tests/data/guests/raw-writer.sh, hands over to the static
 * bench/guest/raw_port.c, which moves BENCH_RAW_BYTES straight over the port;
 * started with the QEMU backend's own command line). One copy, so the
 * baselines the two benches compare against cannot drift apart. */
#ifndef IRONCLAW_BENCH_LIB_H
#define IRONCLAW_BENCH_LIB_H

#include "vm/accel.h"
#include "vm/image.h"
#include "vm/vm.h"

#define BENCH_RAW_BYTES (64u << 20)
/* The raw port's guest side (bench/guest/raw_port.c), under IRONCLAW_ROOT. */
#define BENCH_RAW_PORT_BIN "build/bench/raw-port"
#define BENCH_RAW_TIMEOUT_MS 120000
#define BENCH_RTT_MAX 1000

/* The p-th percentile (0..100) of n values; v is not changed. */
double bench_percentile(const double *v, int n, double p);
double bench_mbps(double bytes, double ms);
/* `true` run `runs` times (at most BENCH_RTT_MAX) in one fresh VM, each timed
 * from exec.start to exec.exit. Returns 0 with p50 and p99 (may be NULL). */
int bench_exec_rtt(int runs, double *p50, double *p99);
/* The same for argv in a fresh VM made with o (an image, a shape). */
int bench_exec_rtt_of(const struct vm_options *o, char *const *argv, int runs, double *p50,
		      double *p99);
/* MB/s over the raw port, from the first byte to the last (the boot is not
 * counted); in: host -> guest (timed to the guest's answer after its last
 * read). -1 when the run failed (the guest's console tail is printed). */
double bench_raw_port_once(const struct vm_image *img, enum vm_accel accel, int in);

#endif
