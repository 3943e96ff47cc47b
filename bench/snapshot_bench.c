/* Snapshot bench: restore-to-ready against cold-boot-to-ready, in the same
 * run, alternating, and the host memory of an idle clone against an idle cold
 * VM.
 *
 * Both are timed from vm_create to `ready` on one loop: the cold VM to its
 * guest's hello, the clone to its answer to vm.identity (fresh entropy, clock,
 * hostname, id; see vm.h). The restore is also shown with the template check
 * in front of it (vm_template_open: key, then the state's SHA-256), which is
 * what `ironclaw exec` pays. Target: median restore + check <= 0.15x the
 * median cold boot. The template is made first if none fits (not timed; its
 * save time is printed).
 *
 * Memory: each kind of VM is left idle for BENCH_IDLE_MS after ready, then the
 * VMM's Rss and Pss are read from /proc/PID/smaps_rollup.
 *
 * Templates go to a cache of the bench's own (build/bench-cache), so a user's
 * templates are neither used nor changed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/benchlib.h"
#include "vm/template.h"
#include "vm/vm.h"

#define BENCH_ROUNDS 5
#define BENCH_IDLE_MS 2000
#define BENCH_TARGET 0.15

struct one {
	uv_loop_t *loop;
	struct vm *vm;
	uv_timer_t idle;
	int measure_mem;
	double t0, ready_ms;
	double rss_mb, pss_mb;
	int ok;
	char why[1024];
};

static double now_ms(void)
{
	return (double)uv_hrtime() / 1e6;
}

static void read_rollup(int pid, double *rss, double *pss)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	*rss = *pss = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;
		if (sscanf(line, "Rss: %llu kB", &kb) == 1)
			*rss = (double)kb / 1024.0;
		else if (sscanf(line, "Pss: %llu kB", &kb) == 1)
			*pss = (double)kb / 1024.0;
	}
	fclose(f);
}

static void one_idle_over(uv_timer_t *t)
{
	struct one *o = t->data;
	read_rollup(vm_vmm_pid(o->vm), &o->rss_mb, &o->pss_mb);
	uv_close((uv_handle_t *)&o->idle, NULL);
	vm_destroy(o->vm);
}

static void one_ready(struct vm *vm, void *ctx)
{
	struct one *o = ctx;
	o->ready_ms = now_ms() - o->t0;
	o->ok = 1;
	if (!o->measure_mem) {
		vm_destroy(vm);
		return;
	}
	uv_timer_init(o->loop, &o->idle);
	o->idle.data = o;
	uv_timer_start(&o->idle, one_idle_over, BENCH_IDLE_MS, 0);
}

static void one_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct one *o = ctx;
	snprintf(o->why, sizeof(o->why), "%s", e->msg);
	vm_destroy(vm);
}

/* One VM to ready (restored when state is set); -1 on failure. */
static double one_run(const char *state, int measure_mem, struct one *o)
{
	static const struct vm_events ev = { .ready = one_ready, .failed = one_failed };
	uv_loop_t loop;
	uv_loop_init(&loop);
	memset(o, 0, sizeof(*o));
	o->loop = &loop;
	o->measure_mem = measure_mem;
	struct vm_options opt = { .restore_from = state };
	struct err e = { 0 };
	o->t0 = now_ms();
	if (vm_create(&loop, &opt, &ev, o, &o->vm, &e) < 0) {
		snprintf(o->why, sizeof(o->why), "%s", e.msg);
		uv_loop_close(&loop);
		return -1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (!o->ok)
		fprintf(stderr, "snapshot_bench: %s VM failed: %s\n", state ? "restored" : "cold", o->why);
	return o->ok ? o->ready_ms : -1;
}

struct built {
	int done;
	struct vm_template t;
	struct err e;
};

static void on_built(void *ctx, const struct vm_template *t, const struct err *e)
{
	struct built *b = ctx;
	b->done = 1;
	if (t)
		b->t = *t;
	else
		b->e = *e;
}

static int ensure_template(struct vm_template *t)
{
	struct vm_template_shape s = { 0 };
	struct err e = { 0 };
	if (vm_template_open(&s, t, &e) == 0) {
		printf("template %.12s: %.1f MB state (saved in %.0f ms when made)\n", t->key,
		       (double)t->state_bytes / 1e6, t->save_ms);
		return 0;
	}
	uv_loop_t loop;
	struct built b = { 0 };
	uv_loop_init(&loop);
	if (vm_template_build(&loop, &s, on_built, &b, &e) < 0) {
		fprintf(stderr, "snapshot_bench: %s\n", e.msg);
		return -1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (b.e.code) {
		fprintf(stderr, "snapshot_bench: building the template: %s\n", b.e.msg);
		return -1;
	}
	*t = b.t;
	printf("template %.12s made: %.1f MB state, saved in %.0f ms\n", t->key,
	       (double)t->state_bytes / 1e6, t->save_ms);
	return 0;
}

int main(void)
{
	char dir[4096];
	const char *root = getenv("IRONCLAW_ROOT") ? getenv("IRONCLAW_ROOT") : ".";
	if (!getenv("IRONCLAW_IMAGE_DIR")) {
		snprintf(dir, sizeof(dir), "%s/build/image", root);
		setenv("IRONCLAW_IMAGE_DIR", dir, 1);
	}
	snprintf(dir, sizeof(dir), "%s/build/bench-cache", root);
	setenv("XDG_CACHE_HOME", dir, 1);
	struct vm_template t;
	if (ensure_template(&t) < 0)
		return 1;
	double cold[BENCH_ROUNDS], restore[BENCH_ROUNDS], check[BENCH_ROUNDS], total[BENCH_ROUNDS];
	struct one o;
	for (int i = 0; i < BENCH_ROUNDS; i++) {
		cold[i] = one_run(NULL, 0, &o);
		struct vm_template_shape s = { 0 };
		struct err e = { 0 };
		double c0 = now_ms();
		if (vm_template_open(&s, &t, &e) < 0) {
			fprintf(stderr, "snapshot_bench: %s\n", e.msg);
			return 1;
		}
		check[i] = now_ms() - c0;
		restore[i] = one_run(t.state, 0, &o);
		if (cold[i] < 0 || restore[i] < 0)
			return 1;
		total[i] = check[i] + restore[i];
	}
	double c50 = bench_percentile(cold, BENCH_ROUNDS, 50);
	double r50 = bench_percentile(restore, BENCH_ROUNDS, 50);
	double k50 = bench_percentile(check, BENCH_ROUNDS, 50);
	double t50 = bench_percentile(total, BENCH_ROUNDS, 50);
	double ratio = t50 / c50;
	printf("cold boot to ready:          p50 %7.1f ms  (min %.1f, max %.1f, %d runs)\n", c50,
	       bench_percentile(cold, BENCH_ROUNDS, 0), bench_percentile(cold, BENCH_ROUNDS, 100),
	       BENCH_ROUNDS);
	printf("restore to ready:            p50 %7.1f ms  (min %.1f, max %.1f)\n", r50,
	       bench_percentile(restore, BENCH_ROUNDS, 0), bench_percentile(restore, BENCH_ROUNDS, 100));
	printf("template check (memoised):   p50 %7.1f ms\n", k50);
	printf("restore + check vs cold:     %.3fx (target <= %.2fx) %s\n", ratio, BENCH_TARGET,
	       ratio <= BENCH_TARGET ? "ok" : "MISSED");

	struct one mc, mr;
	if (one_run(NULL, 1, &mc) < 0 || one_run(t.state, 1, &mr) < 0)
		return 1;
	printf("idle VMM memory after %d s:  cold Rss %.1f MB Pss %.1f MB; clone Rss %.1f MB Pss %.1f MB (%.2fx)\n",
	       BENCH_IDLE_MS / 1000, mc.rss_mb, mc.pss_mb, mr.rss_mb, mr.pss_mb,
	       mc.pss_mb > 0 ? mr.pss_mb / mc.pss_mb : 0.0);
	return ratio <= BENCH_TARGET ? 0 : 1;
}
