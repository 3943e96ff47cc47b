/* `ironclaw doctor`: explains this host, one line per thing IronClaw needs, each
 * problem with the command that fixes it. Exits 1 if anything required is
 * missing, so scripts can gate on it. */
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "image/image.h"
#include "serve/serve.h"
#include "core/io.h"
#include "vm/vm.h"

static int doctor_problems;

static void doctor_line(int ok, const char *what, const char *detail, const char *fix)
{
	printf("%-4s %-13s %s\n", ok ? "ok" : "FAIL", what, detail);
	if (!ok) {
		doctor_problems++;
		if (fix)
			printf("     %-13s fix: %s\n", "", fix);
	}
}

static void doctor_vmm(char *version, size_t len)
{
	const struct vm_backend_ops *b = vm_backend_default();
	char cmd[512];
	doctor_line(1, "backend", b->name, NULL);
	version[0] = '\0';
	/* Fixed text (a compiled-in path), not user input, reaches the shell. */
	snprintf(cmd, sizeof(cmd), "%s --version 2>/dev/null", b->vmm_binary);
	FILE *p = popen(cmd, "r");
	if (p) {
		if (!fgets(version, (int)len, p))
			version[0] = '\0';
		pclose(p);
	}
	version[strcspn(version, "\n")] = '\0';
	int ok = version[0] != '\0';
	char missing[300];
	snprintf(missing, sizeof(missing), "%s not found or not runnable", b->vmm_binary);
	doctor_line(ok, "qemu", ok ? version : missing, "make deps (or: apt-get install qemu-system-x86)");
}

static int doctor_image(struct vm_image *img)
{
	struct err e = { 0 };
	if (vm_image_find(img, &e) < 0) {
		doctor_line(0, "image", e.msg, "make image");
		return 0;
	}
	struct stat k, i;
	char detail[4400];
	stat(img->kernel, &k);
	stat(img->initrd, &i);
	snprintf(detail, sizeof(detail), "%s (%.1f MiB kernel, %.1f MiB initramfs)", img->initrd,
		 k.st_size / 1048576.0, i.st_size / 1048576.0);
	doctor_line(1, "image", detail, NULL);
	return 1;
}

static void doctor_accel(const struct vm_image *img, int have_image)
{
	if (!have_image) {
		doctor_line(0, "accelerator", "unknown: the probe boots the guest image, which is missing",
			    "make image, then run doctor again");
		return;
	}
	struct vm_accel_verdict v;
	fprintf(stderr, "doctor: checking the accelerator (a one-time KVM probe boot, cached)...\n");
	vm_accel_detect(vm_backend_default()->vmm_binary, img->kernel, img->initrd, &v);
	char detail[400];
	snprintf(detail, sizeof(detail), "%s: %s%s", vm_accel_name(v.accel), v.reason,
		 v.cached ? " (cached)" : "");
	/* TCG is slower but fully works, so it is not a failure. */
	doctor_line(1, "accelerator", detail, NULL);
	unsigned long tsc = vm_host_tsc_khz();
	char tscd[128];
	snprintf(tscd, sizeof(tscd), "%lu kHz (passed to TCG guests as tsc_early_khz)", tsc);
	doctor_line(tsc > 0, "tsc", tsc ? tscd : "unknown", "TCG guests may hang calibrating; check /proc/cpuinfo");
}

/* Which backend `--backend auto` picks here and why (informational: QEMU
 * fully works without Firecracker). */
static void doctor_backend(int have_image)
{
	char why[512];
	const struct vm_backend_ops *b = have_image ? vm_backend_choose(VM_BACKEND_AUTO, why, sizeof(why)) : NULL;
	char detail[600];
	snprintf(detail, sizeof(detail), "qemu by default; --backend auto uses %s (%s)", b ? b->name : "qemu",
		 b ? why : "no guest image to probe KVM with");
	doctor_line(1, "backend", detail, NULL);
}

static void doctor_nft(void)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx) {
		doctor_line(0, "nftables", "libnftables cannot start", "make deps (apt-get install libnftables1 nftables)");
		return;
	}
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	int rc = nft_run_cmd_from_buffer(ctx, "list tables");
	char detail[300];
	if (rc == 0) {
		snprintf(detail, sizeof(detail), "netlink works (per-VM tables can be created)");
	} else {
		const char *err = nft_ctx_get_error_buffer(ctx);
		snprintf(detail, sizeof(detail), "listing tables failed: %.200s", err ? err : "?");
		detail[strcspn(detail, "\n")] = '\0';
	}
	doctor_line(rc == 0, "nftables", detail, "run as root (CAP_NET_ADMIN) with nf_tables in the kernel");
	nft_ctx_free(ctx);
}

static void doctor_seccomp(void)
{
	unsigned api = (unsigned)seccomp_api_get();
	char *actions = NULL;
	io_read_file("/proc/sys/kernel/seccomp/actions_avail", 4096, &actions, NULL);
	int kill_process = actions && strstr(actions, "kill_process");
	char detail[300];
	snprintf(detail, sizeof(detail), "libseccomp API level %u; kernel actions: %s", api,
		 actions ? strtok(actions, "\n") : "unknown");
	doctor_line(api >= 1 && kill_process, "seccomp", detail,
		    "a kernel with CONFIG_SECCOMP_FILTER and SECCOMP_RET_KILL_PROCESS (Linux 4.14+)");
	free(actions);
}

static void doctor_cgroups(void)
{
	char detail[300];
	if (access("/sys/fs/cgroup/cgroup.controllers", R_OK) == 0) {
		char *ctl = NULL;
		io_read_file("/sys/fs/cgroup/cgroup.controllers", 4096, &ctl, NULL);
		int ok = ctl && strstr(ctl, "memory") && strstr(ctl, "pids") && strstr(ctl, "cpu");
		snprintf(detail, sizeof(detail), "v2, controllers: %s", ctl ? strtok(ctl, "\n") : "none");
		doctor_line(ok, "cgroups", detail, "enable the memory, cpu and pids controllers");
		free(ctl);
		return;
	}
	const char *need[] = { "memory", "cpu", "pids" };
	char missing[64] = "";
	for (size_t i = 0; i < 3; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", need[i]);
		if (access(path, W_OK) < 0)
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s", need[i]);
	}
	snprintf(detail, sizeof(detail), "v1 (memory, cpu, pids hierarchies)%s%s",
		 missing[0] ? "; missing or read-only:" : "", missing);
	doctor_line(!missing[0], "cgroups", detail, "mount the v1 memory, cpu and pids controllers, or use cgroup v2");
}

static void doctor_privileges(void)
{
	int root = geteuid() == 0;
	doctor_line(root, "privileges", root ? "root: namespaces, pivot_root, cgroups and nft are available"
					    : "not root: the jail cannot create namespaces or cgroups",
		    "run ironclaw as root (sudo)");
}

/* Guest images (docs/images.md) are optional: exec boots the busybox
 * initramfs without them, so nothing here fails the doctor; "--" marks what
 * is missing, with the command that adds it. */
static int doctor_in_path(const char *tool)
{
	const char *path = getenv("PATH");
	char buf[4096], file[4200];
	snprintf(buf, sizeof(buf), "%s", path && path[0] ? path : "/usr/bin:/bin:/usr/sbin:/sbin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(file, sizeof(file), "%s/%s", d, tool);
		if (access(file, X_OK) == 0)
			return 1;
	}
	return 0;
}

static void doctor_note(int ok, const char *what, const char *detail, const char *fix)
{
	printf("%-4s %-13s %s\n", ok ? "ok" : "--", what, detail);
	if (!ok && fix)
		printf("     %-13s fix: %s\n", "", fix);
}

static void doctor_images(void)
{
	const char *tools[] = { "mmdebstrap", "umoci", "skopeo", "mkfs.ext4" };
	char missing[80] = "";
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!doctor_in_path(tools[i]))
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s", tools[i]);
	char detail[IMAGE_PATH_MAX + 200];
	snprintf(detail, sizeof(detail), "%s%s", missing[0] ? "missing:" : "mmdebstrap, umoci, skopeo, mkfs.ext4 found",
		 missing);
	doctor_note(!missing[0], "image tools", detail, "make deps (image build and import need them)");

	struct err e = { 0 };
	char store[IMAGE_PATH_MAX];
	json_t *list = NULL;
	if (image_store_dir(store, sizeof(store), &e) < 0 || image_list(&list, &e) < 0) {
		doctor_note(0, "image store", e.msg, "set IRONCLAW_IMAGES to a writable directory");
		return;
	}
	/* Names share ids (a rebuild relinks), so each file counts once. */
	size_t n_ids = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *o = json_array_get(list, i);
		const char *id = json_string_value(json_object_get(o, "id"));
		int seen = 0;
		for (size_t j = 0; j < i && id && !seen; j++) {
			const char *other = json_string_value(json_object_get(json_array_get(list, j), "id"));
			seen = other && !strcmp(id, other);
		}
		if (id && !seen) {
			n_ids++;
			bytes += (uint64_t)json_integer_value(json_object_get(o, "bytes"));
		}
	}
	snprintf(detail, sizeof(detail), "%s: %zu name%s, %zu image%s, %.1f MiB", store, json_array_size(list),
		 json_array_size(list) == 1 ? "" : "s", n_ids, n_ids == 1 ? "" : "s", bytes / 1048576.0);
	json_decref(list);
	doctor_note(1, "image store", detail, NULL);

	struct image_info dev;
	e = (struct err){ 0 };
	int rc = image_lookup("dev", &dev, &e);
	if (rc == 0) {
		snprintf(detail, sizeof(detail), "'dev' is %s (%.1f MiB)", dev.id, dev.bytes / 1048576.0);
		image_info_free(&dev);
		doctor_note(1, "dev image", detail, NULL);
	} else if (rc == -ENOENT) {
		doctor_note(0, "dev image", "'dev' (python3, git, make, gcc) is not built; exec uses the busybox initramfs",
			    "make image-dev (or: ironclaw image build dev)");
	} else {
		doctor_note(0, "dev image", e.msg, "rebuild it: ironclaw image rm dev && make image-dev");
	}
}

int cmd_doctor(int argc, char **argv)
{
	(void)argv;
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: ironclaw doctor\n\n"
		       "Explain this host: QEMU, the guest image, the accelerator (KVM only when a\n"
		       "probe boot proves it works, else TCG), nftables, seccomp, cgroups,\n"
		       "privileges and guest images (their tools, the store, the dev image; these\n"
		       "are optional, marked -- when missing). Each problem comes with a fix.\n"
		       "Exits 1 if any required check fails.\n");
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "ironclaw doctor: unexpected argument '%s' (see `ironclaw doctor --help`)\n", argv[1]);
		return 2;
	}
	char version[256];
	struct vm_image img;
	doctor_privileges();
	doctor_vmm(version, sizeof(version));
	int have_image = doctor_image(&img);
	doctor_accel(&img, have_image);
	doctor_backend(have_image);
	doctor_seccomp();
	doctor_nft();
	doctor_cgroups();
	doctor_images();
	char daemon[512];
	int up = serve_client_describe(serve_client_socket(), daemon, sizeof(daemon));
	printf("%-4s %-13s %s\n", up ? "ok" : "--", "daemon", daemon);
	printf("\n%s\n", doctor_problems ? "Some checks failed; see the fixes above." : "All checks passed.");
	return doctor_problems ? 1 : 0;
}
