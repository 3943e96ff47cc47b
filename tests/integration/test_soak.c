/* A process that lives for days: 100 VMs (IRONCLAW_SOAK_VMS) are created and
 * destroyed in ONE process, four at a time, each running a command whose output
 * is hashed and compared. Afterwards this process's open fds and RSS must be
 * back at the level measured after a warm-up, every run must have delivered its
 * exact output, no VMM child may remain, and no VM may have left a directory,
 * state record, cgroup, netns or veth behind. Every fourth VM has a NIC, so the
 * network's objects are part of the count. The line starting "soak:" is what
 * `make bench` reports. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "jail/jail_internal.h"
#include "lib/harness.h"
#include "integration/lib/vmrun.h"

#define SOAK_PARALLEL 4
#define SOAK_WARMUP 8
#define SOAK_SEQ_MAX 20000
#define SOAK_RSS_MARGIN_KIB 3072

struct soak {
	uv_loop_t loop;
	struct vmrun runs[SOAK_PARALLEL];
	int total, limit, started, finished, bad;
	uint64_t want_hash;
	size_t want_len;
	char (*ids)[VMRUN_ID_MAX];
	int warm_fds;
	long warm_rss;
	char first_failure[1400];
};

static char *soak_argv[] = { "seq", "1", "20000", NULL };

static void soak_next(struct soak *s, struct vmrun *r);

static void soak_on_done(struct vmrun *r)
{
	struct soak *s = r->user;
	s->finished++;
	int ok = !r->failed && r->exit_code == 0 && r->out_hash == s->want_hash && r->out_len == s->want_len;
	if (!ok && !s->bad++)
		snprintf(s->first_failure, sizeof(s->first_failure),
			 "%s: failed=%d exit=%d len=%zu (want %zu) why=%s", r->id, r->failed, r->exit_code,
			 r->out_len, s->want_len, r->why);
	soak_next(s, r);
}

static void soak_next(struct soak *s, struct vmrun *r)
{
	if (s->started >= s->limit)
		return;
	int n = s->started++;
	r->loop = &s->loop;
	r->argv = soak_argv;
	r->net = n % 4 == 3;
	r->on_done = soak_on_done;
	r->user = s;
	if (vmrun_start(r) < 0) {
		if (!s->bad++)
			snprintf(s->first_failure, sizeof(s->first_failure), "vm_create: %s", r->why);
		s->finished++;
		return;
	}
	snprintf(s->ids[n], VMRUN_ID_MAX, "%s", r->id);
}

/* What `seq 1 N` prints, hashed the same way. */
static void soak_expected(struct soak *s)
{
	s->want_hash = VMRUN_FNV_INIT;
	s->want_len = 0;
	char line[16];
	for (int i = 1; i <= SOAK_SEQ_MAX; i++) {
		int n = snprintf(line, sizeof(line), "%d\n", i);
		s->want_hash = vmrun_fnv1a(s->want_hash, line, (size_t)n);
		s->want_len += (size_t)n;
	}
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Everything a VM could leave behind, named from its id. */
static int soak_leftovers(const char *id, char *what, size_t len)
{
	char path[512];
	struct jail_names n;
	if (jail_names_make(id, &n, NULL) < 0)
		return snprintf(what, len, "an invalid id %s", id), 1;
	snprintf(path, sizeof(path), "%s", n.dir);
	if (exists(path))
		return snprintf(what, len, "%s", path), 1;
	snprintf(path, sizeof(path), "%s/%s", JAIL_STATE_DIR, id);
	if (exists(path))
		return snprintf(what, len, "%s", path), 1;
	snprintf(path, sizeof(path), "%s", n.netns_path);
	if (exists(path))
		return snprintf(what, len, "%s", path), 1;
	snprintf(path, sizeof(path), "/sys/class/net/%s", n.veth_host);
	if (exists(path))
		return snprintf(what, len, "%s", path), 1;
	if (jail_cgroup_exists(n.cgroup))
		return snprintf(what, len, "cgroup of %s", id), 1;
	return 0;
}

Test(soak, hundred_vms_leave_nothing_behind, .timeout = 1500)
{
	struct soak s = { 0 };
	const char *env = getenv("IRONCLAW_SOAK_VMS");
	s.total = env && atoi(env) > SOAK_WARMUP ? atoi(env) : 100;
	s.ids = calloc((size_t)s.total, sizeof(*s.ids));
	cr_assert(s.ids);
	soak_expected(&s);
	cr_assert_eq(uv_loop_init(&s.loop), 0);
	int fds_before = vmrun_count_fds();
	long rss_before = vmrun_rss_kib();
	double t0 = clock_now_ms();
	/* Warm-up first, to the end, so that one-time allocations (thread pool,
	 * caches, the accelerator verdict) are in the baseline and no VM runs while
	 * it is taken; then the rest. */
	s.limit = SOAK_WARMUP;
	for (int i = 0; i < SOAK_PARALLEL; i++)
		soak_next(&s, &s.runs[i]);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	s.warm_fds = vmrun_count_fds();
	s.warm_rss = vmrun_rss_kib();
	s.limit = s.total;
	for (int i = 0; i < SOAK_PARALLEL; i++)
		soak_next(&s, &s.runs[i]);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	double secs = (clock_now_ms() - t0) / 1000.0;
	int fds_after = vmrun_count_fds();
	long rss_after = vmrun_rss_kib();
	cr_assert_eq(uv_loop_close(&s.loop), 0, "handles were left open on the loop");

	printf("soak: %d VMs in %.1f s (%.1f VMs/min, %d at a time); fds %d -> %d after warm-up -> %d; "
	       "RSS %ld KiB -> %ld KiB after warm-up -> %ld KiB\n",
	       s.total, secs, s.total / secs * 60.0, SOAK_PARALLEL, fds_before, s.warm_fds, fds_after,
	       rss_before, s.warm_rss, rss_after);
	fflush(stdout);

	cr_assert_eq(s.finished, s.total);
	cr_assert_eq(s.bad, 0, "%d of %d runs went wrong; first: %s", s.bad, s.total, s.first_failure);
	cr_assert_eq(fds_after, s.warm_fds, "open fds grew from %d to %d over %d VMs", s.warm_fds,
		     fds_after, s.total - SOAK_WARMUP);
	cr_assert_leq(rss_after, s.warm_rss + SOAK_RSS_MARGIN_KIB, "RSS grew from %ld KiB to %ld KiB",
		      s.warm_rss, rss_after);
	pid_t left[4];
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", getpid(), left, 4), 0,
		     "a VMM outlived its VM");
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a child was left unreaped");
	cr_assert_eq(errno, ECHILD);
	char what[600];
	for (int i = 0; i < s.total; i++)
		cr_assert_not(soak_leftovers(s.ids[i], what, sizeof(what)), "left behind: %s", what);
	free(s.ids);
}
