/* Exec stdin through the guest's zero-copy path (src/guest/exec_io.c: a
 * stdin frame carrying at least GUEST_STDIN_MAP_MIN bytes arrives in a
 * mapping of its own, page-aligned, and is vmspliced into the command's pipe;
 * smaller ones are written) arrives byte exact. One VM runs many
 * `sha256sum` commands fed stdin of odd sizes around the page, mapping
 * threshold and frame boundaries (0 bytes to 6 MB), written by the host in
 * pieces of several odd sizes so frames start and end anywhere, first one at
 * a time, then several at once so stdin frames of different execs
 * interleave. Inputs past the pipe's 1 MiB make the agent splice a frame in
 * parts (the pipe is full until sha256sum, slow under TCG, catches up). The
 * guest's hash of what it read must equal the host's hash of what it sent. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "vm/exec.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

#define IN_PARALLEL 3

struct in_case {
	unsigned long size;
	size_t piece;       /* bytes per vm_exec_write_stdin call */
};

static const struct in_case in_cases[] = {
	{ 0, 1 }, { 1, 1 }, { 4095, 4095 }, { 4096, 4096 }, { 4097, 4097 },
	{ 16383, 16383 }, { 16384, 16384 }, { 16385, 16385 }, { 16404, 7 },
	{ 262143, 262143 }, { 262144, 262144 }, { 262145, 262145 }, { 262164, 100003 },
	{ 1048577, 1 << 20 }, { 3 * 262144 + 17, 4097 }, { 2000003, 65536 },
	{ 6000000, 1 << 20 }, { 3000001, 262145 },
};
#define IN_CASES (sizeof(in_cases) / sizeof(in_cases[0]))

struct in_exec {
	struct in_run *run;
	struct vm_exec *x;
	size_t index;
	unsigned long sent;
	uint64_t seed;
	EVP_MD_CTX *md;
	char out[256];
	size_t out_len;
	char err[512];
	size_t err_len;
};

struct in_run {
	struct vm *vm;
	size_t next, running, finished;
	struct in_exec execs[IN_CASES * 2];
	char failure[1024];
};

static void in_start(struct in_run *r);

static void in_fail(struct in_run *r, size_t i, const char *what, const char *detail)
{
	if (!r->failure[0])
		snprintf(r->failure, sizeof(r->failure), "%lu bytes in %zu-byte pieces (exec %zu): %s: %.600s",
			 in_cases[i % IN_CASES].size, in_cases[i % IN_CASES].piece, i, what, detail);
}

/* Deterministic bytes, different per exec (xorshift64*). */
static void in_fill(struct in_exec *o, uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		o->seed ^= o->seed >> 12;
		o->seed ^= o->seed << 25;
		o->seed ^= o->seed >> 27;
		p[k] = (uint8_t)((o->seed * 2685821657736338717ull) >> 56);
	}
}

/* Writes pieces while the host queue takes them; eof with the last one. */
static void in_feed(struct in_exec *o)
{
	static uint8_t piece[1 << 20];
	const struct in_case *c = &in_cases[o->index % IN_CASES];
	for (;;) {
		size_t n = c->size - o->sent < c->piece ? c->size - o->sent : c->piece;
		if (!o->x || vm_exec_stdin_pending(o->x) + n > VM_EXEC_STDIN_QUEUE_MAX)
			return;
		in_fill(o, piece, n);
		EVP_DigestUpdate(o->md, piece, n);
		int eof = o->sent + n == c->size;
		int rc = vm_exec_write_stdin(o->x, piece, n, eof);
		if (rc < 0) {
			char why[64];
			snprintf(why, sizeof(why), "errno %d", -rc);
			in_fail(o->run, o->index, "vm_exec_write_stdin", why);
			vm_exec_kill(o->x, 9);
			return;
		}
		o->sent += n;
		if (eof) {
			o->x = NULL;   /* everything is queued */
			return;
		}
	}
}

static void in_on_credit(struct vm_exec *x, void *ctx)
{
	(void)x;
	in_feed(ctx);
}

static void in_append(char *buf, size_t *len, size_t cap, const uint8_t *data, size_t n)
{
	if (n > cap - 1 - *len)
		n = cap - 1 - *len;
	memcpy(buf + *len, data, n);
	*len += n;
	buf[*len] = '\0';
}

static void in_on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct in_exec *o = ctx;
	(void)x;
	if (stream == 1)
		in_append(o->out, &o->out_len, sizeof(o->out), data, len);
	else
		in_append(o->err, &o->err_len, sizeof(o->err), data, len);
}

static void in_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct in_exec *o = ctx;
	struct in_run *r = o->run;
	const struct in_case *c = &in_cases[o->index % IN_CASES];
	(void)x;
	o->x = NULL;
	unsigned char md[32];
	char hex[65];
	EVP_DigestFinal_ex(o->md, md, NULL);
	EVP_MD_CTX_free(o->md);
	o->md = NULL;
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (res->err.code || res->code != 0)
		in_fail(r, o->index, "exec failed", res->err.code ? res->err.msg : o->err);
	else if (o->sent != c->size)
		in_fail(r, o->index, "not all stdin was sent", o->err);
	else if (o->out_len < 64 || strncmp(o->out, hex, 64))
		in_fail(r, o->index, "hash differs; the guest said", o->out);
	r->running--;
	r->finished++;
	if (r->failure[0] || r->finished == IN_CASES * 2) {
		vm_destroy(r->vm);
		return;
	}
	in_start(r);
}

static void in_start(struct in_run *r)
{
	static const struct vm_exec_handlers h = {
		.output = in_on_output, .stdin_credit = in_on_credit, .done = in_on_done,
	};
	/* First every case alone, then IN_PARALLEL at a time. */
	int width = r->next < IN_CASES ? 1 : IN_PARALLEL;
	while (r->next < IN_CASES * 2 && (int)r->running < width && !(r->next == IN_CASES && r->running)) {
		size_t i = r->next++;
		struct in_exec *o = &r->execs[i];
		char *argv[] = { "sha256sum", NULL };
		struct vm_exec_spec spec = { .argv = argv, .timeout_ms = 120000, .want_stdin = 1 };
		struct err e = { 0 };
		*o = (struct in_exec){ .run = r, .index = i, .md = EVP_MD_CTX_new(),
				       .seed = 0x9e3779b97f4a7c15ull * (i + 1) };
		EVP_DigestInit_ex(o->md, EVP_sha256(), NULL);
		r->running++;
		if (vm_exec_start(r->vm, &spec, &h, o, &o->x, &e) < 0) {
			r->running--;
			EVP_MD_CTX_free(o->md);
			in_fail(r, i, "exec.start", e.msg);
			vm_destroy(r->vm);
			return;
		}
		in_feed(o);
	}
}

static void in_on_ready(struct vm *vm, void *ctx)
{
	(void)vm;
	in_start(ctx);
}

static void in_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct in_run *r = ctx;
	if (!r->failure[0])
		snprintf(r->failure, sizeof(r->failure), "VM failed after %zu of %zu commands: %.900s",
			 r->finished, IN_CASES * 2, e->msg);
	vm_destroy(vm);
}

Test(exec_stdin, odd_sizes_alone_and_interleaved_arrive_byte_exact, .timeout = 600)
{
	vmrun_use_checkout_image();
	uv_loop_t loop;
	uv_loop_init(&loop);
	static struct in_run r;
	memset(&r, 0, sizeof(r));
	struct vm_options o = { .memory_mib = 256 };
	static const struct vm_events ev = { .ready = in_on_ready, .failed = in_on_failed };
	struct err e = { 0 };
	cr_assert_eq(vm_create(&loop, &o, &ev, &r, &r.vm, &e), 0, "%s", e.msg);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	cr_assert_str_empty(r.failure, "%s", r.failure);
	cr_assert_eq(r.finished, IN_CASES * 2);
}
