/* VM ids and everything derived from them: validation, names of kernel objects,
 * the jail uid, the address plan and the per-VM directory.
 *
 * An id becomes a path (/run/ironclaw/<id>) and kernel object names, so it is
 * validated before any use: [a-z0-9-], not starting with '-', bounded length.
 * That excludes '/', '.', and so any traversal. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int jail_validate_id(const char *vm_id, struct err *e)
{
	if (!vm_id || !vm_id[0])
		return err_set(e, -EINVAL, "invalid VM id: empty (hint: use [a-z0-9-], 1..%d chars)", JAIL_ID_MAX);
	size_t n = strnlen(vm_id, JAIL_ID_MAX + 1);
	if (n > JAIL_ID_MAX)
		return err_set(e, -EINVAL, "invalid VM id: longer than %d characters", JAIL_ID_MAX);
	if (vm_id[0] == '-')
		return err_set(e, -EINVAL, "invalid VM id '%s': must not start with '-'", vm_id);
	for (size_t i = 0; i < n; i++) {
		char c = vm_id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return err_set(e, -EINVAL,
				       "invalid VM id: character %zu (0x%02x) is not in [a-z0-9-] (hint: no '/', '.', or uppercase)",
				       i, (unsigned char)c);
	}
	return 0;
}

/* FNV-1a, 64 bit: tiny, stable across builds and machines (gc on a later run
 * must find the same names). */
uint64_t jail_hash_id(const char *vm_id)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)vm_id; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return h;
}

void jail_names_for(const char *vm_id, struct jail_names *n)
{
	uint64_t h = jail_hash_id(vm_id);
	snprintf(n->netns, sizeof(n->netns), "ic-%016llx", (unsigned long long)h);
	snprintf(n->veth_host, sizeof(n->veth_host), "icv%012llx", (unsigned long long)(h >> 16));
	snprintf(n->table, sizeof(n->table), "ironclaw_%016llx", (unsigned long long)h);
	snprintf(n->chain_fwd, sizeof(n->chain_fwd), "fwd_%016llx", (unsigned long long)h);
	snprintf(n->chain_in, sizeof(n->chain_in), "in_%016llx", (unsigned long long)h);
	snprintf(n->chain_out, sizeof(n->chain_out), "out_%016llx", (unsigned long long)h);
	snprintf(n->chain_nat, sizeof(n->chain_nat), "nat_%016llx", (unsigned long long)h);
	/* 2^19 slots of 8 addresses fill 100.64.0.0/10 (shared address space,
	 * RFC 6598: unlikely to clash with the host's own networks). */
	n->slot = (uint32_t)(h & 0x7ffff);
}

uid_t jail_uid_for(const char *vm_id)
{
	return (uid_t)(JAIL_UID_BASE + (uint32_t)(jail_hash_id(vm_id) & 0xffff));
}

static void jail_fmt_ip(uint32_t a, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

int jail_net_plan(const char *vm_id, struct jail_net_addr *out, struct err *e)
{
	int rc = jail_validate_id(vm_id, e);
	if (rc)
		return rc;
	struct jail_names n;
	jail_names_for(vm_id, &n);
	/* Slot layout (8 addresses): .0/30 host veth (.1) <-> netns veth (.2);
	 * .4/30 tap (.5, the guest's gateway) <-> guest (.6). */
	uint32_t base = (100u << 24) | (64u << 16) | (n.slot << 3);
	memset(out, 0, sizeof(*out));
	out->host_ip = base + 1;
	out->gw = base + 5;
	out->guest_ip = base + 6;
	out->prefix = 30;
	jail_fmt_ip(out->host_ip, out->host_ip_str);
	jail_fmt_ip(out->gw, out->gw_str);
	jail_fmt_ip(out->guest_ip, out->guest_ip_str);
	return 0;
}

static int jail_mkdir_root(const char *path, unsigned mode, struct err *e)
{
	if (mkdir(path, mode) && errno != EEXIST)
		return err_set(e, -errno, "creating %s: %s", path, strerror(errno));
	struct stat st;
	if (lstat(path, &st))
		return err_set(e, -errno, "checking %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0)
		return err_set(e, -EPERM, "%s is not a root-owned directory (hint: remove it and retry)", path);
	if (chmod(path, mode))
		return err_set(e, -errno, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/* The shared directories: the runtime root, the state records (root only) and
 * the staging mount point of jail roots. */
int jail_prepare_base(struct err *e)
{
	int rc = jail_mkdir_root(JAIL_RUN_DIR, 0711, e);
	if (!rc)
		rc = jail_mkdir_root(JAIL_STATE_DIR, 0700, e);
	if (!rc)
		rc = jail_mkdir_root(JAIL_STAGE_DIR, 0700, e);
	return rc;
}

int jail_prepare_dir(const char *vm_id, char *out_path, size_t len, struct err *e)
{
	int rc = jail_validate_id(vm_id, e);
	if (rc)
		return rc;
	rc = jail_prepare_base(e);
	if (rc)
		return rc;
	/* The state record comes first: from here on gc can find the VM. */
	if (!jail_state_alive(vm_id) && (rc = jail_state_write(vm_id, 0, e)))
		return rc;
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", JAIL_RUN_DIR, vm_id);
	if (mkdir(path, 0700) && errno != EEXIST)
		return err_set(e, -errno, "creating %s: %s", path, strerror(errno));
	struct stat st;
	if (lstat(path, &st) || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "%s is not a directory (hint: remove it)", path);
	uid_t uid = jail_uid_for(vm_id);
	if (chown(path, uid, uid) || chmod(path, 0700))
		return err_set(e, -errno, "giving %s to the jail uid %u: %s", path, (unsigned)uid, strerror(errno));
	if (snprintf(out_path, len, "%s", path) >= (int)len)
		return err_set(e, -ENAMETOOLONG, "VM directory path does not fit the caller's buffer");
	return 0;
}
