/* `make bench`, images: cold `ironclaw exec -- true` on a Debian image
 * (the dev image when built, else the tests' ci-small) against the busybox
 * initramfs, alternating in the same run (target: image <= 1.15x busybox, by
 * median); then `python3 -c pass` round trips in one running VM on the image
 * (p50, p99); then the image's size and recorded build time (printed, not a
 * target). Usage: image_bench IRONCLAW_BIN [RUNS]. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/clock.h"
#include "image/image.h"
#include "lib/benchlib.h"
#include "vm/vm.h"

#define RTT_RUNS 20
#define TARGET_RATIO 1.15

static double cold_exec_ms(const char *bin, const char *image)
{
	double t0 = clock_now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (image)
			execl(bin, bin, "exec", "--image", image, "--", "true", (char *)NULL);
		else
			execl(bin, bin, "exec", "--", "true", (char *)NULL);
		_exit(127);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return clock_now_ms() - t0;
}

/* `python3 -c pass`, RTT_RUNS times in one running VM on the image. */
static int python_rtt(const char *path, double *p50, double *p99)
{
	static char *const argv[] = { "python3", "-c", "pass", NULL };
	struct vm_options o = { .root_image = path };
	return bench_exec_rtt_of(&o, argv, RTT_RUNS, p50, p99);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: image_bench IRONCLAW_BIN [RUNS]\n");
		return 2;
	}
	int runs = argc > 2 ? atoi(argv[2]) : 7;
	if (runs < 1 || runs > 100)
		runs = 7;
	struct image_info info;
	const char *name = "dev";
	if (image_lookup(name, &info, NULL) < 0) {
		name = "ci-small";
		if (image_lookup(name, &info, NULL) < 0) {
			printf("image: no dev or ci-small image (hint: `make image-dev`): skipped\n");
			return 0;
		}
	}
	double *bb = calloc((size_t)runs, sizeof(double)), *im = calloc((size_t)runs, sizeof(double));
	int status = 0;
	/* One warm-up of each (page cache, the accelerator verdict), then
	 * alternating, so that host load drifts hit both alike. */
	cold_exec_ms(argv[1], NULL);
	cold_exec_ms(argv[1], name);
	for (int i = 0; i < runs; i++) {
		bb[i] = cold_exec_ms(argv[1], NULL);
		im[i] = cold_exec_ms(argv[1], name);
		if (bb[i] < 0 || im[i] < 0) {
			fprintf(stderr, "image_bench: a cold exec %s failed (run %d); again with its stderr:\n",
				bb[i] < 0 ? "on busybox" : "on the image", i);
			char cmd[512];
			snprintf(cmd, sizeof(cmd), "%s exec %s%s -- true", argv[1], bb[i] < 0 ? "" : "--image ",
				 bb[i] < 0 ? "" : name);
			if (system(cmd) != 0)
				fprintf(stderr, "image_bench: failed again\n");
			status = 1;
			goto out;
		}
	}
	double b50 = bench_percentile(bb, runs, 50), i50 = bench_percentile(im, runs, 50);
	double ratio = i50 / b50;
	printf("image: cold exec -- true, median of %d: busybox %.0f ms, image '%s' %.0f ms: %.2fx (target <= %.2fx) %s\n",
	       runs, b50, name, i50, ratio, TARGET_RATIO, ratio <= TARGET_RATIO ? "ok" : "MISSED");
	if (ratio > TARGET_RATIO)
		status = 1;
	double p50, p99;
	if (python_rtt(info.path, &p50, &p99) < 0) {
		status = 1;
		goto out;
	}
	printf("image: exec -- python3 -c pass in a running VM on '%s', %d runs: p50 %.0f ms, p99 %.0f ms\n", name,
	       RTT_RUNS, p50, p99);
	json_t *bs = json_object_get(info.meta, "build_seconds");
	printf("image: '%s' is %.1f MiB (%s), built in %.1f s\n", name, (double)info.bytes / 1048576.0, info.path,
	       json_number_value(bs));
out:
	image_info_free(&info);
	free(bb);
	free(im);
	return status;
}
