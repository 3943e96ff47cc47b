/* What the privileged parent accepts in a SPAWN (priv.h): every field of the
 * message is checked here before any of it reaches jail_spawn. The API
 * process may be compromised, so the rule is that a SPAWN gives it nothing it
 * could not have without root: the VMM is QEMU, its seccomp policy is chosen
 * here (not sent), it writes only its own VM's directory, and it sees
 * read-only only paths the API uid itself could read (checked with the API
 * uid's credentials: setfsuid on this thread, then faccessat). */
#include "serve/priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include "vm/qemu.h"
#include "vm/qemu_seccomp.h"

/* Absolute, no "." or ".." component, no "//": a path that means what it says. */
static int priv_path_plain(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (const char *c = p; *c; c++) {
		if (c[0] != '/')
			continue;
		if (c[1] == '/')
			return 0;
		if (c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
			return 0;
		if (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0'))
			return 0;
	}
	return 1;
}

/* Could the API uid open path for reading (and search it, a directory)? */
static int priv_api_can_read(const char *path)
{
	/* Per-thread filesystem ids: a non-zero fsuid also drops this thread's
	 * CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH until it is 0 again. The
	 * parent has no supplementary groups (priv_fork), so this is exactly
	 * the API process's view. */
	setfsgid(PRIV_API_UID);
	setfsuid(PRIV_API_UID);
	int ok = faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) == 0;
	int err = errno;
	setfsuid(0);
	setfsgid(0);
	errno = err;
	return ok;
}

int priv_check_spawn(struct priv_msg_spawn *m, const struct jail_names *names,
		     char **argv, struct jail_bind *binds, struct jail_net_allow *allow,
		     struct jail_config *cfg, struct err *e)
{
	if (m->argc < 1 || m->argc >= VM_PLAN_ARGV_MAX)
		return err_set(e, -EINVAL, "argc %u out of range", m->argc);
	for (uint32_t i = 0; i < m->argc; i++) {
		uint32_t off = m->argv_off[i];
		if (off >= VM_PLAN_STORE || !memchr(m->store + off, '\0', VM_PLAN_STORE - off))
			return err_set(e, -EINVAL, "argv[%u] outside the store or unterminated", i);
		argv[i] = m->store + off;
	}
	argv[m->argc] = NULL;
	if (strcmp(argv[0], QEMU_BINARY))
		return err_set(e, -EINVAL, "argv[0] is not %s", QEMU_BINARY);
	if (m->n_binds > VM_PLAN_BINDS_MAX)
		return err_set(e, -EINVAL, "n_binds %u over %d", m->n_binds, VM_PLAN_BINDS_MAX);
	for (uint32_t i = 0; i < m->n_binds; i++) {
		struct priv_bind *b = &m->binds[i];
		if (!memchr(b->host, '\0', sizeof(b->host)) || !memchr(b->jail, '\0', sizeof(b->jail)))
			return err_set(e, -EINVAL, "bind %u: unterminated path", i);
		if (!priv_path_plain(b->host) || !priv_path_plain(b->jail))
			return err_set(e, -EINVAL, "bind %u: not a plain absolute path", i);
		/* /proc/self/... would mean the parent's own descriptors. */
		if (!strncmp(b->host, "/proc/", 6) || !strncmp(b->host, "/sys/", 5))
			return err_set(e, -EINVAL, "bind %u: %s is under /proc or /sys", i, b->host);
		if (b->writable > 1)
			return err_set(e, -EINVAL, "bind %u: writable is %u", i, b->writable);
		if (b->writable && strcmp(b->host, names->dir))
			return err_set(e, -EINVAL, "bind %u: only the VM's own directory is writable, "
				       "not %s", i, b->host);
		if (!b->writable && !priv_api_can_read(b->host) && !priv_images_bind_ok(b->host))
			return err_set(e, -EINVAL, "bind %u: %s is not readable by the API uid %u (%s)",
				       i, b->host, PRIV_API_UID, strerror(errno));
		binds[i] = (struct jail_bind){ b->host, b->jail, (int)b->writable };
	}
	if (m->kvm_node > 1 || m->net > 1)
		return err_set(e, -EINVAL, "kvm_node %u / net %u not 0 or 1", m->kvm_node, m->net);
	if (m->n_allow > JAIL_ALLOW_MAX || (m->n_allow && !m->net))
		return err_set(e, -EINVAL, "n_allow %u (net %u)", m->n_allow, m->net);
	for (uint32_t i = 0; i < m->n_allow; i++) {
		if (m->allow[i].prefix > 32 || m->allow[i].port > 65535)
			return err_set(e, -EINVAL, "allow %u: prefix %u port %u", i, m->allow[i].prefix,
				       m->allow[i].port);
		allow[i] = (struct jail_net_allow){ m->allow[i].addr, (uint8_t)m->allow[i].prefix,
						    (uint16_t)m->allow[i].port };
	}
	if (m->cpu_percent > 100 * 1024)
		return err_set(e, -EINVAL, "cpu_percent %u", m->cpu_percent);
	if (m->memory_max_bytes > (1ull << 40) || m->fsize_max_bytes > PRIV_SCRATCH_MAX)
		return err_set(e, -EINVAL, "memory_max_bytes / fsize_max_bytes out of range");
	if (m->net && !names->slot_claimed)
		return err_set(e, -EINVAL, "net without NET_RESERVE first");
	*cfg = (struct jail_config){
		.names = names,
		.argv = argv,
		.binds = binds,
		.n_binds = m->n_binds,
		.seccomp = qemu_seccomp_policy((int)m->kvm_node),
		.kvm_node = (int)m->kvm_node,
		.memory_max_bytes = m->memory_max_bytes,
		.cpu_percent = m->cpu_percent,
		.fsize_max_bytes = m->fsize_max_bytes,
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1,
		.allow = allow,
		.n_allow = m->n_allow,
		.net = (int)m->net,
	};
	return 0;
}
