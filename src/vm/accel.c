/* Accelerator detection: see accel.h. */
#include "vm/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/io.h"
#include "jail/jail.h"
#include "vm/image.h"
#include "vm/layout.h"
#include "vm/qemu.h"
#include "vm/qemu_seccomp.h"
#include "vm/vm.h"

#define ACCEL_PROBE_TIMEOUT_MS 15000

const char *vm_accel_name(enum vm_accel a)
{
	return a == VM_ACCEL_KVM ? "kvm" : "tcg";
}

unsigned long vm_host_tsc_khz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	char line[256];
	double mhz = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	fclose(f);
	return mhz > 0 ? (unsigned long)(mhz * 1000.0) : 0;
}

/* Identity of the probe's inputs: if any changes, the cached verdict is stale. */
static void accel_cache_key(const char *qemu, const char *kernel, const char *initrd,
			    char *key, size_t len)
{
	const char *paths[3] = { qemu, kernel, initrd };
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0)
			memset(&st, 0, sizeof(st));
		int n = snprintf(key + off, len - off, "%s:%lld:%lld;", paths[i],
				 (long long)st.st_size, (long long)st.st_mtime);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

static void accel_cache_path(char *path, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	if (xdg && *xdg)
		snprintf(path, len, "%s/ironclaw/accel.json", xdg);
	else
		snprintf(path, len, "%s/.cache/ironclaw/accel.json", home && *home ? home : "/tmp");
}

static int accel_cache_read(const char *key, struct vm_accel_verdict *v)
{
	char path[4096];
	accel_cache_path(path, sizeof(path));
	json_t *j = json_load_file(path, 0, NULL);
	if (!j)
		return -ENOENT;
	int rc = -ESTALE;
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *a = json_string_value(json_object_get(j, "accel"));
	const char *r = json_string_value(json_object_get(j, "reason"));
	if (k && a && r && !strcmp(k, key)) {
		v->accel = !strcmp(a, "kvm") ? VM_ACCEL_KVM : VM_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "%s", r);
		v->cached = 1;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static void accel_cache_write(const char *key, const struct vm_accel_verdict *v)
{
	char path[4096];
	accel_cache_path(path, sizeof(path));
	char *slash = strrchr(path, '/');
	*slash = '\0';
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", path);
	char *pslash = strrchr(parent, '/');
	if (pslash) {
		*pslash = '\0';
		mkdir(parent, 0700);
	}
	mkdir(path, 0700);
	*slash = '/';
	json_t *j = json_pack("{s:s,s:s,s:s}", "key", key, "accel", vm_accel_name(v->accel),
			      "reason", v->reason);
	char *text = json_dumps(j, JSON_INDENT(2));
	if (text)
		io_write_file(path, text, strlen(text), 0600);
	free(text);
	json_decref(j);
}

/* Boots kernel+initrd under KVM, in the same jail as any VMM, with an init that
 * powers off at once. Returns 0 when QEMU exited cleanly in time; otherwise a
 * reason. */
static int accel_probe_kvm(const char *kernel, const char *initrd, char *why, size_t why_len)
{
	char id[32];
	struct jail_names names;
	unsigned rnd = 0;
	getrandom(&rnd, sizeof(rnd), 0);
	snprintf(id, sizeof(id), "probe-%08x", rnd);
	struct err e = { 0 };
	int rc = jail_names_make(id, &names, &e);
	if (rc == 0)
		rc = jail_prepare_dir(&names, &e);
	if (rc < 0) {
		snprintf(why, why_len, "%.190s", e.msg);
		return rc;
	}
	struct qemu_spec spec = {
		.accel = VM_ACCEL_KVM, .cpus = 1, .memory_mib = 128,
		.cmdline_extra = "ironclaw.poweroff=1", .tap_fd = -1,
	};
	struct jail_bind binds[VM_LAYOUT_BINDS + QEMU_FIRMWARE_BINDS_MAX];
	vm_layout_apply(&spec, binds, kernel, initrd, names.dir);
	size_t n_binds = VM_LAYOUT_BINDS + qemu_firmware_binds(binds + VM_LAYOUT_BINDS);
	char *argv[QEMU_ARGV_MAX];
	char store[8192];
	rc = qemu_build_argv(&spec, argv, store, sizeof(store));
	int errpipe[2] = { -1, -1 };
	if (rc == 0 && pipe2(errpipe, O_CLOEXEC) < 0)
		rc = -errno;
	struct jail_config jc = {
		.names = &names, .argv = argv, .binds = binds, .n_binds = n_binds,
		.seccomp = qemu_seccomp_policy(1), .kvm_node = 1,
		.memory_max_bytes = 512ull << 20, .cpu_percent = 100,
		.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = errpipe[1],
	};
	struct jail *jail = NULL;
	pid_t pid;
	if (rc == 0)
		rc = jail_spawn(&jc, &pid, &jail, &e);
	if (errpipe[1] >= 0)
		close(errpipe[1]);
	char errtext[2048] = "";
	size_t errlen = 0;
	int status = 0, exited = 0;
	struct jail_exit x;
	if (rc == 0) {
		double deadline = clock_now_ms() + ACCEL_PROBE_TIMEOUT_MS;
		while (!exited && clock_now_ms() < deadline) {
			struct pollfd pfd = { .fd = errpipe[0], .events = POLLIN };
			poll(&pfd, 1, 20);
			if (pfd.revents & POLLIN) {
				ssize_t n = io_read(errpipe[0], errtext + errlen, sizeof(errtext) - 1 - errlen);
				if (n > 0)
					errlen += (size_t)n;
			}
			exited = jail_poll(jail, &x) == 1;
			if (exited)
				status = x.status;
		}
		errtext[errlen] = '\0';
		/* One line is enough to explain, and keeps `doctor` readable. */
		errtext[strcspn(errtext, "\n")] = '\0';
		if (!exited)
			rc = -ETIMEDOUT, snprintf(why, why_len,
				"a KVM boot of the guest did not finish in %d s", ACCEL_PROBE_TIMEOUT_MS / 1000);
		else if (strstr(errtext, "emulation failure"))
			rc = -ENOTSUP, snprintf(why, why_len,
				"/dev/kvm opens, but KVM reports \"emulation failure\" booting the guest kernel (nested/paravirtual KVM)");
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = -EIO, snprintf(why, why_len, "a KVM boot of the guest failed: %.160s",
					    errlen ? errtext : "QEMU exited with an error");
	} else {
		snprintf(why, why_len, "cannot start QEMU for the probe: %.160s", e.msg[0] ? e.msg : strerror(-rc));
	}
	if (errpipe[0] >= 0)
		close(errpipe[0]);
	/* Kills the VMM if it still runs and removes the probe's directory. */
	if (exited)
		vm_audit_vmm_exit(id, pid, &x);
	if (jail) {
		jail_destroy(jail, &x, &e);
		vm_audit_vmm_exit(id, pid, &x);
	} else {
		jail_discard(&names, &e);
	}
	return rc;
}

void vm_accel_detect(const char *qemu, const char *kernel, const char *initrd,
		     struct vm_accel_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->accel = VM_ACCEL_TCG;
	const char *force = getenv("IRONCLAW_ACCEL");
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int kvm_opens = fd >= 0;
	int open_errno = errno;
	if (fd >= 0)
		close(fd);
	if (force && !strcmp(force, "tcg")) {
		snprintf(v->reason, sizeof(v->reason), "IRONCLAW_ACCEL=tcg");
		return;
	}
	if (!kvm_opens) {
		snprintf(v->reason, sizeof(v->reason), "/dev/kvm cannot be opened (%s)",
			 strerror(open_errno));
		return;
	}
	if (force && !strcmp(force, "kvm")) {
		v->accel = VM_ACCEL_KVM;
		snprintf(v->reason, sizeof(v->reason), "IRONCLAW_ACCEL=kvm");
		return;
	}
	/* The verdict is about this host's KVM, not about one image: probe with the
	 * default image when there is one, so that a custom --kernel/--initrd (which
	 * may not honour ironclaw.poweroff=1) neither skews it nor evicts the cache. */
	struct vm_image def;
	struct err ignored = { 0 };
	if (vm_image_find(&def, &ignored) == 0) {
		kernel = def.kernel;
		initrd = def.initrd;
	}
	char key[1024];
	accel_cache_key(qemu, kernel, initrd, key, sizeof(key));
	if (accel_cache_read(key, v) == 0)
		return;
	char why[200] = "";
	if (accel_probe_kvm(kernel, initrd, why, sizeof(why)) == 0) {
		v->accel = VM_ACCEL_KVM;
		snprintf(v->reason, sizeof(v->reason), "a probe boot of the guest under KVM succeeded");
	} else {
		v->accel = VM_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "%s; using TCG", why);
	}
	accel_cache_write(key, v);
}
