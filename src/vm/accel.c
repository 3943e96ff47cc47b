/* Accelerator detection: see accel.h. */
#include "vm/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/io.h"
#include "jail/jail.h"
#include "vm/image.h"
#include "vm/launch.h"
#include "vm/qemu.h"

#define ACCEL_PROBE_TIMEOUT_MS 15000

const char *vm_accel_name(enum vm_accel a)
{
	return a == VM_ACCEL_KVM ? "kvm" : "tcg";
}

unsigned long vm_host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	char line[256];
	double mhz = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return mhz > 0 ? (unsigned long)(mhz * 1000.0) : 0;
}

/* Identity of the probe's inputs: if any changes, the cached verdict is stale. */
static void accel_cache_key(const char *qemu, const char *kernel, const char *initrd,
			    char *key, size_t len)
{
	const char *paths[3] = { qemu, kernel, initrd };
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0)
			memset(&st, 0, sizeof(st));
		int n = snprintf(key + off, len - off, "%s:%lld:%lld;", paths[i],
				 (long long)st.st_size, (long long)st.st_mtime);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

static void accel_cache_path(char *path, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	if (xdg && *xdg)
		snprintf(path, len, "%s/ironclaw/accel.json", xdg);
	else
		snprintf(path, len, "%s/.cache/ironclaw/accel.json", home && *home ? home : "/tmp");
}

static int accel_cache_read(const char *key, struct vm_accel_verdict *v)
{
	char path[4096];
	accel_cache_path(path, sizeof(path));
	json_t *j = json_load_file(path, 0, NULL);
	if (!j)
		return -ENOENT;
	int rc = -ESTALE;
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *a = json_string_value(json_object_get(j, "accel"));
	const char *r = json_string_value(json_object_get(j, "reason"));
	if (k && a && r && !strcmp(k, key)) {
		v->accel = !strcmp(a, "kvm") ? VM_ACCEL_KVM : VM_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "%s", r);
		v->cached = 1;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static void accel_cache_write(const char *key, const struct vm_accel_verdict *v)
{
	char path[4096];
	accel_cache_path(path, sizeof(path));
	char *slash = strrchr(path, '/');
	*slash = '\0';
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", path);
	char *pslash = strrchr(parent, '/');
	if (pslash) {
		*pslash = '\0';
		mkdir(parent, 0700);
	}
	mkdir(path, 0700);
	*slash = '/';
	json_t *j = json_pack("{s:s,s:s,s:s}", "key", key, "accel", vm_accel_name(v->accel),
			      "reason", v->reason);
	char *text = json_dumps(j, JSON_INDENT(2));
	if (text)
		io_write_file(path, text, strlen(text), 0600);
	free(text);
	json_decref(j);
}

/* ---- the probe: one KVM boot through the launcher ---- */

struct accel_waiter {
	struct accel_waiter *next;
	vm_probe_cb done;
	void *ctx;
};

/* The one probe in flight in this process, and who waits for it. */
struct accel_probe {
	uv_loop_t *loop;
	char key[1024];
	char id[32];
	struct jail_names names;
	struct vm_launch_plan plan;
	struct jail_config jc;
	struct vm_launch *launch;
	uv_timer_t deadline;
	int exited;
	int status;
	int timed_out;
	struct vm_accel_verdict verdict;
	struct accel_waiter *waiters;
};

/* Per thread: a probe runs on the caller's loop, and a loop is one thread's.
 * vm_accel_detect runs its own loop on the libuv thread pool (template keys);
 * joining a probe in flight on another thread's loop had that thread write
 * the verdict into a waiter whose loop had already returned (a segfault seen
 * with two template lookups at once in the daemon). */
static _Thread_local struct accel_probe *accel_inflight;
/* Synchronous detects one at a time: the second finds the first's verdict in
 * the cache instead of booting a probe VM of its own. */
static pthread_mutex_t accel_sync_lock = PTHREAD_MUTEX_INITIALIZER;

static void accel_notify(struct accel_waiter *w, const struct vm_accel_verdict *v)
{
	while (w) {
		struct accel_waiter *next = w->next;
		w->done(w->ctx, v);
		free(w);
		w = next;
	}
}

static void accel_probe_freed(uv_handle_t *h)
{
	free(h->data);
}

static void accel_probe_released(void *ctx, const struct err *e)
{
	struct accel_probe *p = ctx;
	(void)e;   /* the launcher removed the probe's jail and directory */
	accel_cache_write(p->key, &p->verdict);
	struct accel_waiter *w = p->waiters;
	struct vm_accel_verdict v = p->verdict;
	if (accel_inflight == p)
		accel_inflight = NULL;
	uv_close((uv_handle_t *)&p->deadline, accel_probe_freed);
	accel_notify(w, &v);
}

static void accel_probe_verdict(struct accel_probe *p, const char *stderr_text, const struct err *start_err)
{
	struct vm_accel_verdict *v = &p->verdict;
	char line[200];
	snprintf(line, sizeof(line), "%s", stderr_text ? stderr_text : "");
	/* One line is enough to explain, and keeps `doctor` readable. */
	line[strcspn(line, "\n")] = '\0';
	v->accel = VM_ACCEL_TCG;
	if (start_err)
		snprintf(v->reason, sizeof(v->reason), "cannot start QEMU for the probe: %.160s; using TCG",
			 start_err->msg);
	else if (p->timed_out)
		snprintf(v->reason, sizeof(v->reason),
			 "a KVM boot of the guest did not finish in %d s; using TCG", ACCEL_PROBE_TIMEOUT_MS / 1000);
	else if (strstr(stderr_text, "emulation failure"))
		snprintf(v->reason, sizeof(v->reason),
			 "/dev/kvm opens, but KVM reports \"emulation failure\" booting the guest kernel (nested/paravirtual KVM); using TCG");
	else if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
		snprintf(v->reason, sizeof(v->reason), "a KVM boot of the guest failed: %.160s; using TCG",
			 line[0] ? line : "QEMU exited with an error");
	else {
		v->accel = VM_ACCEL_KVM;
		snprintf(v->reason, sizeof(v->reason), "a probe boot of the guest under KVM succeeded");
	}
}

static void accel_probe_on_started(struct vm_launch *l, const struct err *e, void *ctx)
{
	struct accel_probe *p = ctx;
	if (!e)
		return;
	accel_probe_verdict(p, NULL, e);
	uv_timer_stop(&p->deadline);
	vm_launch_release(l, accel_probe_released, p);
}

static void accel_probe_on_exited(struct vm_launch *l, int status, void *ctx)
{
	struct accel_probe *p = ctx;
	p->status = status;
	uv_timer_stop(&p->deadline);
	accel_probe_verdict(p, vm_launch_stderr(l), NULL);
	vm_launch_release(l, accel_probe_released, p);
}

static void accel_probe_on_deadline(uv_timer_t *t)
{
	struct accel_probe *p = t->data;
	p->timed_out = 1;
	vm_launch_kill(p->launch);   /* `exited` follows and decides */
}

static int accel_probe_start(struct accel_probe *p, const char *kernel, const char *initrd, struct err *e)
{
	unsigned rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned)getpid();
	snprintf(p->id, sizeof(p->id), "probe-%08x", rnd);
	int rc = jail_names_make(p->id, &p->names, e);
	if (rc < 0 || (rc = vm_launcher_get()->prepare_dir(&p->names, e)) < 0)
		return rc;
	/* The same plan and launch as every QEMU VM, with an init that powers off. */
	const struct vm_backend_spec spec = {
		.id = p->id, .dir = p->names.dir, .kernel = kernel, .initrd = initrd,
		.cmdline_extra = "ironclaw.poweroff=1", .cpus = 1, .memory_mib = 128,
		.accel = VM_ACCEL_KVM, .tap_fd = -1,
	};
	if ((rc = qemu_plan_launch(&spec, &p->plan, e)) < 0)
		return rc;
	vm_launch_config(&p->plan, &p->names, &p->jc);
	static const struct vm_launch_events ev = {
		.started = accel_probe_on_started,
		.exited = accel_probe_on_exited,
	};
	return vm_launch_start(p->loop, &p->jc, &ev, p, &p->launch, e);
}

/* Fills v when no probe is needed (override, no /dev/kvm, cache); returns 1 then. */
static int accel_decide_without_probe(const char *key, struct vm_accel_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->accel = VM_ACCEL_TCG;
	const char *force = getenv("IRONCLAW_ACCEL");
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int kvm_opens = fd >= 0;
	int open_errno = errno;
	if (fd >= 0)
		close(fd);
	if (force && !strcmp(force, "tcg")) {
		snprintf(v->reason, sizeof(v->reason), "IRONCLAW_ACCEL=tcg");
		return 1;
	}
	if (!kvm_opens) {
		snprintf(v->reason, sizeof(v->reason), "/dev/kvm cannot be opened (%s)",
			 strerror(open_errno));
		return 1;
	}
	if (force && !strcmp(force, "kvm")) {
		v->accel = VM_ACCEL_KVM;
		snprintf(v->reason, sizeof(v->reason), "IRONCLAW_ACCEL=kvm");
		return 1;
	}
	return accel_cache_read(key, v) == 0;
}

void vm_accel_probe(uv_loop_t *loop, const char *qemu, const char *kernel, const char *initrd,
		    vm_probe_cb done, void *ctx)
{
	/* The verdict is about this host's KVM, not about one image: probe with the
	 * default image when there is one, so that a custom --kernel/--initrd (which
	 * may not honour ironclaw.poweroff=1) neither skews it nor evicts the cache. */
	struct vm_image def;
	struct err ignored = { 0 };
	if (vm_image_find(&def, &ignored) == 0) {
		kernel = def.kernel;
		initrd = def.initrd;
	}
	char key[1024];
	accel_cache_key(qemu, kernel, initrd, key, sizeof(key));
	struct vm_accel_verdict v;
	if (accel_decide_without_probe(key, &v)) {
		done(ctx, &v);
		return;
	}
	struct accel_waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(v.reason, sizeof(v.reason), "out of memory; using TCG");
		v.accel = VM_ACCEL_TCG;
		done(ctx, &v);
		return;
	}
	w->done = done;
	w->ctx = ctx;
	if (accel_inflight) {
		w->next = accel_inflight->waiters;
		accel_inflight->waiters = w;
		return;
	}
	struct accel_probe *p = calloc(1, sizeof(*p));
	struct err e = { 0 };
	if (!p) {
		free(w);
		snprintf(v.reason, sizeof(v.reason), "out of memory; using TCG");
		done(ctx, &v);
		return;
	}
	p->loop = loop;
	p->waiters = w;
	snprintf(p->key, sizeof(p->key), "%s", key);
	uv_timer_init(loop, &p->deadline);
	p->deadline.data = p;
	log_debug("accel: probing KVM with a boot of the guest");
	if (accel_probe_start(p, kernel, initrd, &e) < 0) {
		accel_probe_verdict(p, NULL, &e);
		accel_cache_write(p->key, &p->verdict);
		if (p->names.id[0])
			vm_launcher_get()->discard(&p->names, &e);
		struct vm_accel_verdict pv = p->verdict;
		uv_close((uv_handle_t *)&p->deadline, accel_probe_freed);
		accel_notify(w, &pv);
		return;
	}
	accel_inflight = p;
	uv_timer_start(&p->deadline, accel_probe_on_deadline, ACCEL_PROBE_TIMEOUT_MS, 0);
}

struct accel_sync {
	struct vm_accel_verdict *out;
	int done;
};

static void accel_sync_done(void *ctx, const struct vm_accel_verdict *v)
{
	struct accel_sync *s = ctx;
	*s->out = *v;
	s->done = 1;
}

void vm_accel_detect(const char *qemu, const char *kernel, const char *initrd,
		     struct vm_accel_verdict *v)
{
	uv_loop_t loop;
	struct accel_sync s = { .out = v };
	memset(v, 0, sizeof(*v));
	if (uv_loop_init(&loop) < 0) {
		snprintf(v->reason, sizeof(v->reason), "cannot start an event loop; using TCG");
		return;
	}
	pthread_mutex_lock(&accel_sync_lock);
	vm_accel_probe(&loop, qemu, kernel, initrd, accel_sync_done, &s);
	while (!s.done && uv_run(&loop, UV_RUN_ONCE))
		;
	uv_run(&loop, UV_RUN_DEFAULT);   /* let the probe's handles close */
	pthread_mutex_unlock(&accel_sync_lock);
	uv_loop_close(&loop);
}
