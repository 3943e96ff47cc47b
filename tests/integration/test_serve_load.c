/* The daemon under load and under faults: 20 sandboxes at once with hashed
 * output; `kill -9` of the daemon mid-exec, then a restart that cleans up and
 * serves; the warm pool (acquire while refilling, never reused, memory cap). */
#include "test_serve_util.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>

#define N_PAR 20

struct par {
	struct serve_d *d;
	int i;
	char id[64], vm[64];
	char hash[65], want[65];
	int code;
	size_t len;
};

/* Each thread: create, exec a command whose output depends on i, hash it,
 * delete. Criterion asserts are not thread-safe: threads only record. */
static size_t par_body(char *p, size_t sz, size_t n, void *ctx)
{
	return http_on_body(p, sz, n, ctx);
}

static long par_call(struct serve_d *d, const char *method, const char *path, const char *body,
		     struct http_ans *a)
{
	memset(a, 0, sizeof(*a));
	a->body = calloc(1, 1);
	char url[512];
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *c = curl_easy_init();
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, par_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 900L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	a->json = json_loadb(a->body, a->len, 0, NULL);
	return a->status;
}

static void *par_run(void *arg)
{
	struct par *p = arg;
	struct http_ans a;
	char path[128], body[256];
	p->code = -1;
	if (par_call(p->d, "POST", "/v1/sandboxes", "{\"memory_mib\":128,\"ttl_s\":900}", &a) != 201)
		goto out;
	snprintf(p->id, sizeof(p->id), "%s", json_string_value(json_object_get(a.json, "id")));
	snprintf(p->vm, sizeof(p->vm), "%s", json_string_value(json_object_get(a.json, "vm")));
	http_free(&a);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", p->id);
	snprintf(body, sizeof(body), "{\"argv\":[\"seq\",\"%d\",\"%d\"]}", p->i, 20000 + p->i);
	if (par_call(p->d, "POST", path, body, &a) != 200)
		goto out;
	/* Decode every stdout event and hash the concatenation. */
	char *save = NULL, *out = calloc(1, 1);
	size_t len = 0;
	for (char *l = strtok_r(a.body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_t *ev = json_loads(l, 0, NULL);
		const char *t = json_string_value(json_object_get(ev, "type"));
		const char *b64 = json_string_value(json_object_get(ev, "data"));
		if (t && !strcmp(t, "exit"))
			p->code = (int)json_integer_value(json_object_get(ev, "code"));
		if (t && !strcmp(t, "stdout") && b64) {
			static const char tab[] =
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
			size_t bl = strlen(b64);
			out = realloc(out, len + bl + 1);
			unsigned acc = 0;
			int bits = 0;
			for (size_t i = 0; i < bl && b64[i] != '='; i++) {
				acc = (acc << 6) | (unsigned)(strchr(tab, b64[i]) - tab);
				bits += 6;
				if (bits >= 8) {
					bits -= 8;
					out[len++] = (char)((acc >> bits) & 0xff);
				}
			}
		}
		json_decref(ev);
	}
	http_free(&a);
	p->len = len;
	harness_sha256(out, len, p->hash);
	free(out);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", p->id);
	par_call(p->d, "DELETE", path, NULL, &a);
	if (a.status != 204)
		p->code = -2;
out:
	http_free(&a);
	return NULL;
}

Test(serve_load, twenty_sandboxes_at_once_nothing_lost_nothing_left, .timeout = 1500)
{
	struct serve_d d;
	struct par p[N_PAR];
	pthread_t t[N_PAR];
	serve_d_start(&d, (char *[]){ "--max-sandboxes", "20", "--max-booting", "2", "--boot-timeout", "300", NULL });
	for (int i = 0; i < N_PAR; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].d = &d;
		p[i].i = i + 1;
		/* The expected output, computed on the host. */
		struct buf b;
		buf_init(&b, 1u << 20);
		for (int k = i + 1; k <= 20000 + i + 1; k++)
			buf_printf(&b, "%d\n", k);
		harness_sha256(b.data, b.len, p[i].want);
		buf_free(&b);
		cr_assert_eq(pthread_create(&t[i], NULL, par_run, &p[i]), 0);
	}
	for (int i = 0; i < N_PAR; i++)
		pthread_join(t[i], NULL);
	sb_wait_torn_down(&d);
	for (int i = 0; i < N_PAR; i++) {
		cr_assert_eq(p[i].code, 0, "sandbox %d (%s) ended %d; see %s", i, p[i].id, p[i].code,
			     d.log);
		cr_assert_str_eq(p[i].hash, p[i].want, "sandbox %d lost output (%zu bytes)", i,
				 p[i].len);
		cr_assert_not(vm_dir_exists(p[i].vm), "VM %s left its directory", p[i].vm);
	}
	struct http_ans a;
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 0);
	http_free(&a);
	cr_assert_eq(vmm_count(d.pid), 0,
		     "VMMs of the daemon outlived their delete");
	serve_d_stop(&d);
}

static int pid_gone_within(pid_t pid, int ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return errno == ESRCH;
	struct pollfd pp = { .fd = pfd, .events = POLLIN };
	int r = poll(&pp, 1, ms);
	close(pfd);
	return r == 1;
}

/* kill -9 of the daemon mid-exec: its VMM dies with it (parent-death signal);
 * the next daemon removes the leftovers (gc) before serving, and serves. */
Test(serve_load, kill9_mid_exec_then_restart_cleans_and_serves, .timeout = 900)
{
	struct serve_d d;
	serve_d_start(&d, (char *[]){ "--memory", "128", NULL });
	char *id = sb_create(&d, "{}", NULL, 0);
	char path[128], vm[64];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	struct http_ans a;
	http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(a.json, "vm")));
	http_free(&a);
	pid_t vmm[4];
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", d.pid, vmm, 4), 1);
	/* An exec in flight (curl in the background), then kill -9. */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "curl -sN --unix-socket %s -XPOST "
		 "http://localhost/v1/sandboxes/%s/exec -d '{\"argv\":[\"sh\",\"-c\",\"echo go; "
		 "sleep 600\"]}' | head -c 10 >/dev/null", d.sock, id);
	FILE *c = popen(cmd, "r");
	/* The exec is running once the sandbox is busy. */
	int busy = 0;
	for (int i = 0; i < 1200 && !busy; i++) {
		http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
		busy = !strcmp(json_string_value(json_object_get(a.json, "state")), "busy");
		http_free(&a);
		if (!busy)
			usleep(50000);
	}
	cr_assert(busy, "the exec never started");
	kill(d.pid, SIGKILL);
	waitpid(d.pid, NULL, 0);
	cr_assert(pid_gone_within(vmm[0], 10000), "the VMM outlived its daemon's kill -9");
	pclose(c);
	close(d.stop_w);
	/* Restart on the same socket (the stale file is replaced). */
	serve_d_start_at(&d, (char *[]){ "--memory", "128", NULL });
	cr_assert_not(vm_dir_exists(vm), "the restarted daemon did not remove %s", vm);
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 0);
	http_free(&a);
	char *id2 = sb_create(&d, "{}", NULL, 0);
	int code;
	char *out = sb_exec(&d, id2, "[\"echo\",\"alive\"]", &code, NULL);
	cr_assert_str_eq(out, "alive\n");
	free(out);
	sb_delete(&d, id2);
	free(id);
	free(id2);
	serve_d_stop(&d);
}

/* The pool: acquire while it refills, a pool VM is never handed out twice,
 * and the pool never holds more guest memory than its cap. */
Test(serve_load, pool_refills_never_reuses_and_keeps_its_cap, .timeout = 900)
{
	struct serve_d d;
	/* Size 3 but a cap of 2 VMs (2 x 128 MiB): the cap must win. */
	serve_d_start(&d, (char *[]){ "--pool", "3", "--pool-memory", "256", "--memory", "128", NULL });
	for (int i = 0; i < 6000 && metric(&d, "ironclaw_pool_ready") < 2; i++) {
		cr_assert_leq(metric(&d, "ironclaw_pool_ready") + metric(&d, "ironclaw_pool_booting"), 2);
		usleep(50000);
	}
	cr_assert_eq(metric(&d, "ironclaw_pool_ready"), 2);
	cr_assert_eq(metric(&d, "ironclaw_pool_booting"), 0, "the pool passed its memory cap");
	char made[16], vm_a[64], vm_b[64], vm_c[64];
	char *a = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "pool");
	/* Marks its VM; a reused VM would still have it. A cold VM has its own
	 * boot_id; clones of one template share it but each has its own
	 * hostname (its VM id). */
	int code;
	free(sb_exec(&d, a, "[\"sh\",\"-c\",\"echo used > /tmp/marker\"]", &code, NULL));
	char *boot_a = sb_exec(&d, a, "[\"sh\",\"-c\",\"cat /proc/sys/kernel/random/boot_id; hostname\"]", &code, NULL);
	json_t *j = sb_get_json(&d, a);
	snprintf(vm_a, sizeof(vm_a), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	sb_delete(&d, a);
	/* Second pool VM, taken while the pool refills the first. */
	char *b = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "pool");
	cr_assert_leq(metric(&d, "ironclaw_pool_ready") + metric(&d, "ironclaw_pool_booting"), 2);
	/* Third at once: the pool is empty (refilling), so it is made for the
	 * request: restored from the shape's template when there is one. */
	char *c = sb_create(&d, "{}", made, sizeof(made));
	cr_assert(!strcmp(made, "cold") || !strcmp(made, "snapshot"), "made %s", made);
	j = sb_get_json(&d, b);
	snprintf(vm_b, sizeof(vm_b), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	j = sb_get_json(&d, c);
	snprintf(vm_c, sizeof(vm_c), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	cr_assert_str_neq(vm_a, vm_b);
	cr_assert_str_neq(vm_a, vm_c);
	char *boot_b = sb_exec(&d, b, "[\"sh\",\"-c\",\"cat /proc/sys/kernel/random/boot_id; hostname\"]", &code, NULL);
	cr_assert_str_neq(boot_a, boot_b, "a pool VM was handed out twice");
	char *mk = sb_exec(&d, b, "[\"sh\",\"-c\",\"cat /tmp/marker 2>/dev/null; echo end\"]", &code,
			   NULL);
	cr_assert_str_eq(mk, "end\n", "state crossed from one user to the next");
	free(mk);
	sb_delete(&d, b);
	sb_delete(&d, c);
	cr_assert_leq(metric(&d, "ironclaw_pool_ready") + metric(&d, "ironclaw_pool_booting"), 2);
	cr_assert_geq(metric(&d, "ironclaw_sandboxes_created_total{made=\"pool\"}"), 2);
	free(boot_a);
	free(boot_b);
	free(a);
	free(b);
	free(c);
	serve_d_stop(&d);
}
