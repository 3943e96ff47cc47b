/* cgroup limits of a jailed VMM: memory, CPU and pids, on cgroup v2 (one
 * unified directory) or v1 (one directory per controller; this machine kind
 * mounts v1). The VM's group is <root>/ironclaw/<id>; the VMM is attached by the
 * parent before the child is released to exec, so no VMM ever runs unlimited.
 * A missing controller is an error: the VM does not start without its limits. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "core/io.h"

static const char *const jail_cg_v1_ctrls[] = { "memory", "cpu", "pids" };
#define JAIL_CG_V1_N (sizeof(jail_cg_v1_ctrls) / sizeof(jail_cg_v1_ctrls[0]))
#define JAIL_CPU_PERIOD_US 100000u

static int jail_cg_is_v2(void)
{
	struct statfs s;
	return statfs(JAIL_CGROUP_ROOT, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC;
}

/* controller is ignored on v2. */
static int jail_cg_dir(const char *vm_id, const char *controller, char *out, size_t len)
{
	int n;
	if (jail_cg_is_v2())
		n = snprintf(out, len, "%s/%s%s%s", JAIL_CGROUP_ROOT, JAIL_CGROUP_NAME, vm_id ? "/" : "", vm_id ? vm_id : "");
	else
		n = snprintf(out, len, "%s/%s/%s%s%s", JAIL_CGROUP_ROOT, controller, JAIL_CGROUP_NAME,
			     vm_id ? "/" : "", vm_id ? vm_id : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int jail_cgroup_file(const char *vm_id, const char *controller, const char *file, char *out, size_t len)
{
	char dir[256];
	int rc = jail_cg_dir(vm_id, controller, dir, sizeof(dir));
	if (rc)
		return rc;
	int n = snprintf(out, len, "%s/%s", dir, file);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int jail_cg_write(const char *dir, const char *file, const char *val, struct err *e)
{
	char path[320];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "opening %s: %s (hint: is the controller enabled?)", path, strerror(errno));
	int rc = io_write_all(fd, val, strlen(val));
	close(fd);
	if (rc < 0)
		return err_set(e, rc, "writing '%s' to %s: %s", val, path, strerror(-rc));
	return 0;
}

static int jail_cg_mkdir(const char *path, struct err *e)
{
	if (mkdir(path, 0755) && errno != EEXIST)
		return err_set(e, -errno, "creating cgroup %s: %s", path, strerror(errno));
	return 0;
}

static int jail_cg_create_v2(const char *vm_id, const struct jail_cgroup_limits *l, char *buf, size_t blen,
			     struct err *e)
{
	char parent[256], dir[256];
	jail_cg_dir(NULL, NULL, parent, sizeof(parent));
	jail_cg_dir(vm_id, NULL, dir, sizeof(dir));
	int rc = jail_cg_mkdir(parent, e);
	if (rc)
		return rc;
	/* Enable the controllers for the children, top down; "no such controller"
	 * shows up below as a missing file. */
	static const char *const enable[] = { "+memory", "+cpu", "+pids" };
	for (size_t i = 0; i < 3; i++) {
		/* One write per controller: the kernel rejects a whole line when one
		 * name in it is unavailable. */
		jail_cg_write(JAIL_CGROUP_ROOT, "cgroup.subtree_control", enable[i], NULL);
		jail_cg_write(parent, "cgroup.subtree_control", enable[i], NULL);
	}
	if ((rc = jail_cg_mkdir(dir, e)))
		return rc;
	if (l->memory_max) {
		snprintf(buf, blen, "%llu", (unsigned long long)l->memory_max);
		if ((rc = jail_cg_write(dir, "memory.max", buf, e)))
			return rc;
		/* Absent without swap accounting: then there is no swap to escape into. */
		jail_cg_write(dir, "memory.swap.max", "0", NULL);
	}
	if (l->cpu_percent) {
		snprintf(buf, blen, "%u %u", l->cpu_percent * (JAIL_CPU_PERIOD_US / 100), JAIL_CPU_PERIOD_US);
		if ((rc = jail_cg_write(dir, "cpu.max", buf, e)))
			return rc;
	}
	snprintf(buf, blen, "%u", l->pids_max);
	return jail_cg_write(dir, "pids.max", buf, e);
}

static int jail_cg_create_v1(const char *vm_id, const struct jail_cgroup_limits *l, char *buf, size_t blen,
			     struct err *e)
{
	int rc = 0;
	for (size_t i = 0; i < JAIL_CG_V1_N && !rc; i++) {
		char parent[256], dir[256];
		jail_cg_dir(NULL, jail_cg_v1_ctrls[i], parent, sizeof(parent));
		jail_cg_dir(vm_id, jail_cg_v1_ctrls[i], dir, sizeof(dir));
		if ((rc = jail_cg_mkdir(parent, e)) || (rc = jail_cg_mkdir(dir, e)))
			break;
		if (!strcmp(jail_cg_v1_ctrls[i], "memory") && l->memory_max) {
			snprintf(buf, blen, "%llu", (unsigned long long)l->memory_max);
			rc = jail_cg_write(dir, "memory.limit_in_bytes", buf, e);
			/* memsw exists only with swap accounting; without it there is no
			 * swap to escape into. */
			if (!rc)
				jail_cg_write(dir, "memory.memsw.limit_in_bytes", buf, NULL);
		} else if (!strcmp(jail_cg_v1_ctrls[i], "cpu") && l->cpu_percent) {
			snprintf(buf, blen, "%u", JAIL_CPU_PERIOD_US);
			rc = jail_cg_write(dir, "cpu.cfs_period_us", buf, e);
			snprintf(buf, blen, "%u", l->cpu_percent * (JAIL_CPU_PERIOD_US / 100));
			if (!rc)
				rc = jail_cg_write(dir, "cpu.cfs_quota_us", buf, e);
		} else if (!strcmp(jail_cg_v1_ctrls[i], "pids")) {
			snprintf(buf, blen, "%u", l->pids_max);
			rc = jail_cg_write(dir, "pids.max", buf, e);
		}
	}
	return rc;
}

int jail_cgroup_create(const char *vm_id, const struct jail_cgroup_limits *l, struct err *e)
{
	char buf[64];
	int rc = jail_cg_is_v2() ? jail_cg_create_v2(vm_id, l, buf, sizeof(buf), e)
				 : jail_cg_create_v1(vm_id, l, buf, sizeof(buf), e);
	if (rc) {
		err_wrap(e, "setting cgroup limits");
		jail_cgroup_remove(vm_id, NULL);
	}
	return rc;
}

int jail_cgroup_attach(const char *vm_id, pid_t pid, struct err *e)
{
	char dir[256], val[32];
	snprintf(val, sizeof(val), "%d", (int)pid);
	if (jail_cg_is_v2()) {
		jail_cg_dir(vm_id, NULL, dir, sizeof(dir));
		return jail_cg_write(dir, "cgroup.procs", val, e);
	}
	for (size_t i = 0; i < JAIL_CG_V1_N; i++) {
		jail_cg_dir(vm_id, jail_cg_v1_ctrls[i], dir, sizeof(dir));
		int rc = jail_cg_write(dir, "cgroup.procs", val, e);
		if (rc)
			return rc;
	}
	return 0;
}

int jail_cgroup_remove(const char *vm_id, struct err *e)
{
	char dir[256];
	int first = 0;
	size_t n = jail_cg_is_v2() ? 1 : JAIL_CG_V1_N;
	for (size_t i = 0; i < n; i++) {
		jail_cg_dir(vm_id, jail_cg_v1_ctrls[i], dir, sizeof(dir));
		/* rmdir fails with EBUSY while a task is still being torn down. */
		int tries = 50;
		while (rmdir(dir) && errno == EBUSY && tries--)
			usleep(10000);
		if (access(dir, F_OK) == 0 && !first)
			first = err_set(e, -EBUSY, "removing cgroup %s: %s", dir, strerror(errno));
	}
	return first;
}

int jail_cgroup_exists(const char *vm_id)
{
	char dir[256];
	size_t n = jail_cg_is_v2() ? 1 : JAIL_CG_V1_N;
	for (size_t i = 0; i < n; i++) {
		jail_cg_dir(vm_id, jail_cg_v1_ctrls[i], dir, sizeof(dir));
		if (access(dir, F_OK) == 0)
			return 1;
	}
	return 0;
}
