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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jail/jail_internal.h"

#define GC_MAX_LIVE 1024

/* Names of the live VMs (heap: gc may run on several threads). */
struct gc_live {
	struct jail_names n[GC_MAX_LIVE];
	size_t count;
};

static int gc_is_live_name(const struct gc_live *l, const char *name, int which)
{
	for (size_t i = 0; i < l->count; i++) {
		const struct jail_names *n = &l->n[i];
		if ((which == 0 && !strcmp(name, n->netns)) || (which == 1 && !strcmp(name, n->veth_host)) ||
		    (which == 2 && !strcmp(name, n->id)))
			return 1;
	}
	return 0;
}

static void gc_orphans(const struct gc_live *live, int *cleaned)
{
	struct dirent *de;
	DIR *d = opendir(JAIL_NETNS_DIR);
	if (d) {
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, "ic-", 3) && !gc_is_live_name(live, de->d_name, 0) &&
			    jail_netns_delete(de->d_name, NULL) == 0)
				(*cleaned)++;
		closedir(d);
	}
	struct jail_nl *nl = NULL;
	d = opendir("/sys/class/net");
	if (d && jail_nl_open(&nl, NULL) == 0) {
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, "icv", 3) && !gc_is_live_name(live, de->d_name, 1) &&
			    jail_nl_link_del(nl, de->d_name, NULL) == 0)
				(*cleaned)++;
	}
	jail_nl_close(nl);
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
	jail_slot_gc();   /* claims of gone VMs; not VMs themselves */
}

/* Cleans one gone VM by id (from a record or a directory). */
static void gc_one(const char *id, int *cleaned)
{
	struct jail_names n;
	if (jail_names_make(id, &n, NULL))
		return;
	jail_cleanup(&n, 1, NULL);
	(*cleaned)++;
}

int jail_gc(struct err *e)
{
	int cleaned = 0;
	struct gc_live *live = calloc(1, sizeof(*live));
	if (!live)
		return err_set(e, -ENOMEM, "gc: out of memory");
	DIR *d = opendir(jail_state_dir());
	if (!d) {
		free(live);
		if (errno == ENOENT)
			return 0;
		return err_set(e, -errno, "gc: opening %s: %s", jail_state_dir(), strerror(errno));
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *id = de->d_name;
		if (id[0] == '.' || !strncmp(id, "slot-", 5) || jail_validate_id(id, NULL))
			continue;
		if (jail_state_alive(id)) {
			if (live->count < GC_MAX_LIVE && !jail_names_make(id, &live->n[live->count], NULL))
				live->count++;
			continue;
		}
		gc_one(id, &cleaned);
	}
	closedir(d);
	/* Directories without a record (the record is written first, so only a
	 * removed record leaves one). */
	d = opendir(jail_run_dir());
	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.' && !jail_validate_id(de->d_name, NULL) &&
			    !gc_is_live_name(live, de->d_name, 2) && !jail_state_alive(de->d_name))
				gc_one(de->d_name, &cleaned);
		closedir(d);
	}
	gc_orphans(live, &cleaned);
	free(live);
	return cleaned;
}
