/* libFuzzer target: what serve's privileged parent accepts from the API
 * process (src/serve/priv.h), the only bytes root reads from the unprivileged
 * side. The input goes through a real SOCK_SEQPACKET socketpair as one
 * datagram, then priv_msg_recv checks its shape and, for a SPAWN,
 * priv_check_spawn its fields. Invariants: an accepted message is exactly its
 * type's size; an accepted SPAWN runs QEMU, every argv string lies inside the
 * store, the bind and allow counts are within their caps, and the only
 * writable bind is the VM's own directory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/priv.h"
#include "vm/qemu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int sp[2] = { -1, -1 };
	static _Alignas(8) unsigned char buf[PRIV_MSG_MAX];
	if (sp[0] < 0) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
			abort();
		int big = 4 << 20;
		setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	if (size > PRIV_MSG_MAX + 64)
		size = PRIV_MSG_MAX + 64;
	if (send(sp[0], data, size, 0) != (ssize_t)size)
		return 0;
	char why[160];
	int fd = -1;
	ssize_t n = priv_msg_recv(sp[1], buf, &fd, why, sizeof(why));
	if (fd >= 0)
		abort();   /* none was sent */
	if (n <= 0)
		return 0;
	const struct priv_hdr *h = (const void *)buf;
	if ((size_t)n != priv_msg_size(h->type) || h->len != (size_t)n || h->magic != PRIV_MAGIC)
		abort();
	if (h->type != PRIV_SPAWN)
		return 0;
	struct jail_names names;
	struct err e = { 0 };
	if (jail_names_make("fuzz-vm", &names, &e) < 0)
		abort();
	names.slot_claimed = 1;
	struct priv_msg_spawn *m = (void *)buf;
	char *argv[VM_PLAN_ARGV_MAX];
	struct jail_bind binds[VM_PLAN_BINDS_MAX];
	struct jail_net_allow allow[JAIL_ALLOW_MAX];
	struct jail_config cfg;
	if (priv_check_spawn(m, &names, argv, binds, allow, &cfg, &e) < 0) {
		if (!e.msg[0])
			abort();
		return 0;
	}
	if (strcmp(cfg.argv[0], QEMU_BINARY) || cfg.n_binds > VM_PLAN_BINDS_MAX ||
	    cfg.n_allow > JAIL_ALLOW_MAX || !cfg.seccomp)
		abort();
	for (uint32_t i = 0; i < m->argc; i++)
		if (argv[i] < m->store || argv[i] + strlen(argv[i]) >= m->store + VM_PLAN_STORE)
			abort();
	for (size_t i = 0; i < cfg.n_binds; i++)
		if (binds[i].writable && strcmp(binds[i].host_path, names.dir))
			abort();
	return 0;
}
