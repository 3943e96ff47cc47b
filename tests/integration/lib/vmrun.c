/* VM runs through the library API: see vmrun.h. */
#include "vmrun.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/exec.h"
#include "vm/vm.h"

uint64_t vmrun_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void vmrun_on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct vmrun *r = ctx;
	(void)x;
	if (stream == 1) {
		r->out_hash = vmrun_fnv1a(r->out_hash, data, len);
		r->out_len += len;
	}
}

static void vmrun_on_exec_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct vmrun *r = ctx;
	(void)x;
	if (res->err.code) {
		r->failed = 1;
		snprintf(r->why, sizeof(r->why), "%s", res->err.msg);
	} else {
		r->exit_code = res->signal ? 128 + res->signal : res->code;
	}
	vm_destroy(r->vm);
}

static void vmrun_on_ready(struct vm *vm, void *ctx)
{
	struct vmrun *r = ctx;
	static const struct vm_exec_handlers h = { .output = vmrun_on_output, .done = vmrun_on_exec_done };
	struct vm_exec_spec spec = { .argv = r->argv };
	struct vm_exec *x;
	struct err e = { 0 };
	if (vm_exec_start(vm, &spec, &h, r, &x, &e) < 0) {
		r->failed = 1;
		snprintf(r->why, sizeof(r->why), "%s", e.msg);
		vm_destroy(vm);
	}
}

static void vmrun_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct vmrun *r = ctx;
	r->failed = 1;
	snprintf(r->why, sizeof(r->why), "%s", e->msg);
	vm_destroy(vm);
}

static void vmrun_on_destroyed(struct vm *vm, void *ctx)
{
	struct vmrun *r = ctx;
	(void)vm;
	r->vm = NULL;
	r->destroyed = 1;
	if (r->on_done)
		r->on_done(r);
}

/* The library looks for the image beside the ironclaw binary; a test binary
 * lives elsewhere, so point it at the checkout's build/image. */
void vmrun_use_checkout_image(void)
{
	if (getenv("IRONCLAW_IMAGE_DIR"))
		return;
	const char *root = getenv("IRONCLAW_ROOT");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/build/image", root ? root : ".");
	setenv("IRONCLAW_IMAGE_DIR", dir, 0);
}

int vmrun_start(struct vmrun *r)
{
	static const struct vm_events ev = {
		.ready = vmrun_on_ready,
		.failed = vmrun_on_failed,
		.destroyed = vmrun_on_destroyed,
	};
	struct vm_options o = { .net = r->net, .backend = r->backend };
	struct err e = { 0 };
	vmrun_use_checkout_image();
	r->out_hash = VMRUN_FNV_INIT;
	r->out_len = 0;
	r->exit_code = -1;
	r->failed = 0;
	r->destroyed = 0;
	r->why[0] = '\0';
	int rc = vm_create(r->loop, &o, &ev, r, &r->vm, &e);
	if (rc < 0) {
		snprintf(r->why, sizeof(r->why), "%s", e.msg);
		return rc;
	}
	snprintf(r->id, sizeof(r->id), "%s", vm_id(r->vm));
	if (r->abandon)
		vm_destroy(r->vm);
	return 0;
}

int vmrun_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the directory's own fd */
}

long vmrun_rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long size = 0, resident = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}
