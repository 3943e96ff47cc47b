/* Firecracker's API, as this project uses it: the request bodies (built here,
 * checked against Firecracker's OpenAPI spec by tests/unit/test_fc_contract.c)
 * and a client that sends a sequence of them over the API Unix socket with
 * libcurl on the caller's libuv loop (src/net), one at a time, stopping at the
 * first refusal.
 *
 * Order matters to Firecracker and is fixed here: a boot configures logger,
 * metrics, machine-config, boot-source, drives, vsock, network interfaces,
 * entropy, then InstanceStart; a restore configures logger and metrics, then
 * loads the snapshot (before anything else, as the spec requires) and resumes
 * it in the same request. A refusal's fault_message is surfaced verbatim
 * ("Firecracker refused PUT /boot-source: <its words>"). Every request has a
 * deadline; a dead Firecracker is a connection error at once, not a timeout. */
#ifndef IRONCLAW_VM_FC_API_H
#define IRONCLAW_VM_FC_API_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "core/err.h"
#include "vm/fc_parse.h"

/* One request: method, path, and a JSON body (owned; NULL for none). */
struct fc_api_req {
	const char *method;          /* "PUT", "PATCH" or "GET" (static) */
	char path[64];
	json_t *body;
};

/* Most requests in one sequence (a boot with a drive and a NIC is 10). */
#define FC_API_SEQ_MAX 12
/* Deadline of each request (Firecracker answers configuration in microseconds;
 * a snapshot of a large guest takes longer: FC_API_SNAPSHOT_TIMEOUT_MS). */
#define FC_API_TIMEOUT_MS 3000
#define FC_API_SNAPSHOT_TIMEOUT_MS 120000

/* A boot. Paths are as Firecracker sees them (inside its jail). */
struct fc_boot_config {
	const char *log_path;        /* an existing file or FIFO Firecracker may write */
	const char *metrics_path;    /* likewise */
	unsigned vcpus, mem_mib;
	const char *kernel;          /* an uncompressed ELF vmlinux (x86_64) */
	const char *initrd;          /* NULL: none */
	const char *boot_args;
	const char *rootfs;          /* NULL: no drive (the initramfs is the root) */
	int rootfs_read_only;        /* 1 where the image is shared between VMs */
	unsigned guest_cid;          /* >= 3 */
	const char *vsock_uds;
	const char *tap_name;        /* NULL: no NIC */
	const char *guest_mac;       /* with tap_name: "xx:xx:xx:xx:xx:xx", or NULL for Firecracker's choice */
};

/* A restore from a snapshot (paths inside the jail). */
struct fc_restore_config {
	const char *log_path, *metrics_path;
	const char *snapshot_path;   /* the microVM state */
	const char *mem_path;        /* the guest memory (a File backend) */
	const char *vsock_uds;       /* NULL: keep the snapshot's */
};

/* Fill out[] and *n; bodies are owned by out (fc_api_reqs_free). */
int fc_api_boot_sequence(const struct fc_boot_config *c, struct fc_api_req out[FC_API_SEQ_MAX],
			 size_t *n, struct err *e);
int fc_api_restore_sequence(const struct fc_restore_config *c,
			    struct fc_api_req out[FC_API_SEQ_MAX], size_t *n, struct err *e);
/* PATCH /vm {"state": "Paused"|"Resumed"}. */
int fc_api_req_vm_state(struct fc_api_req *r, int paused);
/* PUT /snapshot/create (a Full snapshot; the VM must be paused first). */
int fc_api_req_snapshot_create(struct fc_api_req *r, const char *snapshot_path,
			       const char *mem_path);
/* PUT /actions {"action_type": "SendCtrlAltDel"}: the x86 way to ask the guest
 * to stop (Firecracker exits when the guest resets). */
int fc_api_req_ctrl_alt_del(struct fc_api_req *r);
void fc_api_reqs_free(struct fc_api_req *r, size_t n);

/* ---- the client ---- */
struct fc_api;
/* e == NULL: every request was accepted. */
typedef void (*fc_api_done_cb)(void *ctx, const struct err *e);

int fc_api_open(uv_loop_t *loop, const char *sock_path, struct fc_api **out, struct err *e);
/* Sends reqs[0..n) in order (their bodies are taken over, also on failure),
 * each with timeout_ms. done runs once, on the loop, unless fc_api_close comes
 * first. -EBUSY while another sequence runs. */
int fc_api_run(struct fc_api *a, struct fc_api_req *reqs, size_t n, unsigned timeout_ms,
	       fc_api_done_cb done, void *ctx, struct err *e);
/* 1 while a sequence runs. */
int fc_api_busy(const struct fc_api *a);
/* Aborts whatever runs (no callback) and frees a once libuv has closed its
 * handles. NULL is fine. */
void fc_api_close(struct fc_api *a);

#endif
