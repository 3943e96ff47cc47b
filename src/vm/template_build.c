/* Templates for loop users (see template.h): finding one on the thread pool,
 * and building one.
 *
 * A build boots an ordinary VM of the shape, and once the guest is ready
 * shrinks what its state holds (below), then saves its state into
 * <templates>/.build-<pid>-<n>/state. The VM is resumed and
 * destroyed; then, on the pool, the state is hashed, the manifest written and
 * the directory renamed to <key>: the rename is what publishes a template, so
 * a crash mid-build leaves only a .build- directory that prune removes.
 * The VM runs on the shape's backend; vm_snapshot_save writes whatever that
 * backend's state is (QEMU: a file; Firecracker: a directory) at state.
 *
 * Shrinking: QEMU sends a zero page as a flag and a restore leaves it
 * untouched, so a clone's host memory is the template guest's non-zero pages.
 * A booted guest's free memory is not zero (the initramfs image, boot-time
 * allocations, dropped slab). Before the save the guest drops its caches and
 * one process takes (the kernel zeroes anonymous pages) and returns all but
 * TEMPLATE_SHRINK_KEEP_KIB of the free memory, so what is free is zero.
 * Measured on the 128 MiB busybox shape: the state went from 66.5 to 54.4 MB
 * (`ls -l` of the template's state before and after). Best effort: a guest
 * without dd or sh is saved as it is. */
#include "vm/template.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "vm/exec.h"
#include "vm/template_internal.h"
#include "vm/vm.h"

struct tfind {
	uv_work_t work;
	struct vm_template_shape shape;
	char kernel[VM_TEMPLATE_PATH_MAX], initrd[VM_TEMPLATE_PATH_MAX];
	char root_image[VM_TEMPLATE_PATH_MAX];
	char backend[16];
	struct vm_template t;
	struct err e;
	int rc;
	vm_template_cb cb;
	void *ctx;
};

static void tfind_job(uv_work_t *w)
{
	struct tfind *f = w->data;
	f->rc = vm_template_open(&f->shape, &f->t, &f->e);
}

static void tfind_done(uv_work_t *w, int status)
{
	struct tfind *f = w->data;
	(void)status;
	f->cb(f->ctx, f->rc == 0 ? &f->t : NULL, f->rc == 0 ? NULL : &f->e);
	free(f);
}

/* Copies the shape's strings: the job reads them on another thread later. */
static void template_copy_shape(const struct vm_template_shape *in, struct vm_template_shape *out,
				char *kernel, char *initrd, char *root_image, char backend[16])
{
	*out = *in;
	if (in->backend) {
		snprintf(backend, 16, "%s", in->backend);
		out->backend = backend;
	}
	if (in->root_image) {
		snprintf(root_image, VM_TEMPLATE_PATH_MAX, "%s", in->root_image);
		out->root_image = root_image;
	}
	if (in->kernel) {
		snprintf(kernel, VM_TEMPLATE_PATH_MAX, "%s", in->kernel);
		out->kernel = kernel;
	}
	if (in->initrd) {
		snprintf(initrd, VM_TEMPLATE_PATH_MAX, "%s", in->initrd);
		out->initrd = initrd;
	}
}

int vm_template_find(uv_loop_t *loop, const struct vm_template_shape *s, vm_template_cb cb,
		     void *ctx, struct err *e)
{
	struct tfind *f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(e, -ENOMEM, "out of memory");
	template_copy_shape(s, &f->shape, f->kernel, f->initrd, f->root_image, f->backend);
	f->cb = cb;
	f->ctx = ctx;
	f->work.data = f;
	int rc = uv_queue_work(loop, &f->work, tfind_job, tfind_done);
	if (rc < 0) {
		free(f);
		return err_set(e, rc, "queueing the template lookup: %s", uv_strerror(rc));
	}
	return 0;
}

/* ---- building ---- */

struct tbuild {
	uv_loop_t *loop;
	uv_work_t work;
	struct vm_template_shape shape;
	char kernel[VM_TEMPLATE_PATH_MAX], initrd[VM_TEMPLATE_PATH_MAX];
	char root_image[VM_TEMPLATE_PATH_MAX];
	char backend[16];
	struct vm_template t;
	char build_dir[VM_TEMPLATE_PATH_MAX + 64];
	char state[VM_TEMPLATE_PATH_MAX + 80];
	struct vm *vm;
	struct err e;
	int saved;
	uint64_t save_t0;
	vm_template_cb cb;
	void *ctx;
};

static void tbuild_finish(struct tbuild *b)
{
	b->cb(b->ctx, b->e.code ? NULL : &b->t, b->e.code ? &b->e : NULL);
	free(b);
}

static void tbuild_prepare_job(uv_work_t *w)
{
	struct tbuild *b = w->data;
	static unsigned counter;
	char root[4096];
	if (vm_template_key(&b->shape, &b->t, &b->e) < 0 ||
	    vm_template_root(root, sizeof(root), &b->e) < 0 || vm_template_mkdirs(root, &b->e) < 0)
		return;
	snprintf(b->build_dir, sizeof(b->build_dir), "%s/.build-%d-%u", root, (int)getpid(),
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	snprintf(b->state, sizeof(b->state), "%s/state", b->build_dir);
	if (mkdir(b->build_dir, 0700) < 0)
		err_set(&b->e, -errno, "creating %s: %s", b->build_dir, strerror(errno));
}

/* As the manifest counts it: a file's size, a directory's files' sum. */
static uint64_t tbuild_state_bytes(const char *state)
{
	struct stat st;
	if (stat(state, &st) < 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return (uint64_t)st.st_size;
	uint64_t sum = 0;
	DIR *d = opendir(state);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char p[VM_TEMPLATE_PATH_MAX + 300];
		snprintf(p, sizeof(p), "%s/%s", state, de->d_name);
		if (de->d_name[0] != '.' && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return sum;
}

static void tbuild_publish_job(uv_work_t *w)
{
	struct tbuild *b = w->data;
	struct err ignore = { 0 };
	if (!b->e.code && vm_template_write_manifest(&b->t, b->build_dir, &b->e) == 0) {
		/* An unusable template under the same key is replaced. */
		vm_template_remove_dir(b->t.dir, &ignore);
		if (rename(b->build_dir, b->t.dir) < 0)
			err_set(&b->e, -errno, "publishing the template %s: %s", b->t.dir, strerror(errno));
	}
	if (b->e.code)
		vm_template_remove_dir(b->build_dir, &ignore);
	else
		b->t.state_bytes = 0;
	if (!b->e.code)
		b->t.state_bytes = tbuild_state_bytes(b->t.state);
}

static void tbuild_after_publish(uv_work_t *w, int status)
{
	(void)status;
	tbuild_finish(w->data);
}

static void tbuild_on_destroyed(struct vm *vm, void *ctx)
{
	struct tbuild *b = ctx;
	(void)vm;
	b->vm = NULL;
	if (!b->e.code && !b->saved)
		err_set(&b->e, -EIO, "the template VM went away before its state was saved");
	int rc = uv_queue_work(b->loop, &b->work, tbuild_publish_job, tbuild_after_publish);
	if (rc < 0) {
		tbuild_publish_job(&b->work);   /* no pool: finish here rather than leak */
		tbuild_after_publish(&b->work, 0);
	}
}

static void tbuild_on_resumed(void *ctx, const struct err *e)
{
	struct tbuild *b = ctx;
	(void)e;   /* a guest that stays paused is stopped by the VMM instead */
	vm_destroy(b->vm);
}

static void tbuild_on_saved(void *ctx, const struct err *e)
{
	struct tbuild *b = ctx;
	if (e) {
		b->e = *e;
		err_wrap(&b->e, "saving the template VM");
	} else {
		b->saved = 1;
		uv_update_time(b->loop);
		b->t.save_ms = (double)(uv_now(b->loop) - b->save_t0);
		log_debug("template %.12s: state saved in %.0f ms", b->t.key, b->t.save_ms);
	}
	/* Resumed, the guest powers off when asked instead of waiting for QMP quit. */
	if (vm_resume(b->vm, tbuild_on_resumed, b) < 0)
		vm_destroy(b->vm);
}

static void tbuild_save(struct vm *vm, struct tbuild *b)
{
	uv_update_time(b->loop);
	b->save_t0 = uv_now(b->loop);
	int rc = vm_snapshot_save(vm, b->state, tbuild_on_saved, b);
	if (rc < 0) {
		err_set(&b->e, rc, "saving the template VM: %s", strerror(-rc));
		vm_destroy(vm);
	}
}

/* POSIX sh and dd only (busybox and Debian images both have them). */
#define TEMPLATE_SHRINK_KEEP_KIB 8192
#define TEMPLATE_SHRINK_TIMEOUT_MS 120000
#define TEMPLATE_SHRINK_STR2(x) #x
#define TEMPLATE_SHRINK_STR(x) TEMPLATE_SHRINK_STR2(x)
static const char template_shrink_sh[] =
	"sync; echo 3 > /proc/sys/vm/drop_caches; f=0; "
	"while read k v u; do [ \"$k\" = MemFree: ] && f=$v; done < /proc/meminfo; "
	"n=$((f - " TEMPLATE_SHRINK_STR(TEMPLATE_SHRINK_KEEP_KIB) ")); "
	"[ \"$n\" -gt 0 ] && dd if=/dev/zero of=/dev/null bs=${n}k count=1 2>/dev/null; true";

static void tbuild_shrink_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len,
				 void *ctx)
{
	(void)x, (void)stream, (void)data, (void)len, (void)ctx;
}

static void tbuild_shrink_done(struct vm_exec *x, const struct vm_exec_result *r, void *ctx)
{
	struct tbuild *b = ctx;
	(void)x;
	if (!b->vm || b->e.code)
		return;   /* failed or destroyed meanwhile: that path finishes the build */
	if (r->err.code || r->code)
		log_warn("template %.12s: shrinking the guest's memory failed (%s); saving it as it is",
			 b->t.key, r->err.code ? r->err.msg : "non-zero exit");
	tbuild_save(b->vm, b);
}

static const struct vm_exec_handlers tbuild_shrink_handlers = {
	.output = tbuild_shrink_output,
	.done = tbuild_shrink_done,
};

static void tbuild_on_ready(struct vm *vm, void *ctx)
{
	struct tbuild *b = ctx;
	static char *const argv[] = { "sh", "-c", (char *)template_shrink_sh, NULL };
	struct vm_exec_spec spec = { .argv = argv, .timeout_ms = TEMPLATE_SHRINK_TIMEOUT_MS };
	struct vm_exec *x;
	struct err e = { 0 };
	if (vm_exec_start(vm, &spec, &tbuild_shrink_handlers, b, &x, &e) < 0) {
		log_warn("template %.12s: cannot shrink the guest's memory (%s); saving it as it is",
			 b->t.key, e.msg);
		tbuild_save(vm, b);
	}
}

static void tbuild_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct tbuild *b = ctx;
	if (!b->e.code) {
		b->e = *e;
		err_wrap(&b->e, "booting the template VM");
	}
	vm_destroy(vm);
}

static void tbuild_after_prepare(uv_work_t *w, int status)
{
	struct tbuild *b = w->data;
	(void)status;
	if (b->e.code) {
		tbuild_finish(b);
		return;
	}
	static const struct vm_events ev = { .ready = tbuild_on_ready, .failed = tbuild_on_failed,
					     .destroyed = tbuild_on_destroyed };
	/* The key named the backend (vm_template_key refuses any other). */
	enum vm_backend_choice which = VM_BACKEND_QEMU;
	char why[256];
	if (b->t.backend[0] && vm_backend_parse(b->t.backend, &which, &b->e) < 0) {
		struct err ignore = { 0 };
		vm_template_remove_dir(b->build_dir, &ignore);
		tbuild_finish(b);
		return;
	}
	struct vm_options o = { .kernel = b->t.kernel, .initrd = b->t.initrd, .cpus = b->t.cpus,
				.memory_mib = b->t.memory_mib,
				.root_image = b->t.root_image[0] ? b->t.root_image : NULL,
				.backend = vm_backend_choose(which, why, sizeof(why)) };
	if (vm_create(b->loop, &o, &ev, b, &b->vm, &b->e) < 0) {
		struct err ignore = { 0 };
		vm_template_remove_dir(b->build_dir, &ignore);
		tbuild_finish(b);
	}
}

int vm_template_build(uv_loop_t *loop, const struct vm_template_shape *s, vm_template_cb cb,
		      void *ctx, struct err *e)
{
	struct tbuild *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(e, -ENOMEM, "out of memory");
	template_copy_shape(s, &b->shape, b->kernel, b->initrd, b->root_image, b->backend);
	b->loop = loop;
	b->cb = cb;
	b->ctx = ctx;
	b->work.data = b;
	int rc = uv_queue_work(loop, &b->work, tbuild_prepare_job, tbuild_after_prepare);
	if (rc < 0) {
		free(b);
		return err_set(e, rc, "queueing the template build: %s", uv_strerror(rc));
	}
	return 0;
}
