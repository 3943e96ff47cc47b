/* Agent benchmarks (`ironclaw run`), each against a baseline measured in the
 * same run:
 *
 *  1. the loop's own overhead per step: `ironclaw run` against a scripted
 *     model (aimock on loopback, started by bench/bench_agent.sh) that asks for
 *     N `run_command true` steps. From the run log (the JSONL under
 *     IRONCLAW_RUNS_DIR), a step's wall time is from the start of its model
 *     request to the start of the next one; its overhead is that minus the
 *     model request's latency (model.request ironclaw.latency_ms) and the tool
 *     call's time (tool.call ironclaw.duration_ms). Beside it: the exec
 *     round-trip of `true` in a running VM, 100 times (as bench/vm_bench.c).
 *     Target: p50 overhead <= 1x the round-trip p50.
 *  2. copy-in and copy-out of a 2,000-file, 50 MiB tree of random bytes
 *     through agent_copy_in / agent_copy_out on a VM from vm_create, each
 *     against the raw virtio-serial port in its own direction (lib/benchlib:
 *     copy-in against host -> guest, copy-out against guest -> host), in
 *     interleaved triples; the verdict is the median of the per-triple
 *     ratios. Target: each >= 0.5x raw. IRONCLAW_BENCH_ONLY=copy runs only
 *     this part, =raw only the two raw baselines.
 *
 * Usage: agent_bench IRONCLAW_BIN MODEL_BASE_URL. Prints a table and exits 1
 * when a target is missed, 2 when a measurement could not be made. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "agent/copy.h"
#include "audit/audit.h"
#include "core/clock.h"
#include "vm/accel.h"
#include "vm/exec.h"
#include "vm/image.h"
#include "vm/qemu.h"
#include "vm/vm.h"

#include "lib/benchlib.h"

#define AB_STEPS 40              /* the fixture's tool steps (bench_agent.sh writes it) */
#define AB_RTT_RUNS 100
#define AB_OVERHEAD_MAX 1.0      /* x the exec round-trip p50 */
#define AB_TREE_FILES 2000
#define AB_TREE_BYTES (50u << 20)
#define AB_TREE_DIRS 40
#define AB_THROUGHPUT_MIN 0.5
#define AB_PAIRS 3               /* raw / copy pairs, interleaved: drift hits both */
#define AB_RUN_TIMEOUT_S 300

/* ---- 1. the loop, from the run log (the round-trip baseline: lib/benchlib) -- */

/* Runs argv with stdout and stderr into files; returns the exit status or -1. */
static int ab_run(char *const *argv, const char *out, const char *errp)
{
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int in = open("/dev/null", O_RDONLY);
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int er = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || o < 0 || er < 0)
			_exit(127);
		dup2(in, 0);
		dup2(o, 1);
		dup2(er, 2);
		setsid(); /* no controlling terminal: no prompt, whatever runs the bench */
		alarm(AB_RUN_TIMEOUT_S);
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct step_times {
	double t_model[AB_STEPS + 2];   /* time_unix_ms of model.request, by step */
	double lat[AB_STEPS + 2];       /* its ironclaw.latency_ms */
	double dur[AB_STEPS + 2];       /* tool.call ironclaw.duration_ms */
	int have_model[AB_STEPS + 2], have_tool[AB_STEPS + 2];
};

/* Reads the one run log under runs; 0 when every step has both events. */
static int ab_read_runlog(const char *runs, struct step_times *s)
{
	DIR *d = opendir(runs);
	struct dirent *de;
	char path[512] = "";
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 6 && !strcmp(de->d_name + l - 6, ".jsonl"))
			snprintf(path, sizeof(path), "%s/%s", runs, de->d_name);
	}
	if (d)
		closedir(d);
	FILE *f = path[0] ? fopen(path, "r") : NULL;
	if (!f) {
		fprintf(stderr, "agent_bench: no run log under %s\n", runs);
		return -1;
	}
	memset(s, 0, sizeof(*s));
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		json_t *o = json_loads(line, 0, NULL);
		const char *ev = json_string_value(json_object_get(o, "event"));
		json_int_t step = json_integer_value(json_object_get(o, "ironclaw.step"));
		if (ev && step >= 1 && step <= AB_STEPS + 1) {
			if (!strcmp(ev, "model.request")) {
				s->t_model[step] = (double)json_integer_value(json_object_get(o, "time_unix_ms"));
				s->lat[step] = json_number_value(json_object_get(o, "ironclaw.latency_ms"));
				s->have_model[step] = 1;
			} else if (!strcmp(ev, "tool.call")) {
				const char *st = json_string_value(json_object_get(o, "ironclaw.tool.status"));
				s->dur[step] = json_number_value(json_object_get(o, "ironclaw.duration_ms"));
				s->have_tool[step] = st && !strcmp(st, "ok");
			}
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
	for (int i = 1; i <= AB_STEPS; i++)
		if (!s->have_model[i] || !s->have_tool[i] || !s->have_model[i + 1]) {
			fprintf(stderr, "agent_bench: step %d is missing from the run log %s\n", i, path);
			return -1;
		}
	return 0;
}

struct loop_result {
	double overhead[AB_STEPS];
	double lat[AB_STEPS], dur[AB_STEPS];
	double wall_s;
};

static int bench_loop(const char *ironclaw, const char *base_url, const char *tmp, struct loop_result *lr)
{
	char ws[256], runs[256], config[256], out[256], errp[256], url[512];
	snprintf(ws, sizeof(ws), "%s/loop-ws", tmp);
	snprintf(runs, sizeof(runs), "%s/runs", tmp);
	snprintf(config, sizeof(config), "%s/config.json", tmp);
	snprintf(out, sizeof(out), "%s/loop.out", tmp);
	snprintf(errp, sizeof(errp), "%s/loop.err", tmp);
	snprintf(url, sizeof(url), "%s/v1", base_url);
	if (mkdir(ws, 0755) < 0 || mkdir(runs, 0700) < 0)
		return -1;
	FILE *f = fopen(config, "w");
	if (!f)
		return -1;
	fputs("{}\n", f);
	fclose(f);
	setenv("IRONCLAW_RUNS_DIR", runs, 1);
	setenv("IRONCLAW_CONFIG", config, 1);
	setenv("OPENAI_API_KEY", "sk-bench-not-a-key", 1);
	char steps[16];
	snprintf(steps, sizeof(steps), "%d", AB_STEPS + 5);
	char *argv[] = { (char *)ironclaw, "run", "--workspace", ws, "--provider", "openai", "--base-url", url,
			 "--model", "bench", "--approve", "deny", "--max-steps", steps, "bench: loop steps", NULL };
	double t0 = clock_now_ms();
	int rc = ab_run(argv, out, errp);
	lr->wall_s = (clock_now_ms() - t0) / 1000.0;
	if (rc != 0) {
		fprintf(stderr, "agent_bench: ironclaw run exited %d; its stderr:\n", rc);
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' >&2", errp);
		if (system(cmd) != 0)
			fprintf(stderr, "(no stderr)\n");
		return -1;
	}
	struct step_times s;
	if (ab_read_runlog(runs, &s) < 0)
		return -1;
	/* Step i starts when its model request starts (logged at the reply, so
	 * time - latency) and ends when step i+1 starts. */
	for (int i = 1; i <= AB_STEPS; i++) {
		double start = s.t_model[i] - s.lat[i], next = s.t_model[i + 1] - s.lat[i + 1];
		lr->overhead[i - 1] = next - start - s.lat[i] - s.dur[i];
		lr->lat[i - 1] = s.lat[i];
		lr->dur[i - 1] = s.dur[i];
	}
	return 0;
}

/* ---- 2a. the tree ---------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* AB_TREE_FILES files of random bytes, sizes spread from 0.1x to 1.9x the
 * mean, AB_TREE_BYTES in all, in AB_TREE_DIRS directories. */
static int ab_make_tree(const char *root)
{
	static uint8_t data[(AB_TREE_BYTES / AB_TREE_FILES) * 2 + 4096];
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	size_t mean = AB_TREE_BYTES / AB_TREE_FILES, left = AB_TREE_BYTES;
	if (mkdir(root, 0755) < 0)
		return -1;
	for (int i = 0; i < AB_TREE_FILES; i++) {
		char p[512];
		if (i % (AB_TREE_FILES / AB_TREE_DIRS) == 0) {
			snprintf(p, sizeof(p), "%s/d%02d", root, i / (AB_TREE_FILES / AB_TREE_DIRS));
			if (mkdir(p, 0755) < 0)
				return -1;
		}
		size_t n = mean / 10 + (size_t)(xorshift(&seed) % (mean * 18 / 10));
		if (i == AB_TREE_FILES - 1 || n > left)
			n = left;   /* the last file takes what is left: the total is exact */
		left -= n;
		snprintf(p, sizeof(p), "%s/d%02d/f%04d.bin", root, i / (AB_TREE_FILES / AB_TREE_DIRS), i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return -1;
		/* The last file may be larger than data: written in pieces. */
		for (size_t done = 0; done < n;) {
			size_t piece = n - done < sizeof(data) ? n - done : sizeof(data);
			for (size_t k = 0; k + 8 <= sizeof(data) && k < piece + 8; k += 8) {
				uint64_t v = xorshift(&seed);
				memcpy(data + k, &v, 8);
			}
			if (write(fd, data, piece) != (ssize_t)piece) {
				close(fd);
				return -1;
			}
			done += piece;
		}
		close(fd);
	}
	if (left) {
		fprintf(stderr, "agent_bench: the tree is %zu bytes short\n", left);
		return -1;
	}
	return 0;
}

/* ---- 2b. copy-in and copy-out through the agent's path ---------------------- */

struct copy_run {
	uv_loop_t *loop;
	struct vm *vm;
	const char *root, *staging;
	struct workspace_pack_options po;
	struct workspace_manifest before, after;
	double t0, in_ms, out_ms, pack_ms, untar_ms;
	uint64_t pack_bytes;
	int step;                /* the ceiling's execs: 0 prepare, 1 timed */
	int failed;
};

static void copy_fail(struct copy_run *c, const char *what, const struct err *e)
{
	fprintf(stderr, "agent_bench: %s: %s\n", what, e ? e->msg : "failed");
	c->failed = 1;
	vm_destroy(c->vm);
}

static void copy_ceiling_next(struct copy_run *c);

/* The guest kernel's own ceiling for copy-in, not part of the verdict: the
 * same tree, tarred by busybox into the guest's tmpfs (/workspace emptied, so
 * memory holds), then unpacked by busybox `tar x` from there, timed from the
 * host like copy-in. No channel bytes at all: what is left is the guest's
 * per-file and per-page cost of creating the tree, which copy-in pays too. */
static void copy_ceiling_on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct copy_run *c = ctx;
	(void)x;
	if (r->err.code || r->signal || r->code || r->timed_out) {
		copy_fail(c, c->step ? "in-guest tar x" : "in-guest tar c", r->err.code ? &r->err : NULL);
		return;
	}
	if (c->step++ == 1) {
		c->untar_ms = clock_now_ms() - c->t0;
		vm_destroy(c->vm);
		return;
	}
	copy_ceiling_next(c);
}

static void copy_ceiling_next(struct copy_run *c)
{
	static char *prepare[] = { "/bin/sh", "-c",
		"tar cf /tmp/ceiling.tar -C /workspace . && rm -rf /workspace/* && mkdir /tmp/x", NULL };
	static char *timed[] = { "/bin/sh", "-c", "tar xf /tmp/ceiling.tar -C /tmp/x", NULL };
	static const struct vm_exec_handlers h = { .done = copy_ceiling_on_done };
	struct vm_exec_spec spec = { .argv = c->step ? timed : prepare, .cwd = "/",
				     .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	struct vm_exec *x;
	struct err e = { 0 };
	c->t0 = clock_now_ms();
	if (vm_exec_start(c->vm, &spec, &h, c, &x, &e) < 0)
		copy_fail(c, "in-guest tar", &e);
}

static void copy_pack_on_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct copy_run *c = ctx;
	(void)x;
	(void)d;
	if (stream == 1)
		c->pack_bytes += n;
}

static void copy_pack_on_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct copy_run *c = ctx;
	(void)x;
	c->pack_ms = clock_now_ms() - c->t0;
	if (r->err.code || r->signal || r->code || r->timed_out || c->pack_bytes < AB_TREE_BYTES) {
		copy_fail(c, "@ws-pack alone", r->err.code ? &r->err : NULL);
		return;
	}
	copy_ceiling_next(c);
}

/* The guest's half of copy-out alone: @ws-pack again on the same tree, its
 * stream counted and dropped on the host. Not part of the verdict; it says how
 * much of copy-out the host's unpacking adds. */
static void copy_on_out(void *ctx, const struct err *e)
{
	struct copy_run *c = ctx;
	c->out_ms = clock_now_ms() - c->t0;
	if (e) {
		copy_fail(c, "copy-out", e);
		return;
	}
	static char *argv[] = { "@ws-pack", "/workspace", NULL };
	static const struct vm_exec_handlers h = { .output = copy_pack_on_output, .done = copy_pack_on_done };
	struct vm_exec_spec spec = { .argv = argv, .cwd = "/", .timeout_ms = AGENT_COPY_TIMEOUT_MS };
	struct vm_exec *x;
	struct err e2 = { 0 };
	c->t0 = clock_now_ms();
	if (vm_exec_start(c->vm, &spec, &h, c, &x, &e2) < 0)
		copy_fail(c, "@ws-pack alone", &e2);
}

static void copy_on_in(void *ctx, const struct err *e)
{
	struct copy_run *c = ctx;
	c->in_ms = clock_now_ms() - c->t0;
	if (e) {
		copy_fail(c, "copy-in", e);
		return;
	}
	struct err e2 = { 0 };
	c->t0 = clock_now_ms();
	if (agent_copy_out_against(c->loop, c->vm, c->staging, &c->before, &c->after, copy_on_out, c,
				   &e2) < 0)
		copy_fail(c, "copy-out", &e2);
}

static void copy_on_ready(struct vm *vm, void *ctx)
{
	struct copy_run *c = ctx;
	struct err e = { 0 };
	(void)vm;
	c->t0 = clock_now_ms();
	if (agent_copy_in(c->loop, c->vm, c->root, &c->po, &c->before, copy_on_in, c, &e) < 0)
		copy_fail(c, "copy-in", &e);
}

static void copy_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	(void)vm;
	copy_fail(ctx, "VM failed", e);
}

/* Same files, same bytes back: a copy that lost or changed data is no result. */
static int copy_check(const struct copy_run *c)
{
	size_t files = 0;
	for (size_t i = 0; i < c->before.n; i++) {
		const struct workspace_entry *b = &c->before.v[i];
		if (b->type != WORKSPACE_FILE)
			continue;
		files++;
		const struct workspace_entry *a = workspace_manifest_find(&c->after, b->path);
		if (!a || a->size != b->size || memcmp(a->sha256, b->sha256, sizeof(a->sha256))) {
			fprintf(stderr, "agent_bench: %s did not come back intact\n", b->path);
			return -1;
		}
	}
	if (files != AB_TREE_FILES || c->before.bytes != AB_TREE_BYTES || c->after.bytes != AB_TREE_BYTES) {
		fprintf(stderr, "agent_bench: copied %zu files, %llu bytes in, %llu out\n", files,
			(unsigned long long)c->before.bytes, (unsigned long long)c->after.bytes);
		return -1;
	}
	return 0;
}

static int bench_copy(const char *root, const char *tmp, int pair, double *in_mbps, double *out_mbps,
		      double *pack_mbps, double *untar_mbps)
{
	char staging[PATH_MAX + 32];
	snprintf(staging, sizeof(staging), "%s/staging%d", tmp, pair);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct copy_run c = { .loop = &loop, .root = root, .staging = staging };
	struct vm_options o = { 0 };
	static const struct vm_events ev = { .ready = copy_on_ready, .failed = copy_on_failed };
	struct err e = { 0 };
	if (vm_create(&loop, &o, &ev, &c, &c.vm, &e) < 0) {
		fprintf(stderr, "agent_bench: %s\n", e.msg);
		uv_loop_close(&loop);
		return -1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	int rc = c.failed ? -1 : copy_check(&c);
	*in_mbps = bench_mbps(AB_TREE_BYTES, c.in_ms);
	*out_mbps = bench_mbps(AB_TREE_BYTES, c.out_ms);
	*pack_mbps = bench_mbps(AB_TREE_BYTES, c.pack_ms);
	*untar_mbps = bench_mbps(AB_TREE_BYTES, c.untar_ms);
	workspace_manifest_free(&c.before);
	workspace_manifest_free(&c.after);
	/* The staging tree stays until the run's end (main removes stage): on a
	 * journal-less ext4 host (this dev machine's), ext4 skips inodes freed in
	 * the last 30 s when it allocates one, reading each one's inode block, so
	 * removing 2,000 files here made the next pair's copy-out pay a scan per
	 * created file (docs/bench.md, Agent). */
	return rc;
}

/* mkdir -p: the runs dir may not exist yet on a fresh machine. */
static int bench_mkdir_p(const char *path)
{
	char d[PATH_MAX];
	if (snprintf(d, sizeof(d), "%s", path) >= (int)sizeof(d))
		return -1;
	for (char *p = d + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(d, 0700) < 0 && errno != EEXIST)
				return -1;
			*p = c;
			if (!c)
				return 0;
		}
	}
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: agent_bench IRONCLAW_BIN MODEL_BASE_URL\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct vm_image img;
	struct err e = { 0 };
	if (vm_image_find(&img, &e) < 0) {
		fprintf(stderr, "agent_bench: %s\n", e.msg);
		return 2;
	}
	struct vm_accel_verdict accel;
	vm_accel_detect(QEMU_BINARY, img.kernel, img.initrd, &accel);
	printf("accelerator: %s (%s)\n", vm_accel_name(accel.accel), accel.reason);
	const char *only = getenv("IRONCLAW_BENCH_ONLY");
	if (only && !strcmp(only, "raw")) {   /* checking the baseline alone */
		double gh = bench_raw_port_once(&img, accel.accel, 0);
		double hg = bench_raw_port_once(&img, accel.accel, 1);
		printf("raw virtio-serial: guest -> host %.1f MB/s, host -> guest %.1f MB/s\n", gh, hg);
		return gh > 0 && hg > 0 ? 0 : 2;
	}
	char tmp[] = "/tmp/ironclaw-agentbench-XXXXXX";
	if (!mkdtemp(tmp))
		return 2;
	/* Copy-out stages where `ironclaw run` stages (src/agent/changes.c: the
	 * runs directory), not in /tmp: file creation there costs what it costs
	 * a run, and on this host /tmp's ext4 groups are the ones every test's
	 * mkdtemp churns (docs/bench.md, Agent). */
	char stage[PATH_MAX];
	char *runs = runlog_dir_default();
	int n = runs ? snprintf(stage, sizeof(stage), "%s/agentbench-XXXXXX", runs) : -1;
	if (n < 0 || (size_t)n >= sizeof(stage) || bench_mkdir_p(runs) < 0 || !mkdtemp(stage)) {
		fprintf(stderr, "agent_bench: cannot make a staging dir in the runs dir %s (hint: set "
			"IRONCLAW_RUNS_DIR to a writable directory)\n", runs ? runs : "(none)");
		free(runs);
		rmdir(tmp);
		return 2;
	}
	free(runs);
	int status = 2;

	/* IRONCLAW_BENCH_ONLY=copy: the copies and their baselines alone. */
	int copy_only = only && !strcmp(only, "copy");
	double rtt_p50 = 0, ov_p50 = 0, ov_p90 = 0, ov_sum = 0;
	struct loop_result lr = { 0 };
	if (!copy_only) {
		if (bench_exec_rtt(AB_RTT_RUNS, &rtt_p50, NULL) < 0 || bench_loop(argv[1], argv[2], tmp, &lr) < 0)
			goto out;
		ov_p50 = bench_percentile(lr.overhead, AB_STEPS, 50);
		ov_p90 = bench_percentile(lr.overhead, AB_STEPS, 90);
		for (int i = 0; i < AB_STEPS; i++)
			ov_sum += lr.overhead[i];
	}

	char tree[300];
	snprintf(tree, sizeof(tree), "%s/tree", tmp);
	if (ab_make_tree(tree) < 0) {
		fprintf(stderr, "agent_bench: cannot write the tree under %s\n", tmp);
		goto out;
	}
	/* Each copy against the raw port in its own direction: copy-in against
	 * host -> guest, copy-out against guest -> host, all in one pair. */
	double raw_hg[AB_PAIRS], raw_gh[AB_PAIRS], cin[AB_PAIRS], cout[AB_PAIRS], rin[AB_PAIRS], rout[AB_PAIRS];
	double untar[AB_PAIRS], rceil[AB_PAIRS];
	for (int i = 0; i < AB_PAIRS; i++) {
		for (int dir = 0; dir < 2; dir++) {
			double *v = dir ? &raw_hg[i] : &raw_gh[i];
			*v = bench_raw_port_once(&img, accel.accel, dir);
			if (*v <= 0)
				*v = bench_raw_port_once(&img, accel.accel, dir);   /* one retry, as vm_bench */
			if (*v <= 0)
				goto out;
		}
		double pack;
		if (bench_copy(tree, stage, i, &cin[i], &cout[i], &pack, &untar[i]) < 0)
			goto out;
		rceil[i] = cin[i] / untar[i];
		rin[i] = cin[i] / raw_hg[i];
		rout[i] = cout[i] / raw_gh[i];
		printf("pair %d: raw host->guest %.1f MB/s, copy-in %.1f MB/s (%.2fx); raw guest->host %.1f MB/s, "
		       "copy-out %.1f MB/s (%.2fx; guest side alone %.1f MB/s, %.2fx); in-guest tar x %.1f MB/s "
		       "(copy-in %.2fx of it)\n", i + 1, raw_hg[i], cin[i], rin[i], raw_gh[i], cout[i], rout[i],
		       pack, pack / raw_gh[i], untar[i], rceil[i]);
	}
	double in_ratio = bench_percentile(rin, AB_PAIRS, 50), out_ratio = bench_percentile(rout, AB_PAIRS, 50);

	printf("\n%-58s %s\n", "measurement", "value");
	if (!copy_only) {
		printf("%-58s %8.2f ms\n", "exec round-trip of `true` in a running VM, p50 of 100", rtt_p50);
		printf("%-58s %8.2f ms\n", "model request to aimock (loopback), p50 of 40", bench_percentile(lr.lat, AB_STEPS, 50));
		printf("%-58s %8.2f ms\n", "run_command `true` as the loop times it, p50 of 40", bench_percentile(lr.dur, AB_STEPS, 50));
		printf("%-58s %8.2f ms (p90 %.2f, mean %.2f)\n", "loop overhead per step, p50 of 40", ov_p50, ov_p90,
		       ov_sum / AB_STEPS);
		printf("%-58s %8.2fx (target <= %.2fx)\n", "loop overhead p50 / exec round-trip p50", ov_p50 / rtt_p50,
		       AB_OVERHEAD_MAX);
		printf("%-58s %8.1f s\n", "whole `ironclaw run` of 40 steps (boot, copies, teardown)", lr.wall_s);
	}
	printf("%-58s %8.1f MB/s\n", "raw virtio-serial, host -> guest, median of 3", bench_percentile(raw_hg, AB_PAIRS, 50));
	printf("%-58s %8.1f MB/s\n", "raw virtio-serial, guest -> host, median of 3", bench_percentile(raw_gh, AB_PAIRS, 50));
	printf("%-58s %8.1f MB/s (%.2fx raw host -> guest, target >= %.2fx)\n",
	       "copy-in (host -> guest), 2000 files, 50 MiB, median of 3",
	       bench_percentile(cin, AB_PAIRS, 50), in_ratio, AB_THROUGHPUT_MIN);
	printf("%-58s %8.1f MB/s (%.2fx raw guest -> host, target >= %.2fx)\n",
	       "copy-out (guest -> host), 2000 files, 50 MiB, median of 3",
	       bench_percentile(cout, AB_PAIRS, 50), out_ratio, AB_THROUGHPUT_MIN);
	printf("%-58s %8.1f MB/s (copy-in %.2fx of it; not a target)\n",
	       "in-guest busybox tar x of the same tree, tmpfs to tmpfs", bench_percentile(untar, AB_PAIRS, 50),
	       bench_percentile(rceil, AB_PAIRS, 50));
	printf("(ratios: the median of the %d per-pair ratios; the run log's timestamps are whole "
	       "milliseconds, so one step's overhead is known to +-1 ms, the mean to %.2f ms)\n",
	       AB_PAIRS, 2.0 / AB_STEPS);
	status = 0;
	if (!copy_only && ov_p50 > AB_OVERHEAD_MAX * rtt_p50) {
		printf("\nagent_bench: FAIL: loop overhead p50 is %.2fx the exec round-trip (target %.2fx)\n",
		       ov_p50 / rtt_p50, AB_OVERHEAD_MAX);
		status = 1;
	}
	if (in_ratio < AB_THROUGHPUT_MIN || out_ratio < AB_THROUGHPUT_MIN) {
		printf("\nagent_bench: FAIL: copy-in %.2fx raw host -> guest / copy-out %.2fx raw guest -> host "
		       "(target >= %.2fx)\n", in_ratio, out_ratio, AB_THROUGHPUT_MIN);
		status = 1;
	}
out:;
	char rm[PATH_MAX + 200];
	snprintf(rm, sizeof(rm), "rm -rf '%s' '%s'", tmp, stage);
	if (system(rm) != 0)
		fprintf(stderr, "agent_bench: could not remove %s and %s\n", tmp, stage);
	return status;
}
