/* Exec output through the guest's zero-copy path (src/guest/exec_io.c: whole
 * 256 KiB chunks of page-sized pipe buffers are spliced into the
 * virtio-serial port, everything else is read and written) arrives byte
 * exact. One VM runs many commands whose output has odd sizes around the
 * page and chunk boundaries, written in large blocks (cat: full pages, the
 * splice path) and in odd-sized blocks (dd bs=4097 or 1000: partial pages,
 * the copy path), first one at a time, then several at once so frames of
 * different execs interleave. Each command hashes the exact file it sends;
 * the host hashes what arrived. The splice conditions are what keeps the 6.1
 * guest kernel alive: relaxed, the first of these commands crashes it
 * ("virtio: zero sized buffers are not allowed"). */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "vm/exec.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

#define OUT_PARALLEL 3

struct out_case {
	unsigned long size;
	const char *writer; /* sends $F on stdout */
};

static const struct out_case out_cases[] = {
	{ 0, "cat" }, { 1, "cat" }, { 4095, "cat" }, { 4096, "cat" }, { 4097, "cat" },
	{ 262143, "cat" }, { 262144, "cat" }, { 262145, "cat" }, { 1048577, "cat" },
	{ 3 * 262144 + 17, "cat" }, { 6000000, "cat" },
	{ 4097, "dd bs=4097" }, { 262145, "dd bs=4097" }, { 2000003, "dd bs=4097" },
	{ 1048576, "dd bs=1000" }, { 2097152, "dd bs=65536" }, { 3000001, "dd bs=131071" },
};
#define OUT_CASES (sizeof(out_cases) / sizeof(out_cases[0]))

struct out_exec {
	struct out_run *run;
	size_t index;
	EVP_MD_CTX *md;
	size_t got;
	char err[512];
	size_t err_len;
};

struct out_run {
	struct vm *vm;
	size_t next, running, finished;
	int parallel;
	struct out_exec execs[OUT_CASES * 2];
	char failure[1024];
};

static void out_start(struct out_run *r);

static void out_on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct out_exec *o = ctx;
	(void)x;
	if (stream == 1) {
		EVP_DigestUpdate(o->md, data, len);
		o->got += len;
	} else {
		size_t n = len < sizeof(o->err) - 1 - o->err_len ? len : sizeof(o->err) - 1 - o->err_len;
		memcpy(o->err + o->err_len, data, n);
		o->err_len += n;
		o->err[o->err_len] = '\0';
	}
}

/* Records the first failure: which case, and what went wrong. */
static void out_fail(struct out_run *r, size_t i, const char *what, const char *detail)
{
	if (!r->failure[0])
		snprintf(r->failure, sizeof(r->failure), "size %lu via %s: %s: %.600s",
			 out_cases[i % OUT_CASES].size, out_cases[i % OUT_CASES].writer, what, detail);
}

static void out_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct out_exec *o = ctx;
	struct out_run *r = o->run;
	const struct out_case *c = &out_cases[o->index % OUT_CASES];
	(void)x;
	unsigned char md[32];
	char hex[65];
	EVP_DigestFinal_ex(o->md, md, NULL);
	EVP_MD_CTX_free(o->md);
	o->md = NULL;
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (res->err.code || res->code != 0)
		out_fail(r, o->index, "exec failed", res->err.code ? res->err.msg : o->err);
	else if (o->got != c->size)
		out_fail(r, o->index, "wrong length; the guest said", o->err);
	else if (o->err_len < 64 || strncmp(o->err, hex, 64))
		out_fail(r, o->index, "hash differs; the guest said", o->err);
	r->running--;
	r->finished++;
	if (r->failure[0] || r->finished == OUT_CASES * 2) {
		vm_destroy(r->vm);
		return;
	}
	out_start(r);
}

static void out_start(struct out_run *r)
{
	static const struct vm_exec_handlers h = { .output = out_on_output, .done = out_on_done };
	/* First every case alone, then OUT_PARALLEL at a time. */
	int width = r->next < OUT_CASES ? 1 : OUT_PARALLEL;
	while (r->next < OUT_CASES * 2 && (int)r->running < width && !(r->next == OUT_CASES && r->running)) {
		size_t i = r->next++;
		const struct out_case *c = &out_cases[i % OUT_CASES];
		struct out_exec *o = &r->execs[i];
		char script[512];
		if (!strcmp(c->writer, "cat"))
			snprintf(script, sizeof(script),
				 "F=/tmp/out%zu; head -c %lu /dev/urandom > $F && sha256sum $F >&2 && "
				 "cat $F && rm -f $F", i, c->size);
		else
			snprintf(script, sizeof(script),
				 "F=/tmp/out%zu; head -c %lu /dev/urandom > $F && sha256sum $F >&2 && "
				 "%s if=$F 2>/dev/null && rm -f $F", i, c->size, c->writer);
		char *argv[] = { "sh", "-c", script, NULL };
		struct vm_exec_spec spec = { .argv = argv, .timeout_ms = 120000 };
		struct err e = { 0 };
		struct vm_exec *x;
		*o = (struct out_exec){ .run = r, .index = i, .md = EVP_MD_CTX_new() };
		EVP_DigestInit_ex(o->md, EVP_sha256(), NULL);
		r->running++;
		if (vm_exec_start(r->vm, &spec, &h, o, &x, &e) < 0) {
			r->running--;
			EVP_MD_CTX_free(o->md);
			out_fail(r, i, "exec.start", e.msg);
			vm_destroy(r->vm);
			return;
		}
	}
}

static void out_on_ready(struct vm *vm, void *ctx)
{
	(void)vm;
	out_start(ctx);
}

static void out_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct out_run *r = ctx;
	if (!r->failure[0])
		snprintf(r->failure, sizeof(r->failure), "VM failed after %zu of %zu commands: %.900s",
			 r->finished, OUT_CASES * 2, e->msg);
	vm_destroy(vm);
}

Test(exec_output, odd_sizes_alone_and_interleaved_arrive_byte_exact, .timeout = 600)
{
	vmrun_use_checkout_image();
	uv_loop_t loop;
	uv_loop_init(&loop);
	static struct out_run r;
	memset(&r, 0, sizeof(r));
	struct vm_options o = { .memory_mib = 256 };
	static const struct vm_events ev = { .ready = out_on_ready, .failed = out_on_failed };
	struct err e = { 0 };
	cr_assert_eq(vm_create(&loop, &o, &ev, &r, &r.vm, &e), 0, "%s", e.msg);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	cr_assert_str_empty(r.failure, "%s", r.failure);
	cr_assert_eq(r.finished, OUT_CASES * 2);
}
