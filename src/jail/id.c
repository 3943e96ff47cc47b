/* VM ids and everything derived from them: validation, names of kernel objects,
 * the jail uid, the address slot and the per-VM directory.
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

/* Test hooks: written once before any VM exists, read after. */
static char jail_run_dir_buf[96] = JAIL_RUN_DIR;
static char jail_state_dir_buf[112] = JAIL_STATE_DIR;
static char jail_stage_dir_buf[112] = JAIL_STAGE_DIR;
static long jail_forced_slot = -1;

void jail_test_set_run_dir(const char *dir)
{
	if (!dir)
		dir = JAIL_RUN_DIR;
	snprintf(jail_run_dir_buf, sizeof(jail_run_dir_buf), "%s", dir);
	snprintf(jail_state_dir_buf, sizeof(jail_state_dir_buf), "%s/.state", jail_run_dir_buf);
	snprintf(jail_stage_dir_buf, sizeof(jail_stage_dir_buf), "%s/.root", jail_run_dir_buf);
}

void jail_test_force_slot(long slot)
{
	jail_forced_slot = slot >= 0 ? slot % (long)JAIL_SLOTS : -1;
}

const char *jail_run_dir(void)
{
	return jail_run_dir_buf;
}

const char *jail_state_dir(void)
{
	return jail_state_dir_buf;
}

const char *jail_stage_dir(void)
{
	return jail_stage_dir_buf;
}

int jail_names_make(const char *vm_id, struct jail_names *n, struct err *e)
{
	memset(n, 0, sizeof(*n));
	int rc = jail_validate_id(vm_id, e);
	if (rc)
		return rc;
	uint64_t h = jail_hash_id(vm_id);
	unsigned long long hh = (unsigned long long)h;
	memcpy(n->id, vm_id, strlen(vm_id) + 1);
	if (snprintf(n->dir, sizeof(n->dir), "%s/%s", jail_run_dir(), vm_id) >= (int)sizeof(n->dir))
		return err_set(e, -ENAMETOOLONG, "VM directory path for '%s' too long", vm_id);
	snprintf(n->netns, sizeof(n->netns), "ic-%016llx", hh);
	snprintf(n->netns_path, sizeof(n->netns_path), "%s/%s", JAIL_NETNS_DIR, n->netns);
	snprintf(n->veth_host, sizeof(n->veth_host), "icv%012llx", hh >> 16);
	snprintf(n->table, sizeof(n->table), "ironclaw_%016llx", hh);
	snprintf(n->chain_fwd, sizeof(n->chain_fwd), "fwd_%016llx", hh);
	snprintf(n->chain_in, sizeof(n->chain_in), "in_%016llx", hh);
	snprintf(n->chain_out, sizeof(n->chain_out), "out_%016llx", hh);
	snprintf(n->chain_nat, sizeof(n->chain_nat), "nat_%016llx", hh);
	memcpy(n->cgroup, vm_id, strlen(vm_id) + 1);
	n->uid = (uid_t)(JAIL_UID_BASE + (uint32_t)(h & 0xffff));
	n->gid = (gid_t)n->uid;
	n->slot = jail_forced_slot >= 0 ? (uint32_t)jail_forced_slot : (uint32_t)(h & (JAIL_SLOTS - 1));
	return 0;
}

static void jail_fmt_ip(uint32_t a, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

void jail_slot_addr(uint32_t slot, struct jail_net_addr *out)
{
	uint32_t base = (100u << 24) | (64u << 16) | ((slot & (JAIL_SLOTS - 1)) << 3);
	memset(out, 0, sizeof(*out));
	out->host_ip = base + 1;
	out->gw = base + 5;
	out->guest_ip = base + 6;
	out->prefix = 30;
	jail_fmt_ip(out->host_ip, out->host_ip_str);
	jail_fmt_ip(out->gw, out->gw_str);
	jail_fmt_ip(out->guest_ip, out->guest_ip_str);
}

int jail_net_reserve(struct jail_names *n, struct jail_net_addr *out, struct err *e)
{
	int rc = jail_prepare_base(e);
	if (rc)
		return rc;
	if (n->slot_claimed) {
		/* Idempotent, but only while the claim file still says so. */
		if (!(rc = jail_slot_claim(n->id, n->slot, e)))
			jail_slot_addr(n->slot, out);
		return rc;
	}
	for (uint32_t i = 0; i < JAIL_SLOT_PROBES; i++) {
		uint32_t slot = (n->slot + i) & (JAIL_SLOTS - 1);
		rc = jail_slot_claim(n->id, slot, e);
		if (rc == -EADDRINUSE) {
			err_clear(e);
			continue;   /* another VM's: the next one */
		}
		if (rc)
			return rc;
		n->slot = slot;
		n->slot_claimed = 1;
		jail_slot_addr(slot, out);
		return 0;
	}
	return err_set(e, -EADDRINUSE, "no free network address slot within %u of VM '%s''s (hint: run `ironclaw gc`)",
		       JAIL_SLOT_PROBES, n->id);
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
	int rc = jail_mkdir_root(jail_run_dir(), 0711, e);
	if (!rc)
		rc = jail_mkdir_root(jail_state_dir(), 0700, e);
	if (!rc)
		rc = jail_mkdir_root(jail_stage_dir(), 0700, e);
	return rc;
}

int jail_prepare_dir(const struct jail_names *n, struct err *e)
{
	int rc = jail_prepare_base(e);
	if (rc)
		return rc;
	/* The state record comes first: from here on gc can find the VM. */
	if (!jail_state_alive(n->id) && (rc = jail_state_write(n->id, 0, e)))
		return rc;
	if (mkdir(n->dir, 0700) && errno != EEXIST)
		return err_set(e, -errno, "creating %s: %s", n->dir, strerror(errno));
	struct stat st;
	if (lstat(n->dir, &st) || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "%s is not a directory (hint: remove it)", n->dir);
	if (chown(n->dir, n->uid, n->gid) || chmod(n->dir, 0700))
		return err_set(e, -errno, "giving %s to the jail uid %u: %s", n->dir, (unsigned)n->uid, strerror(errno));
	return 0;
}
