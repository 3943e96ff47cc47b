/* `make bench`, the daemon: a sandbox from the warm pool + `exec -- true` +
 * delete, p50 and p99 over SERVE_BENCH_N (default 100) rounds, beside
 * `bwrap --unshare-all true` (bubblewrap, Debian) measured in the same run;
 * then sandboxes created per second over SERVE_BENCH_RATE_S (default 30) s
 * with as many requests in flight as the pool is deep.
 *
 * Between timed rounds the bench waits (untimed) for the pool to have a ready
 * VM: the round measures the hand-over, the exec and the teardown, not a
 * boot; it prints where the round's time goes (create, exec, delete p50).
 *
 * Memory: the pooled VMs' Rss and Pss (smaps_rollup of each QEMU) once the
 * pool is full and settled, beside an idle cold VM started in the same run
 * (`ironclaw exec --no-daemon --no-snapshot` of the same shape, its guest
 * sleeping). Targets: pool round p50 <= 2x bwrap's p50, and pooled/cold
 * <= 0.5x for Rss and Pss. Exits 1 when either is missed. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/benchlib.h"

#define SB_POOL 4

static char sock[128];

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

struct ans {
	char body[65536];
	size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct ans *a = ctx;
	size_t k = sz * n;
	if (a->len + k < sizeof(a->body)) {
		memcpy(a->body + a->len, p, k);
		a->len += k;
		a->body[a->len] = 0;
	}
	return k;
}

static long call(CURL *c, const char *method, const char *path, const char *body, struct ans *a)
{
	char url[256];
	long st = 0;
	a->len = 0;
	a->body[0] = 0;
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(c) != CURLE_OK)
		return -1;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	return st;
}

static int pool_ready(CURL *c)
{
	struct ans a;
	if (call(c, "GET", "/v1/health", NULL, &a) != 200)
		return -1;
	json_t *j = json_loads(a.body, 0, NULL);
	int n = (int)json_integer_value(json_object_get(j, "pool_ready"));
	json_decref(j);
	return n;
}

/* One round: create, exec true, delete. Returns ms, or -1; *made gets how;
 * ph[0..2] the create, exec and delete calls' own ms (where the round goes). */
static double round_once(CURL *c, char *made, size_t n, double ph[3])
{
	struct ans a;
	char path[128];
	double t0 = now_ms(), t1, t2;
	if (call(c, "POST", "/v1/sandboxes", "{}", &a) != 201)
		return -1;
	t1 = now_ms();
	json_t *j = json_loads(a.body, 0, NULL);
	char id[64];
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	snprintf(made, n, "%s", json_string_value(json_object_get(j, "made")));
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	if (call(c, "POST", path, "{\"argv\":[\"true\"]}", &a) != 200 ||
	    !strstr(a.body, "\"type\":\"exit\",\"code\":0"))
		return -1;
	t2 = now_ms();
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	if (call(c, "DELETE", path, NULL, &a) != 204)
		return -1;
	double t3 = now_ms();
	ph[0] = t1 - t0;
	ph[1] = t2 - t1;
	ph[2] = t3 - t2;
	return t3 - t0;
}

/* Runs `bin exec [opts] -- true` (with IRONCLAW_SOCKET set to the daemon's
 * socket when via_daemon); returns ms or -1. */
static double exec_once(const char *bin, int via_daemon)
{
	double t0 = now_ms();
	pid_t p = fork();
	if (p == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		if (via_daemon) {
			setenv("IRONCLAW_SOCKET", sock, 1);
			execl(bin, "ironclaw", "exec", "--memory", "128", "--", "true", (char *)NULL);
		} else {
			execl(bin, "ironclaw", "exec", "--no-daemon", "--no-snapshot", "--memory", "128",
			      "--", "true", (char *)NULL);
		}
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? now_ms() - t0 : -1;
}

/* Rss and Pss (MB) summed over the VMMs descended from pid; returns their count. */
static int vmm_memory(pid_t root, double *rss, double *pss)
{
	int n = 0;
	*rss = *pss = 0;
	DIR *d = opendir("/proc");
	for (struct dirent *de; d && (de = readdir(d));) {
		int pid = atoi(de->d_name), pp = pid;
		char path[64], comm[64] = "";
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (strncmp(comm, "qemu-system", 11))
			continue;
		for (int hop = 0; hop < 8 && pp > 1 && pp != root; hop++) {
			snprintf(path, sizeof(path), "/proc/%d/stat", pp);
			f = fopen(path, "r");
			char buf[512];
			int next = 0;
			if (f && fgets(buf, sizeof(buf), f)) {
				char *q = strrchr(buf, ')');
				if (q)
					sscanf(q + 2, "%*c %d", &next);
			}
			if (f)
				fclose(f);
			pp = next;
		}
		if (pp != root)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
		f = fopen(path, "r");
		char line[256];
		unsigned long long kb;
		while (f && fgets(line, sizeof(line), f)) {
			if (sscanf(line, "Rss: %llu kB", &kb) == 1)
				*rss += (double)kb / 1024.0;
			else if (sscanf(line, "Pss: %llu kB", &kb) == 1)
				*pss += (double)kb / 1024.0;
		}
		if (f)
			fclose(f);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* An idle cold VM to compare the pooled clones with, in the same run: an
 * in-process `exec --no-daemon --no-snapshot` of the pool's shape whose guest
 * says "up" and then sleeps. Returns its pid with *out_fd its stdout (read
 * "up" from it: the guest is booted and idle), or -1. */
static pid_t cold_idle_start(const char *bin, int *out_fd)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -1;
	pid_t p = fork();
	if (p == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(pfd[1], 1);
		dup2(dn, 2);
		close(pfd[0]);
		execl(bin, "ironclaw", "exec", "--no-daemon", "--no-snapshot", "--memory", "128",
		      "--", "sh", "-c", "echo up; sleep 600", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	*out_fd = pfd[0];
	return p;
}

static double bwrap_once(void)
{
	double t0 = now_ms();
	pid_t p = fork();
	if (p == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		execlp("bwrap", "bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev",
		       "--proc", "/proc", "true", (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? now_ms() - t0 : -1;
}

int main(int argc, char **argv)
{
	const char *bin = argc > 1 ? argv[1] : "build/ironclaw";
	int n = getenv("SERVE_BENCH_N") ? atoi(getenv("SERVE_BENCH_N")) : 100;
	int rate_s = getenv("SERVE_BENCH_RATE_S") ? atoi(getenv("SERVE_BENCH_RATE_S")) : 30;
	char dir[] = "/tmp/ic-serve-bench-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	pid_t d = fork();
	if (d == 0) {
		char pool[8];
		snprintf(pool, sizeof(pool), "%d", SB_POOL);
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		execl(bin, "ironclaw", "serve", "--socket", sock, "--pool", pool, "--memory", "128",
		      (char *)NULL);
		_exit(127);
	}
	CURL *c = curl_easy_init();
	int status = 1;
	double *pool_ms = calloc((size_t)n, sizeof(double)), *bw_ms = calloc((size_t)n, sizeof(double));
	double *ph_ms[3];
	for (int k = 0; k < 3; k++)
		ph_ms[k] = calloc((size_t)n, sizeof(double));
	int cold_fd = -1;
	pid_t cold_pid = cold_idle_start(bin, &cold_fd);
	for (int i = 0; i < 6000 && pool_ready(c) < SB_POOL; i++)
		usleep(50000);
	if (pool_ready(c) < 1) {
		fprintf(stderr, "serve_bench: the daemon's pool never filled\n");
		goto out;
	}
	/* Idle pooled VMs' memory (restored from the template unless started
	 * with --no-snapshot) beside an idle cold VM's, after both settle. */
	char up[8] = "";
	if (cold_pid > 0 && read(cold_fd, up, sizeof(up) - 1) <= 0)
		up[0] = 0;
	sleep(5);
	double rss = 0, pss = 0, crss = 0, cpss = 0;
	int nv = vmm_memory(d, &rss, &pss);
	int nc = strncmp(up, "up", 2) ? 0 : vmm_memory(cold_pid, &crss, &cpss);
	if (cold_pid > 0) {
		kill(cold_pid, SIGTERM);
		waitpid(cold_pid, NULL, 0);
		close(cold_fd);
	}
	if (nv > 0)
		printf("serve: %d idle pooled VMs (128 MiB guests): Rss %.1f MB, Pss %.1f MB per VM\n",
		       nv, rss / nv, pss / nv);
	if (nv > 0 && nc == 1)
		printf("serve: an idle cold VM, same run: Rss %.1f MB, Pss %.1f MB; pooled/cold Rss "
		       "%.2fx, Pss %.2fx (target <= 0.5x)\n", crss, cpss, rss / nv / crss,
		       pss / nv / cpss);
	else
		printf("serve: the idle cold VM for the memory ratio did not start\n");
	int cold = 0;
	for (int i = 0; i < n; i++) {
		while (pool_ready(c) < 1)
			usleep(20000); /* untimed: wait for a refill */
		char made[16] = "";
		double ph[3] = { 0 };
		pool_ms[i] = round_once(c, made, sizeof(made), ph);
		for (int k = 0; k < 3; k++)
			ph_ms[k][i] = ph[k];
		cold += strcmp(made, "pool") != 0;
		bw_ms[i] = bwrap_once();
		if (pool_ms[i] < 0 || bw_ms[i] < 0) {
			fprintf(stderr, "serve_bench: round %d failed (pool %.1f, bwrap %.1f)\n", i,
				pool_ms[i], bw_ms[i]);
			goto out;
		}
	}
	double p50 = bench_percentile(pool_ms, n, 50), p99 = bench_percentile(pool_ms, n, 99);
	double b50 = bench_percentile(bw_ms, n, 50), b99 = bench_percentile(bw_ms, n, 99);
	printf("serve: pool sandbox + exec true + delete, %d rounds (%d not from the pool): "
	       "p50 %.1f ms, p99 %.1f ms\n", n, cold, p50, p99);
	printf("serve: phases p50: create %.1f ms, exec true %.1f ms, delete %.1f ms\n",
	       bench_percentile(ph_ms[0], n, 50), bench_percentile(ph_ms[1], n, 50),
	       bench_percentile(ph_ms[2], n, 50));
	printf("serve: bwrap --unshare-all true, same run: p50 %.1f ms, p99 %.1f ms\n", b50, b99);
	printf("serve: ratio p50 %.2fx (target <= 2x)\n", p50 / b50);
	/* `ironclaw exec -- true` through the daemon vs a cold in-process boot. */
	int ne = getenv("SERVE_BENCH_EXEC_N") ? atoi(getenv("SERVE_BENCH_EXEC_N")) : 10;
	double *ex = calloc((size_t)ne, sizeof(double)), ec[3];
	for (int i = 0; i < ne; i++) {
		while (pool_ready(c) < 1)
			usleep(20000);
		ex[i] = exec_once(bin, 1);
	}
	for (int i = 0; i < 3; i++)
		ec[i] = exec_once(bin, 0);
	double e50 = bench_percentile(ex, ne, 50), c50 = bench_percentile(ec, 3, 50);
	printf("serve: ironclaw exec -- true via the daemon: p50 %.1f ms of %d; cold (--no-daemon "
	       "--no-snapshot): p50 %.1f ms of 3; ratio %.3fx (target < 0.2x)\n", e50, ne, c50,
	       e50 / c50);
	free(ex);
	/* Sandboxes per second: create+delete as fast as they come, pool or cold. */
	double t0 = now_ms();
	int made_n = 0;
	while (now_ms() - t0 < rate_s * 1000.0) {
		char made[16];
		struct ans a;
		if (call(c, "POST", "/v1/sandboxes", "{}", &a) != 201)
			break;
		json_t *j = json_loads(a.body, 0, NULL);
		char path[128];
		snprintf(path, sizeof(path), "/v1/sandboxes/%s", json_string_value(json_object_get(j, "id")));
		snprintf(made, sizeof(made), "%s", json_string_value(json_object_get(j, "made")));
		json_decref(j);
		call(c, "DELETE", path, NULL, &a);
		made_n++;
	}
	double el = (now_ms() - t0) / 1000.0;
	printf("serve: %d sandboxes created and deleted in %.1f s: %.2f per second (one client, "
	       "pool of %d, cold boots once it is empty)\n", made_n, el, made_n / el, SB_POOL);
	/* Both targets: the round, and an idle pooled VM's memory against an
	 * idle cold one's (Rss and Pss), when both could be measured. */
	int mem_ok = nv > 0 && nc == 1 && rss / nv <= 0.5 * crss && pss / nv <= 0.5 * cpss;
	if (!mem_ok)
		printf("serve: memory target missed or not measured\n");
	status = p50 <= 2 * b50 && mem_ok ? 0 : 1;
out:
	kill(d, SIGTERM);
	waitpid(d, NULL, 0);
	curl_easy_cleanup(c);
	free(pool_ms);
	free(bw_ms);
	for (int k = 0; k < 3; k++)
		free(ph_ms[k]);
	rmdir(dir);
	return status;
}
