/* State records of live VMs, for gc.
 *
 * JAIL_STATE_DIR (root-only, never bound into a jail, so a VMM cannot forge
 * it) holds one file per VM id: "<owner pid> <owner start> <vmm pid> <vmm start>".
 * It is written before any kernel object of the VM exists, so gc always finds
 * what a crashed ironclaw left. Start times guard against pid reuse. Address
 * slots are claimed with O_EXCL files so two live VMs never share addresses. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io.h"

int jail_state_write(const char *vm_id, pid_t vmm, struct err *e)
{
	char path[256], line[128];
	snprintf(path, sizeof(path), "%s/%s", JAIL_STATE_DIR, vm_id);
	pid_t self = getpid();
	int n = snprintf(line, sizeof(line), "%d %llu %d %llu\n", (int)self, jail_proc_start(self),
			 (int)vmm, vmm > 0 ? jail_proc_start(vmm) : 0ull);
	int rc = io_write_file(path, line, (size_t)n, 0600);
	if (rc)
		return err_set(e, rc, "writing state %s: %s", path, strerror(-rc));
	return 0;
}

int jail_state_remove(const char *vm_id)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", JAIL_STATE_DIR, vm_id);
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

int jail_state_alive(const char *vm_id)
{
	char path[256], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", JAIL_STATE_DIR, vm_id);
	if (io_read_file(path, 256, &buf, &len))
		return 0;
	int owner = 0, vmm = 0;
	unsigned long long owner_start = 0, vmm_start = 0;
	int alive = 0;
	if (sscanf(buf, "%d %llu %d %llu", &owner, &owner_start, &vmm, &vmm_start) == 4) {
		if (owner > 0 && owner_start && jail_proc_start(owner) == owner_start)
			alive = 1;
		if (vmm > 0 && vmm_start && jail_proc_start(vmm) == vmm_start)
			alive = 1;
	}
	free(buf);
	return alive;
}

int jail_slot_claim(const char *vm_id, uint32_t slot, struct err *e)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/slot-%u", JAIL_STATE_DIR, slot);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* Ours from an earlier attempt, or a live VM's? */
		char *buf = NULL;
		size_t len;
		int mine = 0;
		if (!io_read_file(path, 128, &buf, &len)) {
			mine = !strcmp(buf, vm_id);
			free(buf);
		}
		if (mine)
			return 0;
		return err_set(e, -EADDRINUSE,
			       "network address slot %u of VM '%s' is held by another VM (hash collision; hint: use another VM id or run `ironclaw gc`)",
			       slot, vm_id);
	}
	if (fd < 0)
		return err_set(e, -errno, "claiming address slot %s: %s", path, strerror(errno));
	int rc = io_write_all(fd, vm_id, strlen(vm_id));
	close(fd);
	if (rc < 0)
		return err_set(e, rc, "writing %s: %s", path, strerror(-rc));
	return 0;
}

void jail_slot_release(const char *vm_id, uint32_t slot)
{
	char path[256], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/slot-%u", JAIL_STATE_DIR, slot);
	if (io_read_file(path, 128, &buf, &len))
		return;
	if (!strcmp(buf, vm_id))
		unlink(path);
	free(buf);
}
