/* The daemon's workspace streams where they fail: a GET whose guest-side
 * @ws-pack fails after the 200 (a directory deeper than the packer's 64
 * levels, reached only after 4 MiB of file data went out) must reach the
 * client as a cut transfer, never as a clean end of a shorter archive; and a
 * PUT body over the daemon's --max-workspace-mib is a 413 while the daemon
 * and the sandbox stay usable. One daemon and one sandbox for both. */
#include "test_serve_util.h"

#include "core/io.h"

static struct serve_d d;
static char *id;
static char path[128];
static char vm[64];

static void setup(void)
{
	serve_d_start(&d, (char *[]){ "--max-workspace-mib", "1", "--memory", "128",
				      "--no-snapshot", NULL });
	id = sb_create(&d, "{}", NULL, 0);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/workspace", id);
	json_t *j = sb_get_json(&d, id);
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
}

static void teardown(void)
{
	sb_delete(&d, id);
	free(id);
	sb_wait_torn_down(&d);
	cr_assert_not(vm_dir_exists(vm), "the sandbox's VM left %s", vm);
	serve_d_stop(&d);
	cr_assert_eq(vmm_count(d.pid), 0);
	json_decref(d.doc);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(serve_workspace, .init = setup, .fini = teardown, .timeout = 600);

/* The daemon still serves, and the sandbox still runs commands. */
static void still_healthy(void)
{
	struct http_ans a;
	int code;
	http_do(&d, "GET", "/v1/health", "/v1/health", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200);
	http_free(&a);
	char *out = sb_exec(&d, id, "[\"echo\",\"alive\"]", &code, NULL);
	cr_assert_eq(code, 0);
	cr_assert_str_eq(out, "alive\n");
	free(out);
}

struct cut_read {
	size_t len;
	unsigned char tail[1024];   /* the last bytes received */
};

static size_t cut_on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct cut_read *c = ctx;
	size_t k = sz * n;
	if (k >= sizeof(c->tail)) {
		memcpy(c->tail, p + k - sizeof(c->tail), sizeof(c->tail));
	} else {
		memmove(c->tail, c->tail + k, sizeof(c->tail) - k);
		memcpy(c->tail + sizeof(c->tail) - k, p, k);
	}
	c->len += k;
	return k;
}

Test(serve_workspace, a_pack_that_fails_after_the_200_is_a_cut_stream)
{
	int code;
	/* 4 MiB of file data first, then a tree 70 levels deep: the packer
	 * fails only on reaching level 65, after four full 1 MiB frames went
	 * out. readdir order is the filesystem's: if the deep tree would come
	 * first, build it first and the file after, and check again. */
	const char *script =
		"[\"sh\",\"-c\",\"mk() { head -c 4194304 /dev/urandom > /workspace/big; }; "
		"deep() { p=/workspace/deep; i=0; while [ $i -lt 70 ]; do p=$p/d; i=$((i+1)); done; "
		"mkdir -p $p; }; mkdir -p /workspace && mk && deep; "
		"first=$(find /workspace -mindepth 1 -maxdepth 1 | head -n 1); "
		"if [ \\\"$first\\\" != /workspace/big ]; then rm -rf /workspace/big /workspace/deep; "
		"deep; mk; fi; find /workspace -mindepth 1 -maxdepth 1 | head -n 1\"]";
	char *out = sb_exec(&d, id, script, &code, NULL);
	cr_assert_eq(code, 0, "%s", out);
	cr_assert_str_eq(out, "/workspace/big\n", "the file is not packed first: %s", out);
	free(out);

	struct cut_read c = { 0 };
	char url[256];
	long status = 0;
	snprintf(url, sizeof(url), "http://localhost%s", path);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d.sock);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cut_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	cr_assert_eq(status, 200, "the failure came after the 200 (status %ld)", status);
	cr_assert_geq(c.len, 4u << 20, "the file's 4 MiB went out before the failure (%zu bytes)",
		      c.len);
	cr_assert_neq(rc, CURLE_OK, "a pack that failed ended as a clean stream after %zu bytes",
		      c.len);
	cr_assert(rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR, "cut how: %s",
		  curl_easy_strerror(rc));
	/* Not a whole archive either: no end-of-archive blocks at its end. */
	static const unsigned char zero[1024];
	cr_assert(memcmp(c.tail, zero, sizeof(zero)), "the cut stream ends like an archive");
	/* The daemon's log says why. */
	char *log = NULL;
	size_t ln = 0;
	cr_assert_eq(io_read_file(d.log, 16u << 20, &log, &ln), 0);
	cr_assert(strstr(log, "the guest's packer failed") && strstr(log, "too deep to copy out"), "the daemon's log does not say why: %.2000s", log);
	free(log);
	still_healthy();
}

Test(serve_workspace, a_body_over_the_cap_is_413_and_the_sandbox_stays_usable)
{
	struct http_ans a;
	char cmd[1024], tarp[160];
	/* 3 MiB of file data against --max-workspace-mib 1. */
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/in' && head -c 3145728 /dev/urandom > '%s/in/big' && "
		 "echo small > '%s/in/small' && tar -C '%s/in' -cf '%s/big.tar' big && "
		 "tar -C '%s/in' -cf '%s/small.tar' small", d.dir, d.dir, d.dir, d.dir, d.dir, d.dir,
		 d.dir);
	cr_assert_eq(system(cmd), 0);
	char *tar = NULL;
	size_t n = 0;
	snprintf(tarp, sizeof(tarp), "%s/big.tar", d.dir);
	cr_assert_eq(io_read_file(tarp, 8u << 20, &tar, &n), 0);
	double rejected = metric(&d, "ironclaw_requests_rejected_total{code=\"413\"}");
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/workspace", tar, (long)n, "application/x-tar", &a);
	cr_assert_eq(a.status, 413, "%ld %s", a.status, a.body);
	cr_assert(strstr(a.body, "--max-workspace-mib"), "%s", a.body);
	http_free(&a);
	free(tar);
	cr_assert_eq(metric(&d, "ironclaw_requests_rejected_total{code=\"413\"}"), rejected + 1);
	still_healthy();
	/* A body under the cap still goes in, whole. */
	snprintf(tarp, sizeof(tarp), "%s/small.tar", d.dir);
	cr_assert_eq(io_read_file(tarp, 1u << 20, &tar, &n), 0);
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/workspace", tar, (long)n, "application/x-tar", &a);
	cr_assert_eq(a.status, 204, "%ld %s", a.status, a.body);
	http_free(&a);
	free(tar);
	int code;
	char *out = sb_exec(&d, id, "[\"cat\",\"/workspace/small\"]", &code, NULL);
	cr_assert_eq(code, 0);
	cr_assert_str_eq(out, "small\n");
	free(out);
}
