/* Snapshot templates on real VMs: a template is built once (boot, save), and
 * VMs restored from it must be real, separate machines: byte-exact exec output
 * over the reconnected channel, their own RNG output and uuid, the host's clock,
 * their own hostname and id. A template from another image (a different agent
 * build inside the initramfs) is never found; a truncated or corrupt one is
 * refused with a message naming it; a state QEMU cannot load fails the VM with
 * QEMU's reason. Templates live in a cache directory of this test binary's own
 * (XDG_CACHE_HOME), so the user's templates are never touched. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/harness.h"
#include "loop/loop.h"
#include "vm/exec.h"
#include "vm/template.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"
#include "test_snapshot_util.h"

#define SNAP_OUT_MAX (9u << 20)
#define SNAP_BIG (8u << 20)      /* bytes of `seq` output hashed on a clone */
#define SNAP_CMDS 6

struct clone {
	uv_loop_t *loop;
	struct vm *vm;
	const char *restore_from;
	char *const *cmds[SNAP_CMDS];
	size_t n_cmds, at;
	char *out[SNAP_CMDS];
	size_t out_len[SNAP_CMDS];
	int code[SNAP_CMDS];
	struct timespec t0[SNAP_CMDS], t1[SNAP_CMDS]; /* host clock around each command */
	char id[64];
	int restored, ready;
	char why[2048];
};

static void snap_env(void)
{
	char dir[4096];
	vmrun_use_checkout_image();
	/* Shared by this binary's tests (each runs in its own process), kept
	 * across runs: the key says whether a template still fits. */
	snprintf(dir, sizeof(dir), "%s/build/test-cache/snapshot", harness_root());
	setenv("XDG_CACHE_HOME", dir, 1);
}

static void clone_run_next(struct clone *c);

static void clone_output(struct vm_exec *x, int stream, const uint8_t *d, size_t n, void *ctx)
{
	struct clone *c = ctx;
	(void)x;
	if (stream != 1 || c->out_len[c->at] + n > SNAP_OUT_MAX)
		return;
	memcpy(c->out[c->at] + c->out_len[c->at], d, n);
	c->out_len[c->at] += n;
}

static void clone_exec_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct clone *c = ctx;
	(void)x;
	clock_gettime(CLOCK_REALTIME, &c->t1[c->at]);
	c->code[c->at] = r->err.code ? -1 : r->code;
	if (r->err.code)
		snprintf(c->why, sizeof(c->why), "%s", r->err.msg);
	c->out[c->at][c->out_len[c->at]] = '\0';
	c->at++;
	clone_run_next(c);
}

static void clone_run_next(struct clone *c)
{
	static const struct vm_exec_handlers h = { .output = clone_output, .done = clone_exec_done };
	if (c->at >= c->n_cmds) {
		vm_destroy(c->vm);
		return;
	}
	struct vm_exec_spec spec = { .argv = c->cmds[c->at] };
	struct vm_exec *x;
	struct err e = { 0 };
	clock_gettime(CLOCK_REALTIME, &c->t0[c->at]);
	if (vm_exec_start(c->vm, &spec, &h, c, &x, &e) < 0) {
		snprintf(c->why, sizeof(c->why), "%s", e.msg);
		vm_destroy(c->vm);
	}
}

static void clone_ready(struct vm *vm, void *ctx)
{
	struct clone *c = ctx;
	c->ready = 1;
	c->restored = vm_restored(vm);
	snprintf(c->id, sizeof(c->id), "%s", vm_id(vm));
	clone_run_next(c);
}

static void clone_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct clone *c = ctx;
	snprintf(c->why, sizeof(c->why), "%s", e->msg);
	vm_destroy(vm);
}

static void clone_start(uv_loop_t *loop, struct clone *c)
{
	static const struct vm_events ev = { .ready = clone_ready, .failed = clone_failed };
	struct vm_options o = { .restore_from = c->restore_from };
	struct err e = { 0 };
	c->loop = loop;
	for (size_t i = 0; i < SNAP_CMDS; i++) {
		c->out[i] = calloc(1, SNAP_OUT_MAX + 1);
		c->code[i] = -2;
	}
	cr_assert_eq(vm_create(loop, &o, &ev, c, &c->vm, &e), 0, "%s", e.msg);
}

static void clone_free(struct clone *c)
{
	for (size_t i = 0; i < SNAP_CMDS; i++)
		free(c->out[i]);
}

/* What `seq 1 2000000 | head -c SNAP_BIG` prints, made on the host. */
static char *snap_expected_seq(void)
{
	char *buf = malloc(SNAP_BIG + 32);
	size_t off = 0;
	for (unsigned i = 1; off < SNAP_BIG; i++)
		off += (size_t)sprintf(buf + off, "%u\n", i);
	return buf;
}

static double ts_s(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

/* adjtimex's "time.tv_sec:" and "time.tv_usec:" lines, as seconds. */
static double guest_clock(const char *out)
{
	const char *s = strstr(out, "time.tv_sec:"), *u = strstr(out, "time.tv_usec:");
	cr_assert(s && u, "no clock in: %s", out);
	return atof(s + strlen("time.tv_sec:")) + atof(u + strlen("time.tv_usec:")) / 1e6;
}

Test(snapshot, two_clones_have_their_own_identity_and_exact_output, .timeout = 600)
{
	snap_env();
	struct vm_template_shape shape = { 0 };
	struct vm_template t;
	snap_template_get(&shape, &t);
	/* The clock check means something only if the saved clock is behind: a
	 * template made just now is not yet, so let its age pass 2 s (the waiting
	 * is the point here, there is no event for it). */
	long long age = (long long)time(NULL) - t.created;
	if (age < 3)
		sleep((unsigned)(3 - age));

	static char *rnd[] = { "sh", "-c", "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'", NULL };
	static char *uuid[] = { "cat", "/proc/sys/kernel/random/uuid", NULL };
	static char *clk[] = { "adjtimex", NULL };
	static char *host[] = { "sh", "-c", "hostname; cat /run/ironclaw/vm-id", NULL };
	static char *big[] = { "sh", "-c", "seq 1 2000000 | head -c 8388608", NULL };
	struct clone c[2] = { 0 };
	uv_loop_t loop;
	uv_loop_init(&loop);
	/* A restore is on the loop like a boot: nothing in it may hold the loop. */
	struct loop_lag lag;
	cr_assert_eq(loop_lag_start(&lag, &loop, 50.0), 0);
	for (int i = 0; i < 2; i++) {
		c[i] = (struct clone){ .restore_from = t.state, .n_cmds = i == 0 ? 5 : 4,
				       .cmds = { rnd, uuid, clk, host, big } };
		clone_start(&loop, &c[i]);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	loop_lag_stop(&lag);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
	cr_assert_lt(lag.worst_ms, 50.0, "one loop iteration was busy for %.1f ms", lag.worst_ms);

	for (int i = 0; i < 2; i++) {
		cr_assert(c[i].ready, "clone %d: %s", i, c[i].why);
		cr_assert(c[i].restored);
		for (size_t k = 0; k < c[i].n_cmds; k++)
			cr_assert_eq(c[i].code[k], 0, "clone %d command %zu: %s", i, k, c[i].why);
		cr_assert_eq(strlen(c[i].out[0]), 64, "random bytes: %s", c[i].out[0]);
		cr_assert_eq(strlen(c[i].out[1]), 37, "uuid: %s", c[i].out[1]);
		double g = guest_clock(c[i].out[2]);
		cr_assert(g >= ts_s(&c[i].t0[2]) - 1.0 && g <= ts_s(&c[i].t1[2]) + 1.0,
			  "clone %d clock %.3f, host %.3f..%.3f", i, g, ts_s(&c[i].t0[2]),
			  ts_s(&c[i].t1[2]));
		char want[160];
		snprintf(want, sizeof(want), "%s\n%s\n", c[i].id, c[i].id);
		cr_assert_str_eq(c[i].out[3], want);
	}
	cr_assert_str_neq(c[0].out[0], c[1].out[0], "both clones read the same /dev/urandom bytes");
	cr_assert_str_neq(c[0].out[1], c[1].out[1], "both clones made the same uuid");
	char *want = snap_expected_seq();
	cr_assert_eq(c[0].out_len[4], SNAP_BIG);
	cr_assert_eq(memcmp(c[0].out[4], want, SNAP_BIG), 0, "8 MiB of output differ");
	free(want);
	clone_free(&c[0]);
	clone_free(&c[1]);
}

/* Copies a file (the test's own template copy). */
static void snap_copy(const char *from, const char *to)
{
	struct run_result r;
	cr_assert_eq(harness_run((char *[]){ "/bin/cp", "--", (char *)from, (char *)to, NULL }, NULL,
				 0, 60000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "cp %s: %s", from, r.err);
	harness_result_free(&r);
}

Test(snapshot, template_of_another_agent_build_is_never_found, .timeout = 600)
{
	snap_env();
	struct vm_template_shape shape = { 0 };
	struct vm_template t, other;
	struct err e = { 0 };
	snap_template_get(&shape, &t);
	/* Another agent build: the same initramfs with one more byte of padding
	 * (the kernel ignores it), as a rebuilt agent changes its bytes. */
	char initrd[4200];
	snprintf(initrd, sizeof(initrd), "%s/build/test-cache/snapshot-other-initrd.cpio", harness_root());
	snap_copy(t.initrd, initrd);
	int fd = open(initrd, O_WRONLY | O_APPEND);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "\0\0\0\0", 4), 4);
	close(fd);
	struct vm_template_shape changed = { .initrd = initrd };
	int rc = vm_template_open(&changed, &other, &e);
	cr_assert_eq(rc, -ENOENT, "the old template was offered for a new agent: %d %s", rc, e.msg);
	cr_assert_str_neq(other.key, t.key);
	/* ... and the build for it is a template of its own. */
	struct vm_template rebuilt;
	snap_template_get(&changed, &rebuilt);
	cr_assert_str_eq(rebuilt.key, other.key);
	cr_assert_str_neq(rebuilt.key, t.key);
	cr_assert_eq(vm_template_open(&shape, &t, &e), 0, "%s", e.msg);
	char removed[80];
	cr_assert_eq(vm_template_remove(rebuilt.key, removed, sizeof(removed), &e), 0, "%s", e.msg);
	unlink(initrd);
}

/* A private cache holding a copy of the shared template, to break. */
static void snap_private_copy(struct vm_template *t, const char *name)
{
	struct vm_template_shape shape = { 0 };
	snap_template_get(&shape, t);
	char dir[4096], tdir[4200];
	snprintf(dir, sizeof(dir), "%s/build/test-cache/%s", harness_root(), name);
	struct run_result r;
	harness_run((char *[]){ "/bin/rm", "-rf", dir, NULL }, NULL, 0, 60000, &r);
	harness_result_free(&r);
	snprintf(tdir, sizeof(tdir), "%s/ironclaw/templates", dir);
	harness_run((char *[]){ "/bin/mkdir", "-p", tdir, NULL }, NULL, 0, 60000, &r);
	harness_result_free(&r);
	harness_run((char *[]){ "/bin/cp", "-r", t->dir, tdir, NULL }, NULL, 0, 60000, &r);
	harness_result_free(&r);
	setenv("XDG_CACHE_HOME", dir, 1);
	struct err e = { 0 };
	cr_assert_eq(vm_template_open(&shape, t, &e), 0, "the copy: %s", e.msg);
}

Test(snapshot, truncated_or_corrupt_template_is_refused_with_its_name, .timeout = 600)
{
	snap_env();
	struct vm_template t;
	struct vm_template_shape shape = { 0 };
	struct err e = { 0 };
	snap_private_copy(&t, "snapshot-corrupt");
	/* one flipped byte in the middle (guest RAM: QEMU alone would not notice) */
	int fd = open(t.state, O_RDWR);
	cr_assert(fd >= 0);
	unsigned char b;
	off_t mid = (off_t)(t.state_bytes / 2);
	cr_assert_eq(pread(fd, &b, 1, mid), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, mid), 1);
	int rc = vm_template_open(&shape, &t, &e);
	cr_assert_eq(rc, -EBADMSG, "%d %s", rc, e.msg);
	cr_assert(strstr(e.msg, "corrupt") && strstr(e.msg, "ironclaw snapshot rm"), "%s", e.msg);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, mid), 1);
	cr_assert_eq(vm_template_open(&shape, &t, &e), 0, "%s", e.msg);
	/* truncated */
	cr_assert_eq(ftruncate(fd, (off_t)(t.state_bytes / 3)), 0);
	close(fd);
	rc = vm_template_open(&shape, &t, &e);
	cr_assert_eq(rc, -EBADMSG);
	cr_assert(strstr(e.msg, "truncated"), "%s", e.msg);
}

Test(snapshot, state_qemu_cannot_load_fails_the_vm_with_the_reason, .timeout = 600)
{
	snap_env();
	struct vm_template t;
	snap_private_copy(&t, "snapshot-badstate");
	/* Past the manifest's check (vm_options.restore_from is the raw path): a
	 * cut stream must fail the VM, not hang it or start a broken guest. */
	cr_assert_eq(truncate(t.state, (off_t)(t.state_bytes / 3)), 0);
	static char *echo[] = { "echo", "hi", NULL };
	struct clone c = { .restore_from = t.state, .n_cmds = 1, .cmds = { echo } };
	uv_loop_t loop;
	uv_loop_init(&loop);
	clone_start(&loop, &c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	cr_assert_not(c.ready);
	cr_assert(strstr(c.why, "QEMU") && strstr(c.why, "migration"), "%s", c.why);
	clone_free(&c);
}

Test(snapshot, exec_uses_the_template_and_boots_cold_when_it_is_unusable, .timeout = 600)
{
	snap_env();
	struct vm_template t;
	snap_private_copy(&t, "snapshot-exec");
	setenv("IRONCLAW_LOG", "debug", 1);
	struct run_result r;
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--", "echo", "from-a-clone", NULL };
	cr_assert_eq(harness_run(argv, NULL, 0, 120000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "from-a-clone\n");
	cr_assert(strstr(r.err, "restored from a template"), "%s", r.err);
	harness_result_free(&r);

	int fd = open(t.state, O_RDWR);
	cr_assert_eq(pwrite(fd, "garbage!", 8, 4096), 8);
	close(fd);
	cr_assert_eq(harness_run(argv, NULL, 0, 120000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "from-a-clone\n");
	cr_assert(strstr(r.err, "corrupt") && strstr(r.err, "booting cold"), "%s", r.err);
	harness_result_free(&r);

	char *cold[] = { (char *)harness_ironclaw(), "exec", "--no-snapshot", "--", "echo", "cold", NULL };
	cr_assert_eq(harness_run(cold, NULL, 0, 120000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "cold\n");
	cr_assert_null(strstr(r.err, "template"), "%s", r.err);
	harness_result_free(&r);
}
