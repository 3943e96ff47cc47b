/* State records of live VMs, for gc.
 *
 * JAIL_STATE_DIR (root-only, never bound into a jail, so a VMM cannot forge
 * it) holds one file per VM id: "<owner pid> <owner start> <vmm pid> <vmm start>".
 * It is written before any kernel object of the VM exists, so gc always finds
 * what a crashed ironclaw left. Start times guard against pid reuse. Address
 * slots are claimed with exclusive claim files so two live VMs never share
 * addresses; a taken slot sends the claimer to the next one (id.c). */
#include "jail/jail_internal.h"

#include <dirent.h>
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
	snprintf(path, sizeof(path), "%s/%s", jail_state_dir(), vm_id);
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
	snprintf(path, sizeof(path), "%s/%s", jail_state_dir(), vm_id);
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

/* Reads the record: owner and VMM pids with their start times. */
static int jail_state_read(const char *vm_id, int *owner, unsigned long long *owner_start, int *vmm,
			   unsigned long long *vmm_start)
{
	char path[256], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", jail_state_dir(), vm_id);
	if (io_read_file(path, 256, &buf, &len))
		return -ENOENT;
	int ok = sscanf(buf, "%d %llu %d %llu", owner, owner_start, vmm, vmm_start) == 4;
	free(buf);
	return ok ? 0 : -EINVAL;
}

pid_t jail_state_vmm(const char *vm_id)
{
	int owner = 0, vmm = 0;
	unsigned long long os = 0, vs = 0;
	if (jail_state_read(vm_id, &owner, &os, &vmm, &vs))
		return 0;
	return vmm > 0 && vs && jail_proc_start(vmm) == vs ? (pid_t)vmm : 0;
}

int jail_state_alive(const char *vm_id)
{
	char path[256], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", jail_state_dir(), vm_id);
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

/* A claim appears with its content in one step (link of a finished file:
 * EEXIST when taken), so gc never sees an empty claim and takes it for junk. */
int jail_slot_claim(const char *vm_id, uint32_t slot, struct err *e)
{
	char path[256], tmp[256];
	snprintf(path, sizeof(path), "%s/slot-%u", jail_state_dir(), slot);
	snprintf(tmp, sizeof(tmp), "%s/.claim-%s", jail_state_dir(), vm_id);
	int rc = io_write_file(tmp, vm_id, strlen(vm_id), 0600);
	if (rc)
		return err_set(e, rc, "writing %s: %s", tmp, strerror(-rc));
	rc = link(tmp, path) ? -errno : 0;
	unlink(tmp);
	if (rc == -EEXIST) {
		/* Ours from an earlier attempt, or a live VM's? */
		char *buf = NULL;
		size_t len;
		int mine = 0;
		if (!io_read_file(path, 128, &buf, &len)) {
			mine = !strcmp(buf, vm_id);
			free(buf);
		}
		/* Another VM's: the caller moves on to the next slot. */
		return mine ? 0 : -EADDRINUSE;
	}
	if (rc)
		return err_set(e, rc, "claiming address slot %s: %s", path, strerror(-rc));
	return 0;
}

void jail_slot_release(const char *vm_id, uint32_t slot)
{
	char path[256], *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "%s/slot-%u", jail_state_dir(), slot);
	if (io_read_file(path, 128, &buf, &len))
		return;
	if (!strcmp(buf, vm_id))
		unlink(path);
	free(buf);
}

int jail_slot_gc(void)
{
	int removed = 0;
	DIR *d = opendir(jail_state_dir());
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "slot-", 5))
			continue;
		char path[320], *buf = NULL;
		size_t len;
		snprintf(path, sizeof(path), "%s/%s", jail_state_dir(), de->d_name);
		if (io_read_file(path, 128, &buf, &len))
			continue;
		/* A claim names its VM; it goes when that VM is gone or the name
		 * is not a VM id at all (a damaged file). */
		if (jail_validate_id(buf, NULL) || !jail_state_alive(buf)) {
			if (unlink(path) == 0)
				removed++;
		}
		free(buf);
	}
	closedir(d);
	return removed;
}
