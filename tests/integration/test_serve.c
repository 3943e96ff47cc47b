/* `ironclaw serve` end to end: a real daemon on a private socket, real VMs,
 * real HTTP (libcurl, and the curl binary for streaming). Every answer is
 * checked against docs/api.yaml (test_serve_util.h). */
#include "test_serve_util.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <sys/syscall.h>

/* Paths, methods and bodies that need no VM: every error path. */
Test(serve, errors_and_caps_fit_the_document, .timeout = 300)
{
	struct serve_d d;
	struct http_ans a;
	serve_d_start(&d, (char *[]){ "--memory-cap", "200", "--max-sandboxes", "1", NULL });
	struct stat st;
	cr_assert_eq(stat(d.sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
	cr_assert_eq(st.st_uid, 0);

	http_do(&d, "GET", "/v1/health", "/v1/health", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200);
	http_free(&a);
	http_do(&d, "GET", "/metrics", "/metrics", NULL, 0, NULL, &a);
	cr_assert(strstr(a.body, "# TYPE ironclaw_boot_ms histogram"));
	http_free(&a);
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 0);
	http_free(&a);

	/* 404s: unknown ids on every sandbox path. */
	const char *paths[][2] = {
		{ "GET", "/v1/sandboxes/sbnope" }, { "DELETE", "/v1/sandboxes/sbnope" },
	};
	for (size_t i = 0; i < 2; i++) {
		http_do(&d, paths[i][0], paths[i][1], "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
		cr_assert_eq(a.status, 404, "%s %s: %ld", paths[i][0], paths[i][1], a.status);
		http_free(&a);
	}
	http_do(&d, "POST", "/v1/sandboxes/sbnope/exec", "/v1/sandboxes/{id}/exec",
		"{\"argv\":[\"true\"]}", -1, NULL, &a);
	cr_assert_eq(a.status, 404);
	http_free(&a);
	http_do(&d, "PUT", "/v1/sandboxes/sbnope/files?path=/x", "/v1/sandboxes/{id}/files", "x", 1,
		"application/octet-stream", &a);
	cr_assert_eq(a.status, 404);
	http_free(&a);
	http_do(&d, "GET", "/v1/sandboxes/sbnope/files?path=/x", "/v1/sandboxes/{id}/files", NULL, 0,
		NULL, &a);
	cr_assert_eq(a.status, 404);
	http_free(&a);
	http_do(&d, "GET", "/v2/whatever", NULL, NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 404);
	http_free(&a);

	/* 400s name the field. */
	struct { const char *body, *field; } bad[] = {
		{ "{\"cpus\": 0}", "cpus" },
		{ "{\"cpus\": \"2\"}", "cpus" },
		{ "{\"memory_mb\": 128}", "memory_mb" },
		{ "{\"image\": \"ubuntu\"}", "image" },
		{ "{\"net\": \"allow=nonsense\"}", "net" },
		{ "{\"ttl_s\": 999999}", "ttl_s" },
		{ "{\"env\": {\"1X\": \"y\"}}", "env" },
		{ "{\"labels\": {\"a\": 1}}", "labels" },
		{ "{\"cpus\": 1,", "" },
		{ "[1]", "" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http_do(&d, "POST", "/v1/sandboxes", "/v1/sandboxes", bad[i].body, -1, NULL, &a);
		cr_assert_eq(a.status, 400, "%s: %ld", bad[i].body, a.status);
		cr_assert_str_eq(json_string_value(json_object_get(a.json, "field")), bad[i].field,
				 "%s: %s", bad[i].body, a.body);
		http_free(&a);
	}
	/* Body over the 1 MiB cap: refused before it is read. */
	size_t big = (1u << 20) + 10;
	char *b = malloc(big);
	memset(b, ' ', big);
	b[0] = '{';
	b[big - 1] = '}';
	http_do(&d, "POST", "/v1/sandboxes", "/v1/sandboxes", b, (long)big, NULL, &a);
	cr_assert_eq(a.status, 413, "%ld", a.status);
	http_free(&a);
	/* Chunked (no Content-Length): refused once the bytes pass the cap. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "head -c 2000000 /dev/zero | tr '\\0' ' ' | curl -s -o /dev/null "
		 "-w '%%{http_code}' --unix-socket %s -H 'Transfer-Encoding: chunked' "
		 "-H 'Content-Type: application/json' --data-binary @- http://localhost/v1/sandboxes",
		 d.sock);
	FILE *p = popen(cmd, "r");
	char code[8] = "";
	cr_assert(fgets(code, sizeof(code), p));
	pclose(p);
	cr_assert_str_eq(code, "413");
	free(b);
	/* Headers over the cap: MHD refuses them (431) and the daemon goes on. */
	char *hdr = malloc(64 * 1024 + 16);
	memcpy(hdr, "X-Big: ", 7);
	memset(hdr + 7, 'a', 64 * 1024);
	hdr[7 + 64 * 1024] = 0;
	CURL *c = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, hdr);
	long hst = 0;
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d.sock);
	curl_easy_setopt(c, CURLOPT_URL, "http://localhost/v1/health");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
	struct http_ans sink = { .body = calloc(1, 1) };
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	CURLcode cr = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &hst);
	cr_assert(cr != CURLE_OK || hst == 431 || hst == 413, "a 64 KiB header got %ld", hst);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	free(hdr);
	free(sink.body);
	/* 429: over the memory cap, refused before any VM is made. */
	http_do(&d, "POST", "/v1/sandboxes", "/v1/sandboxes", "{\"memory_mib\": 256}", -1, NULL, &a);
	cr_assert_eq(a.status, 429, "%ld %s", a.status, a.body);
	cr_assert(strstr(a.body, "memory cap"));
	http_free(&a);
	http_do(&d, "GET", "/v1/health", "/v1/health", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200, "the daemon stopped serving after the errors");
	http_free(&a);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes"), 0);
	serve_d_stop(&d);
}

/* Reads one line from fd (blocking, with a deadline). */
static int read_line(int fd, char *buf, size_t n, int timeout_ms)
{
	size_t k = 0;
	while (k + 1 < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		if (read(fd, buf + k, 1) != 1)
			return -1;
		if (buf[k++] == '\n')
			break;
	}
	buf[k] = 0;
	return (int)k;
}


/* One sandbox through its whole life: create from the pool, list, get, exec
 * (exit codes, env, stdin), files, streaming read by the curl binary, a
 * client that hangs up mid-exec, delete, and nothing left. */
Test(serve, sandbox_lifecycle_streaming_and_disconnect, .timeout = 600)
{
	struct serve_d d;
	struct http_ans a;
	char made[16], path[256];
	serve_d_start(&d, (char *[]){ "--pool", "1", "--memory", "128", NULL });
	/* Wait for the pool (health says when). */
	for (int i = 0; i < 6000 && metric(&d, "ironclaw_pool_ready") < 1; i++)
		usleep(50000);
	char *id = sb_create(&d, "{\"labels\":{\"who\":\"test\"},\"env\":{\"FOO\":\"bar\"},\"ttl_s\":300}",
			     made, sizeof(made));
	cr_assert_str_eq(made, "pool");
	json_t *sb = sb_get_json(&d, id);
	cr_assert_str_eq(json_string_value(json_object_get(sb, "state")), "ready");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sb, "labels"), "who")),
			 "test");
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(sb, "vm")));
	json_decref(sb);
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 1);
	http_free(&a);

	int code;
	char *out = sb_exec(&d, id, "[\"sh\",\"-c\",\"echo $FOO; exit 7\"]", &code, NULL);
	cr_assert_str_eq(out, "bar\n");
	cr_assert_eq(code, 7);
	free(out);
	out = sb_exec(&d, id, "[\"/no/such/thing\"]", &code, NULL);
	cr_assert_eq(code, 127);
	free(out);
	/* stdin, base64 */
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	http_do(&d, "POST", path, "/v1/sandboxes/{id}/exec",
		"{\"argv\":[\"cat\"],\"stdin\":\"aGVsbG8gc3RkaW4=\"}", -1, NULL, &a);
	cr_assert(strstr(a.body, "\"data\":\"aGVsbG8gc3RkaW4=\""), "%s", a.body);
	http_free(&a);
	/* exec: bad fields */
	http_do(&d, "POST", path, "/v1/sandboxes/{id}/exec", "{\"argv\":[]}", -1, NULL, &a);
	cr_assert_eq(a.status, 400);
	cr_assert_str_eq(json_string_value(json_object_get(a.json, "field")), "argv");
	http_free(&a);
	http_do(&d, "POST", path, "/v1/sandboxes/{id}/exec", "{\"argv\":[\"x\"],\"cwd\":\"rel\"}", -1,
		NULL, &a);
	cr_assert_eq(a.status, 400);
	cr_assert_str_eq(json_string_value(json_object_get(a.json, "field")), "cwd");
	http_free(&a);
	/* timeout_s: killed, 124 */
	http_do(&d, "POST", path, "/v1/sandboxes/{id}/exec",
		"{\"argv\":[\"sleep\",\"60\"],\"timeout_s\":1}", -1, NULL, &a);
	cr_assert(strstr(a.body, "\"code\":124"), "%s", a.body);
	cr_assert(strstr(a.body, "\"timed_out\":true"), "%s", a.body);
	http_free(&a);

	/* files: put, get back byte-exact, list, errors */
	uint8_t blob[70000];
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 31 + 7);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/d/blob.bin", id);
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/files", blob, sizeof(blob),
		"application/octet-stream", &a);
	cr_assert_eq(a.status, 201, "%s", a.body);
	cr_assert_eq(json_integer_value(json_object_get(a.json, "size")), (json_int_t)sizeof(blob));
	http_free(&a);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}/files", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200);
	cr_assert_eq(a.len, sizeof(blob));
	cr_assert_eq(memcmp(a.body, blob, sizeof(blob)), 0);
	http_free(&a);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/d&list=1", id);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}/files", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200, "%s", a.body);
	json_t *e0 = json_array_get(json_object_get(a.json, "entries"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(e0, "name")), "blob.bin");
	cr_assert_str_eq(json_string_value(json_object_get(e0, "type")), "file");
	http_free(&a);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/no/such", id);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}/files", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 404, "%s", a.body);
	http_free(&a);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=relative", id);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}/files", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 400);
	cr_assert_str_eq(json_string_value(json_object_get(a.json, "field")), "path");
	http_free(&a);
	/* PUT over 8 MiB */
	size_t big = (8u << 20) + 1;
	char *bb = calloc(1, big);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/big", id);
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/files", bb, (long)big,
		"application/octet-stream", &a);
	cr_assert_eq(a.status, 413);
	http_free(&a);
	free(bb);

	/* Streaming, read by curl: the first event arrives while the command still
	 * runs (the sandbox says busy), then the client hangs up mid-exec. */
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "exec curl -sN --unix-socket %s -XPOST "
		 "http://localhost/v1/sandboxes/%s/exec -d "
		 "'{\"argv\":[\"sh\",\"-c\",\"echo first; exec sleep 600\"]}'", d.sock, id);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t cp = fork();
	if (cp == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	char line[512];
	cr_assert(read_line(pfd[0], line, sizeof(line), 60000) > 0, "no streamed event");
	cr_assert(strstr(line, "\"type\":\"stdout\""), "%s", line);
	cr_assert(strstr(line, "Zmlyc3QK"), "%s", line); /* "first\n" */
	sb = sb_get_json(&d, id);
	cr_assert_str_eq(json_string_value(json_object_get(sb, "state")), "busy");
	json_decref(sb);
	double disc0 = metric(&d, "ironclaw_exec_disconnects_total");
	kill(cp, SIGKILL);
	waitpid(cp, NULL, 0);
	close(pfd[0]);
	/* The daemon sees the hang-up and kills the command: the sandbox is ready
	 * again long before the sleep's 600 s. */
	int ready = 0;
	for (int i = 0; i < 600 && !ready; i++) {
		sb = sb_get_json(&d, id);
		ready = !strcmp(json_string_value(json_object_get(sb, "state")), "ready");
		json_decref(sb);
		if (!ready)
			usleep(50000);
	}
	cr_assert(ready, "the exec outlived its client");
	cr_assert_eq(metric(&d, "ironclaw_exec_disconnects_total"), disc0 + 1);
	out = sb_exec(&d, id, "[\"echo\",\"still fine\"]", &code, NULL);
	cr_assert_str_eq(out, "still fine\n");
	free(out);

	/* The 204 comes before the teardown ends, but the sandbox is already
	 * unreachable: no GET, exec or list finds it. */
	sb_delete(&d, id);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 404, "a deleted sandbox answered %ld", a.status);
	http_free(&a);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	http_do(&d, "POST", path, "/v1/sandboxes/{id}/exec", "{\"argv\":[\"true\"]}", -1, NULL, &a);
	cr_assert_eq(a.status, 404, "a deleted sandbox ran an exec: %ld", a.status);
	http_free(&a);
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 0);
	http_free(&a);
	sb_wait_torn_down(&d);
	cr_assert_not(vm_dir_exists(vm), "the VM's directory outlived the delete");
	free(id);
	serve_d_stop(&d);
	cr_assert_eq(vmm_count(d.pid), 0);
}

/* Ordinary users: with --group G, a member of G (not root) runs `ironclaw
 * exec` through the daemon; a user outside G cannot reach the socket. */
Test(serve, group_member_execs_without_root, .timeout = 600)
{
	struct serve_d d;
	struct group *g = getgrnam("nogroup");
	struct passwd *pw = getpwnam("nobody");
	cr_assert(g && pw, "needs the nobody user and the nogroup group");
	char gid[16];
	snprintf(gid, sizeof(gid), "%u", (unsigned)g->gr_gid);
	serve_d_start(&d, (char *[]){ "--group", gid, "--memory", "128", NULL });
	struct stat st;
	cr_assert_eq(stat(d.sock, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660);
	cr_assert_eq(st.st_gid, g->gr_gid);
	char bin[4300];
	int copied;
	sb_binary_for(pw->pw_uid, g->gr_gid, d.dir, bin, sizeof(bin), &copied);
	for (int member = 1; member >= 0; member--) {
		int pfd[2];
		cr_assert_eq(pipe(pfd), 0);
		pid_t p = fork();
		if (p == 0) {
			gid_t groups[1] = { g->gr_gid };
			/* Outside the group: the primary group must not be G either. */
			gid_t primary = member ? g->gr_gid : pw->pw_gid == g->gr_gid ? 1 : pw->pw_gid;
			if (setgroups(member ? 1 : 0, groups) || setgid(primary) || setuid(pw->pw_uid))
				_exit(99);
			dup2(pfd[1], 1);
			dup2(pfd[1], 2);
			setenv("IRONCLAW_SOCKET", d.sock, 1);
			if (copied) {
				char gcov[4400];
				snprintf(gcov, sizeof(gcov), "%s/gcov", d.dir);
				setenv("GCOV_PREFIX", gcov, 1);
			}
			execl(bin, "ironclaw", "exec", "--", "sh", "-c",
			      "echo in-guest-uid=$(id -u)", (char *)NULL);
			_exit(98);
		}
		close(pfd[1]);
		char buf[4096] = "";
		size_t k = 0;
		ssize_t n;
		while (k + 1 < sizeof(buf) && (n = read(pfd[0], buf + k, sizeof(buf) - 1 - k)) > 0)
			k += (size_t)n;
		buf[k] = 0;
		close(pfd[0]);
		int status;
		waitpid(p, &status, 0);
		if (member) {
			cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "member: %s", buf);
			cr_assert(strstr(buf, "in-guest-uid=0"), "%s", buf);
		} else {
			/* No access to the socket: the in-process path, which needs root. */
			cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 125, "outsider: %s", buf);
			cr_assert(strstr(buf, "must run as root"), "%s", buf);
		}
	}
	serve_d_stop(&d);
}

/* Every sandbox has a TTL: an expired one is destroyed with its VM; the
 * sandbox cap answers 429 until then. */
Test(serve, ttl_expires_and_the_sandbox_cap_answers_429, .timeout = 600)
{
	struct serve_d d;
	struct http_ans a;
	serve_d_start(&d, (char *[]){ "--max-sandboxes", "1", "--memory", "128", NULL });
	char *id = sb_create(&d, "{\"ttl_s\":3}", NULL, 0);
	json_t *j = sb_get_json(&d, id);
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	cr_assert_leq(json_integer_value(json_object_get(j, "expires_in_s")), 3);
	json_decref(j);
	http_do(&d, "POST", "/v1/sandboxes", "/v1/sandboxes", "{}", -1, NULL, &a);
	cr_assert_eq(a.status, 429, "%ld %s", a.status, a.body);
	cr_assert(strstr(a.body, "--max-sandboxes"), "%s", a.body);
	http_free(&a);
	/* The sweep runs once a second: gone within a few. */
	char path[128];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	long st = 200;
	for (int i = 0; i < 600 && st == 200; i++) {
		http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
		st = a.status;
		http_free(&a);
		if (st == 200)
			usleep(50000);
	}
	cr_assert_eq(st, 404, "the sandbox outlived its TTL");
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_expired_total"), 1);
	/* Its VM is gone once the count drops (a VM being destroyed still counts). */
	for (int i = 0; i < 600 && metric(&d, "ironclaw_sandboxes") > 0; i++)
		usleep(50000);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes"), 0);
	cr_assert_not(vm_dir_exists(vm), "the expired sandbox's VM left %s", vm);
	char *id2 = sb_create(&d, "{}", NULL, 0);
	sb_delete(&d, id2);
	free(id);
	free(id2);
	serve_d_stop(&d);
}

static double sb_expires_at(json_t *j)
{
	json_t *v = json_object_get(j, "expires_at");
	cr_assert(json_is_number(v), "no expires_at");
	return json_number_value(v);
}

static void patch(struct serve_d *d, const char *path, const char *body, struct http_ans *a)
{
	http_do(d, "PATCH", path, "/v1/sandboxes/{id}", body, -1, NULL, a);
}

/* The keep-alive: PATCH {"ttl_s": N} moves the expiry to now + N, capped at
 * --max-ttl (create too); bad bodies are a 400 naming the field, an unknown
 * id a 404; a sandbox renewed to 1 s expires at once and goes with its VM. */
Test(serve, patch_renews_the_ttl_within_the_daemons_cap, .timeout = 600)
{
	struct serve_d d;
	struct http_ans a;
	char path[128];
	serve_d_start(&d, (char *[]){ "--max-ttl", "30", "--memory", "128", NULL });
	patch(&d, "/v1/sandboxes/sbnope", "{\"ttl_s\":5}", &a);
	cr_assert_eq(a.status, 404, "%ld %s", a.status, a.body);
	http_free(&a);
	/* Create asks 100: the daemon gives its cap. */
	char *id = sb_create(&d, "{\"ttl_s\":100}", NULL, 0);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	json_t *j = sb_get_json(&d, id);
	cr_assert_eq(json_integer_value(json_object_get(j, "ttl_s")), 30);
	double at0 = sb_expires_at(j);
	json_decref(j);
	patch(&d, path, "{\"ttl_s\":5}", &a);
	cr_assert_eq(a.status, 200, "%ld %s", a.status, a.body);
	cr_assert_eq(json_integer_value(json_object_get(a.json, "ttl_s")), 5);
	double at1 = sb_expires_at(a.json);
	cr_assert_lt(at1, at0 - 20, "a shorter TTL moves the expiry closer: %f then %f", at0, at1);
	http_free(&a);
	patch(&d, path, "{\"ttl_s\":86400}", &a);
	cr_assert_eq(a.status, 200, "%ld %s", a.status, a.body);
	cr_assert_eq(json_integer_value(json_object_get(a.json, "ttl_s")), 30, "capped: %s", a.body);
	cr_assert_gt(sb_expires_at(a.json), at1 + 20, "renewed: %s", a.body);
	http_free(&a);
	/* Bad bodies name the field. */
	static const char *const bad[][2] = {
		{ "{\"ttl_s\":0}", "ttl_s" }, { "{\"ttl_s\":86401}", "ttl_s" },
		{ "{\"ttl_s\":\"60\"}", "ttl_s" }, { "{\"ttl_s\":1.5}", "ttl_s" },
		{ "{}", "ttl_s" }, { "{\"ttl\":60}", "ttl" }, { "[60]", NULL }, { "ttl_s=60", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		patch(&d, path, bad[i][0], &a);
		cr_assert_eq(a.status, 400, "%s: %ld %s", bad[i][0], a.status, a.body);
		const char *f = json_string_value(json_object_get(a.json, "field"));
		if (bad[i][1])
			cr_assert(f && !strcmp(f, bad[i][1]), "%s: field %s", bad[i][0], f ? f : "none");
		else
			cr_assert_null(f, "%s: field %s", bad[i][0], f);
		http_free(&a);
	}
	/* A refused PATCH changed nothing. */
	j = sb_get_json(&d, id);
	cr_assert_eq(json_integer_value(json_object_get(j, "ttl_s")), 30);
	json_decref(j);
	/* Renewed to 1 s: the sweep takes it and its VM. */
	double expired = metric(&d, "ironclaw_sandboxes_expired_total");
	patch(&d, path, "{\"ttl_s\":1}", &a);
	cr_assert_eq(a.status, 200, "%ld %s", a.status, a.body);
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(a.json, "vm")));
	http_free(&a);
	long st = 200;
	for (int i = 0; i < 600 && st == 200; i++) {
		http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
		st = a.status;
		http_free(&a);
		if (st == 200)
			usleep(50000);
	}
	cr_assert_eq(st, 404, "the sandbox outlived its renewed TTL of 1 s");
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_expired_total"), expired + 1);
	patch(&d, path, "{\"ttl_s\":60}", &a);
	cr_assert_eq(a.status, 404, "an expired sandbox cannot be renewed: %ld", a.status);
	http_free(&a);
	sb_wait_torn_down(&d);
	cr_assert_not(vm_dir_exists(vm), "the expired sandbox's VM left %s", vm);
	free(id);
	serve_d_stop(&d);
	cr_assert_eq(vmm_count(d.pid), 0);
}
