/* Firecracker's API bodies and client: see fc_api.h.
 *
 * The client owns one curl multi (src/net) on the caller's loop and one easy
 * handle per request, made when the request is sent: a sequence is a handful
 * of requests per VM, so reuse would save nothing worth its state. The
 * response body is collected into a buffer capped at FC_API_BODY_MAX (the
 * write callback refuses more, which aborts the transfer) and checked by
 * fc_api_parse_reply. */
#include "vm/fc_api.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "net/net.h"

static int fc_req(struct fc_api_req *r, const char *method, const char *path, json_t *body,
		  struct err *e)
{
	r->method = method;
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->body = body;
	if (!body)
		return err_set(e, -ENOMEM, "out of memory building a Firecracker request");
	return 0;
}

static int fc_seq_logging(const char *log_path, const char *metrics_path,
			  struct fc_api_req *out, size_t *n, struct err *e)
{
	int rc;
	if ((rc = fc_req(&out[(*n)++], "PUT", "/logger",
			 json_pack("{s:s, s:s, s:b, s:b}", "log_path", log_path, "level", "Info",
				   "show_level", 1, "show_log_origin", 0), e)) < 0)
		return rc;
	return fc_req(&out[(*n)++], "PUT", "/metrics", json_pack("{s:s}", "metrics_path", metrics_path), e);
}

int fc_api_boot_sequence(const struct fc_boot_config *c, struct fc_api_req out[FC_API_SEQ_MAX],
			 size_t *n, struct err *e)
{
	int rc;
	*n = 0;
	memset(out, 0, sizeof(*out) * FC_API_SEQ_MAX);
	if (c->vcpus < 1 || c->vcpus > 32 || (c->vcpus > 1 && c->vcpus % 2))
		return err_set(e, -EINVAL, "Firecracker runs 1 or an even number of vCPUs up to 32, not %u",
			       c->vcpus);
	if (c->guest_cid < 3)
		return err_set(e, -EINVAL, "vsock guest CID %u is reserved (3 or more)", c->guest_cid);
	if ((rc = fc_seq_logging(c->log_path, c->metrics_path, out, n, e)) < 0)
		goto fail;
	if ((rc = fc_req(&out[(*n)++], "PUT", "/machine-config",
			 json_pack("{s:i, s:i, s:b}", "vcpu_count", (json_int_t)c->vcpus, "mem_size_mib",
				   (json_int_t)c->mem_mib, "smt", 0), e)) < 0)
		goto fail;
	json_t *boot = json_pack("{s:s, s:s}", "kernel_image_path", c->kernel, "boot_args", c->boot_args);
	if (boot && c->initrd)
		json_object_set_new(boot, "initrd_path", json_string(c->initrd));
	if ((rc = fc_req(&out[(*n)++], "PUT", "/boot-source", boot, e)) < 0)
		goto fail;
	if (c->rootfs &&
	    (rc = fc_req(&out[(*n)++], "PUT", "/drives/rootfs",
			 json_pack("{s:s, s:b, s:s, s:b}", "drive_id", "rootfs", "is_root_device", 1,
				   "path_on_host", c->rootfs, "is_read_only", c->rootfs_read_only), e)) < 0)
		goto fail;
	if ((rc = fc_req(&out[(*n)++], "PUT", "/vsock",
			 json_pack("{s:i, s:s}", "guest_cid", (json_int_t)c->guest_cid, "uds_path",
				   c->vsock_uds), e)) < 0)
		goto fail;
	if (c->tap_name) {
		json_t *nic = json_pack("{s:s, s:s}", "iface_id", "eth0", "host_dev_name", c->tap_name);
		if (nic && c->guest_mac)
			json_object_set_new(nic, "guest_mac", json_string(c->guest_mac));
		if ((rc = fc_req(&out[(*n)++], "PUT", "/network-interfaces/eth0", nic, e)) < 0)
			goto fail;
	}
	if ((rc = fc_req(&out[(*n)++], "PUT", "/entropy", json_object(), e)) < 0)
		goto fail;
	if ((rc = fc_req(&out[(*n)++], "PUT", "/actions",
			 json_pack("{s:s}", "action_type", "InstanceStart"), e)) < 0)
		goto fail;
	return 0;
fail:
	fc_api_reqs_free(out, *n);
	*n = 0;
	return rc;
}

int fc_api_restore_sequence(const struct fc_restore_config *c,
			    struct fc_api_req out[FC_API_SEQ_MAX], size_t *n, struct err *e)
{
	int rc;
	*n = 0;
	memset(out, 0, sizeof(*out) * FC_API_SEQ_MAX);
	if ((rc = fc_seq_logging(c->log_path, c->metrics_path, out, n, e)) < 0)
		goto fail;
	/* mem_backend, not the deprecated mem_file_path; resume_vm so that the guest
	 * runs as soon as the load returns. */
	json_t *load = json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", c->snapshot_path,
				 "mem_backend", "backend_type", "File", "backend_path", c->mem_path,
				 "resume_vm", 1);
	if (load && c->vsock_uds)
		json_object_set_new(load, "vsock_override", json_pack("{s:s}", "uds_path", c->vsock_uds));
	if ((rc = fc_req(&out[(*n)++], "PUT", "/snapshot/load", load, e)) < 0)
		goto fail;
	return 0;
fail:
	fc_api_reqs_free(out, *n);
	*n = 0;
	return rc;
}

int fc_api_req_vm_state(struct fc_api_req *r, int paused)
{
	return fc_req(r, "PATCH", "/vm", json_pack("{s:s}", "state", paused ? "Paused" : "Resumed"), NULL);
}

int fc_api_req_snapshot_create(struct fc_api_req *r, const char *snapshot_path, const char *mem_path)
{
	return fc_req(r, "PUT", "/snapshot/create",
		      json_pack("{s:s, s:s, s:s}", "snapshot_type", "Full", "snapshot_path", snapshot_path,
				"mem_file_path", mem_path), NULL);
}

int fc_api_req_ctrl_alt_del(struct fc_api_req *r)
{
	return fc_req(r, "PUT", "/actions", json_pack("{s:s}", "action_type", "SendCtrlAltDel"), NULL);
}

void fc_api_reqs_free(struct fc_api_req *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(r[i].body);
		r[i].body = NULL;
	}
}

/* ---- the client ---- */

struct fc_api {
	uv_loop_t *loop;
	struct net_curl *net;
	char sock_path[108];
	struct curl_slist *hdrs;
	struct fc_api_req reqs[FC_API_SEQ_MAX];
	size_t n, next;
	unsigned timeout_ms;
	CURL *easy;                  /* the request in flight */
	char *body;                  /* its serialized body */
	struct buf resp;             /* its response, capped */
	int resp_over;
	char curl_err[CURL_ERROR_SIZE];
	fc_api_done_cb done;
	void *ctx;
};

int fc_api_busy(const struct fc_api *a)
{
	return a && a->done != NULL;
}

int fc_api_open(uv_loop_t *loop, const char *sock_path, struct fc_api **out, struct err *e)
{
	struct fc_api *a = calloc(1, sizeof(*a));
	if (!a)
		return err_set(e, -ENOMEM, "out of memory");
	if (strlen(sock_path) >= sizeof(a->sock_path)) {
		free(a);
		return err_set(e, -ENAMETOOLONG, "Firecracker's API socket path is too long: %s", sock_path);
	}
	snprintf(a->sock_path, sizeof(a->sock_path), "%s", sock_path);
	a->loop = loop;
	buf_init(&a->resp, FC_API_BODY_MAX);
	a->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	a->hdrs = a->hdrs ? curl_slist_append(a->hdrs, "Accept: application/json") : NULL;
	/* Firecracker's HTTP server does not do 100-continue. */
	a->hdrs = a->hdrs ? curl_slist_append(a->hdrs, "Expect:") : NULL;
	int rc;
	if (!a->hdrs) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = net_curl_new(loop, NULL, NULL, &a->net, e)) < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	curl_slist_free_all(a->hdrs);
	buf_free(&a->resp);
	free(a);
	return rc;
}

static size_t fc_on_write(char *p, size_t size, size_t nmemb, void *opaque)
{
	struct fc_api *a = opaque;
	size_t n = size * nmemb;
	if (a->resp.len + n > FC_API_BODY_MAX) {
		a->resp_over = 1;
		return 0;   /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	buf_append(&a->resp, p, n);
	return n;
}

static void fc_drop_easy(struct fc_api *a)
{
	if (a->easy)
		curl_easy_cleanup(a->easy);
	a->easy = NULL;
	free(a->body);
	a->body = NULL;
	buf_consume(&a->resp, a->resp.len);
	a->resp_over = 0;
}

static void fc_finish(struct fc_api *a, const struct err *e)
{
	fc_drop_easy(a);
	fc_api_reqs_free(a->reqs, a->n);
	a->n = a->next = 0;
	fc_api_done_cb done = a->done;
	a->done = NULL;
	if (done)
		done(a->ctx, e);
}

static int fc_send_next(struct fc_api *a, struct err *e);

static void fc_on_done(void *opaque, CURL *easy, CURLcode res)
{
	struct fc_api *a = opaque;
	struct fc_api_req *r = &a->reqs[a->next];
	struct err e = { 0 };
	if (res != CURLE_OK) {
		if (a->resp_over)
			err_set(&e, -EPROTO, "Firecracker's answer to %s %s is over %u bytes", r->method, r->path,
				FC_API_BODY_MAX);
		else if (res == CURLE_OPERATION_TIMEDOUT)
			err_set(&e, -ETIMEDOUT, "Firecracker did not answer %s %s within %.1f s", r->method,
				r->path, a->timeout_ms / 1000.0);
		else
			err_set(&e, -ECONNRESET, "Firecracker's API failed during %s %s: %s", r->method, r->path,
				a->curl_err[0] ? a->curl_err : curl_easy_strerror(res));
		fc_finish(a, &e);
		return;
	}
	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	struct fc_api_reply reply;
	const char *body = a->resp.data ? (const char *)a->resp.data : "";
	int rc = fc_api_parse_reply(status, body, a->resp.len, &reply, &e);
	if (rc == -EREMOTEIO) {
		err_wrap(&e, "Firecracker refused %s %s (HTTP %ld)", r->method, r->path, status);
		fc_finish(a, &e);
		return;
	}
	if (rc < 0) {
		err_wrap(&e, "%s %s", r->method, r->path);
		fc_finish(a, &e);
		return;
	}
	fc_drop_easy(a);
	a->next++;
	if (a->next == a->n) {
		fc_finish(a, NULL);
		return;
	}
	if (fc_send_next(a, &e) < 0)
		fc_finish(a, &e);
}

static int fc_send_next(struct fc_api *a, struct err *e)
{
	struct fc_api_req *r = &a->reqs[a->next];
	char url[128];
	snprintf(url, sizeof(url), "http://localhost%s", r->path);
	if (r->body && !(a->body = json_dumps(r->body, JSON_COMPACT)))
		return err_set(e, -ENOMEM, "out of memory");
	CURL *ez = a->easy = curl_easy_init();
	if (!ez)
		return err_set(e, -ENOMEM, "curl_easy_init failed");
	a->curl_err[0] = '\0';
	curl_easy_setopt(ez, CURLOPT_UNIX_SOCKET_PATH, a->sock_path);
	curl_easy_setopt(ez, CURLOPT_URL, url);
	curl_easy_setopt(ez, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(ez, CURLOPT_CUSTOMREQUEST, r->method);
	curl_easy_setopt(ez, CURLOPT_HTTPHEADER, a->hdrs);
	curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, fc_on_write);
	curl_easy_setopt(ez, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(ez, CURLOPT_ERRORBUFFER, a->curl_err);
	curl_easy_setopt(ez, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ez, CURLOPT_TIMEOUT_MS, (long)a->timeout_ms);
	curl_easy_setopt(ez, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(ez, CURLOPT_USERAGENT, "ironclaw-fc/1");
	if (a->body) {
		curl_easy_setopt(ez, CURLOPT_POSTFIELDS, a->body);
		curl_easy_setopt(ez, CURLOPT_POSTFIELDSIZE, (long)strlen(a->body));
	} else {
		curl_easy_setopt(ez, CURLOPT_HTTPGET, 1L);
	}
	return net_curl_add(a->net, ez, fc_on_done, a, e);
}

int fc_api_run(struct fc_api *a, struct fc_api_req *reqs, size_t n, unsigned timeout_ms,
	       fc_api_done_cb done, void *ctx, struct err *e)
{
	if (a->done || n == 0 || n > FC_API_SEQ_MAX) {
		fc_api_reqs_free(reqs, n > FC_API_SEQ_MAX ? FC_API_SEQ_MAX : n);
		return a->done ? err_set(e, -EBUSY, "another Firecracker API call is running")
			       : err_set(e, -EINVAL, "%zu Firecracker requests", n);
	}
	memcpy(a->reqs, reqs, n * sizeof(*reqs));
	for (size_t i = 0; i < n; i++)
		reqs[i].body = NULL;
	a->n = n;
	a->next = 0;
	a->timeout_ms = timeout_ms;
	a->done = done;
	a->ctx = ctx;
	int rc = fc_send_next(a, e);
	if (rc < 0) {
		a->done = NULL;
		fc_drop_easy(a);
		fc_api_reqs_free(a->reqs, a->n);
		a->n = 0;
	}
	return rc;
}

static void fc_api_closed(void *opaque)
{
	struct fc_api *a = opaque;
	fc_drop_easy(a);
	fc_api_reqs_free(a->reqs, a->n);
	curl_slist_free_all(a->hdrs);
	buf_free(&a->resp);
	free(a);
}

void fc_api_close(struct fc_api *a)
{
	if (!a)
		return;
	a->done = NULL;
	if (a->easy)
		net_curl_remove(a->net, a->easy);
	net_curl_close(a->net, fc_api_closed, a);
}
