/* Turning what the jail reports about a VMM's end into an audit event: the
 * jail only observes (struct jail_exit); policy about what is worth a record
 * lives here. Today that is a death by the seccomp filter. */
#include "vm/vm.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"

void vm_audit_vmm_exit(const char *vm_id, pid_t pid, const struct jail_exit *x)
{
	if (!x || x->status < 0 || !x->seccomp_kill)
		return;
	struct audit_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.time = (int64_t)time(NULL);
	snprintf(ev.kind, sizeof(ev.kind), "seccomp");
	snprintf(ev.vm_id, sizeof(ev.vm_id), "%s", vm_id ? vm_id : "");
	ev.pid = (int)pid;
	ev.syscall = x->syscall;
	if (x->syscall >= 0) {
		snprintf(ev.syscall_name, sizeof(ev.syscall_name), "%s", x->syscall_name[0] ? x->syscall_name : "?");
		snprintf(ev.detail, sizeof(ev.detail), "VMM killed by the seccomp filter (%s ABI)",
			 x->abi[0] ? x->abi : "?");
	} else {
		snprintf(ev.detail, sizeof(ev.detail),
			 "VMM killed by SIGSYS; no kernel audit record found for the syscall number");
	}
	audit_record(&ev, NULL);
}
