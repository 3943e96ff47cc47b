/* Garbage collection of VMs that are gone.
 *
 * A VM is gone when neither the ironclaw process that made it nor its VMM
 * runs any more (state records carry start times, so a reused pid does not
 * keep a VM alive). For each such record, everything named after its id is
 * removed. Kernel objects that carry our prefix but belong to no live record
 * (a crash between creation and the record is impossible by construction, but
 * a deleted record is not) are removed too: netns ic-*, host veths icv*, and
 * cgroups under ironclaw/. */
#include "jail/jail.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jail/jail_internal.h"

#define GC_MAX_LIVE 1024

struct gc_live {
	char ids[GC_MAX_LIVE][JAIL_ID_MAX + 1];
	size_t n;
};

static int gc_is_live_name(const struct gc_live *l, const char *name, int which)
{
	for (size_t i = 0; i < l->n; i++) {
		struct jail_names n;
		jail_names_for(l->ids[i], &n);
		if ((which == 0 && !strcmp(name, n.netns)) || (which == 1 && !strcmp(name, n.veth_host)) ||
		    (which == 2 && !strcmp(name, l->ids[i])))
			return 1;
	}
	return 0;
}

static void gc_orphans(const struct gc_live *live, int *cleaned)
{
	DIR *d = opendir("/run/netns");
	struct dirent *de;
	const char *ip = jail_ip_path();
	if (d && ip) {
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, "ic-", 3) && !gc_is_live_name(live, de->d_name, 0)) {
				char *argv[] = { (char *)ip, (char *)"netns", (char *)"delete", de->d_name, NULL };
				if (jail_run(argv, NULL, 0) == 0)
					(*cleaned)++;
			}
	}
	if (d)
		closedir(d);
	d = opendir("/sys/class/net");
	if (d && ip) {
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, "icv", 3) && !gc_is_live_name(live, de->d_name, 1)) {
				char *argv[] = { (char *)ip, (char *)"link", (char *)"delete", de->d_name, NULL };
				if (jail_run(argv, NULL, 0) == 0)
					(*cleaned)++;
			}
	}
	if (d)
		closedir(d);
	/* cgroup dirs are named by the id itself. */
	static const char *const ctrls[] = { "memory", "cpu", "pids", NULL };
	for (int i = 0; ctrls[i]; i++) {
		char dir[256];
		if (jail_cgroup_file(NULL, ctrls[i], "", dir, sizeof(dir)))
			continue;
		d = opendir(dir);
		if (!d)
			continue;
		while ((de = readdir(d)))
			if (de->d_type == DT_DIR && de->d_name[0] != '.' && !jail_validate_id(de->d_name, NULL) &&
			    !gc_is_live_name(live, de->d_name, 2) && !jail_state_alive(de->d_name))
				jail_cgroup_remove(de->d_name, NULL);
		closedir(d);
	}
}

int jail_gc(struct err *e)
{
	int cleaned = 0;
	static struct gc_live live;   /* 50 KiB: not on the stack */
	live.n = 0;
	DIR *d = opendir(JAIL_STATE_DIR);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set(e, -errno, "gc: opening %s: %s", JAIL_STATE_DIR, strerror(errno));
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *id = de->d_name;
		if (id[0] == '.' || !strncmp(id, "slot-", 5) || jail_validate_id(id, NULL))
			continue;
		if (jail_state_alive(id)) {
			if (live.n < GC_MAX_LIVE) {
				memcpy(live.ids[live.n], id, strlen(id) + 1);
				live.n++;
			}
			continue;
		}
		jail_cleanup_id(id, 1, NULL);
		cleaned++;
	}
	closedir(d);
	/* Directories without a record (the record is written first, so only a
	 * removed record leaves one). */
	d = opendir(JAIL_RUN_DIR);
	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && !jail_validate_id(de->d_name, NULL) &&
			    !gc_is_live_name(&live, de->d_name, 2) && !jail_state_alive(de->d_name)) {
				jail_cleanup_id(de->d_name, 1, NULL);
				cleaned++;
			}
		closedir(d);
	}
	gc_orphans(&live, &cleaned);
	return cleaned;
}
