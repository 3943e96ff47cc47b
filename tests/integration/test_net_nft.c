/* Network isolation, proven with real packets.
 *
 * The VM's real network is built (netns, veth to the host, the verified nft
 * table); the tap, which needs a running VMM to move packets, is replaced by a
 * veth named tap0 whose other end sits in a "guest" netns the test creates, so
 * packets enter the VM's netns on tap0 exactly as the guest's do and cross the
 * same forward hook. Listeners on the host see what arrives. The end-to-end
 * variant through the real QEMU is in test_jail_e2e.c. Needs root. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/jail.h"
#include "jail/jail_internal.h"
#include "lib/harness.h"
#include "vm/qemu_seccomp.h"

#define PORT_A 18080
#define PORT_B 18081
#define OTHER_ADDR "198.18.77.1"

static char guest_ns[32];
static struct jail_net_addr plan;
static struct jail_names cur;   /* the VM under test: names computed once */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh_quiet;
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct run_result r;
	if (harness_run(argv, NULL, 0, 20000, &r))
		return -1;
	int rc = r.exit_code;
	if (rc && !sh_quiet)
		cr_log_warn("`%s` failed: %s%s", cmd, r.out, r.err);
	harness_result_free(&r);
	return rc;
}

static void net_teardown(const char *id)
{
	(void)id;
	jail_net_remove(&cur, NULL);
	jail_slot_release(cur.id, cur.slot);
	jail_state_remove(cur.id);
	if (guest_ns[0])
		sh("ip netns delete %s 2>/dev/null; true", guest_ns);
	jail_nft_test_inject(NULL);
}

/* Names `id` (into cur), writes a live record (this process, so a concurrent
 * `ironclaw gc` leaves the test's network alone) and reserves its address
 * slot (into plan). */
static struct jail_net_addr net_reserve(const char *id)
{
	cr_assert_eq(geteuid(), 0, "the network tests need root (CI runs them as root)");
	struct err e = { 0 };
	if (strcmp(cur.id, id))
		cr_assert_eq(jail_names_make(id, &cur, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_prepare_base(&e), 0, "%s", e.msg);
	cr_assert_eq(jail_state_write(id, 0, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_net_reserve(&cur, &plan, &e), 0, "%s", e.msg);
	return plan;
}

/* Builds the VM's network for `id` with `allow`, then plugs the fake guest in. */
static void net_setup(const char *id, const struct jail_net_allow *allow, size_t n)
{
	struct err e = { 0 };
	snprintf(guest_ns, sizeof(guest_ns), "icg-%d", (int)getpid());
	net_reserve(id);
	jail_net_remove(&cur, NULL);
	sh("ip netns delete %s 2>/dev/null; true", guest_ns);
	int tap = -1;
	cr_assert_eq(jail_net_create(&cur, allow, n, NULL, &tap, &e), 0, "%s", e.msg);
	cr_assert_geq(tap, 0);
	close(tap);   /* the tap goes away with its last fd; a veth takes its name */
	struct jail_names nm = cur;
	cr_assert_eq(sh("ip netns add %s", guest_ns), 0);
	cr_assert_eq(sh("ip link add %s netns %s type veth peer name eth0 netns %s", JAIL_NS_TAP, nm.netns, guest_ns), 0);
	cr_assert_eq(sh("ip -n %s addr add %s/30 dev %s && ip -n %s link set %s up", nm.netns, plan.gw_str, JAIL_NS_TAP,
			nm.netns, JAIL_NS_TAP), 0);
	cr_assert_eq(sh("ip -n %s addr add %s/30 dev eth0 && ip -n %s link set eth0 up && ip -n %s link set lo up && "
			"ip -n %s route add default via %s",
			guest_ns, plan.guest_ip_str, guest_ns, guest_ns, guest_ns, plan.gw_str), 0);
	/* Another address of the host, not in any allowlist (it goes away with
	 * the veth). */
	cr_assert_eq(sh("ip addr add %s/32 dev %s", OTHER_ADDR, nm.veth_host), 0);
}

/* A failed assertion ends a test before its teardown: the test's own guest
 * netns (which gc does not know) goes here too. */
static void net_fini(void)
{
	if (guest_ns[0])
		sh("ip netns delete %s 2>/dev/null; true", guest_ns);
}

TestSuite(net, .fini = net_fini);

/* ---- running code inside a netns ---- */
struct in_ns {
	const char *ns;
	int (*fn)(void *);
	void *arg;
	int rc;
};

static void *in_ns_thread(void *p)
{
	struct in_ns *c = p;
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/%s", c->ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		c->rc = -errno;
	} else {
		c->rc = c->fn(c->arg);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int run_in_ns(const char *ns, int (*fn)(void *), void *arg)
{
	struct in_ns c = { ns, fn, arg, 0 };
	pthread_t t;
	pthread_create(&t, NULL, in_ns_thread, &c);
	pthread_join(t, NULL);
	return c.rc;
}

struct probe {
	const char *addr;
	int port;
	int udp;
};

/* TCP: 0 when connected within 1.5 s. UDP: sends one datagram, returns 0. */
static int probe_fn(void *p)
{
	struct probe *pr = p;
	int s = socket(AF_INET, (pr->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)pr->port) };
	inet_pton(AF_INET, pr->addr, &sa.sin_addr);
	int rc = connect(s, (struct sockaddr *)&sa, sizeof(sa));
	if (rc && errno != EINPROGRESS) {
		rc = -errno;
		goto out;
	}
	if (pr->udp) {
		rc = send(s, "dns?", 4, 0) == 4 ? 0 : -errno;
		goto out;
	}
	struct pollfd pf = { .fd = s, .events = POLLOUT };
	if (poll(&pf, 1, 1500) != 1) {
		rc = -ETIMEDOUT;
		goto out;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	rc = soerr ? -soerr : 0;
	if (!rc)
		rc = send(s, "hello", 5, MSG_NOSIGNAL) == 5 ? 0 : -errno;
out:
	close(s);
	return rc;
}

static int listen_on(const char *addr, int port, int udp)
{
	int s = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s:%d: %s", addr, port, strerror(errno));
	if (!udp)
		cr_assert_eq(listen(s, 8), 0);
	return s;
}

/* 1 when a connection (TCP) or datagram (UDP) arrived on s within ms. */
static int arrived(int s, int udp, int ms)
{
	struct pollfd pf = { .fd = s, .events = POLLIN };
	if (poll(&pf, 1, ms) != 1)
		return 0;
	if (udp) {
		char b[16];
		return recv(s, b, sizeof(b), MSG_DONTWAIT) > 0;
	}
	int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return 0;
	close(c);
	return 1;
}

static int guest_probe(const char *addr, int port, int udp)
{
	struct probe p = { addr, port, udp };
	return run_in_ns(guest_ns, probe_fn, &p);
}

Test(net, allowed_port_is_reachable_other_port_and_address_are_not)
{
	struct jail_net_addr a = net_reserve("t-net-a");
	struct jail_net_allow allow[] = { { a.host_ip, 32, PORT_A } };
	net_setup("t-net-a", allow, 1);
	int la = listen_on("0.0.0.0", PORT_A, 0), lb = listen_on("0.0.0.0", PORT_B, 0);
	cr_expect_eq(guest_probe(plan.host_ip_str, PORT_A, 0), 0, "the allowed destination is unreachable");
	cr_expect(arrived(la, 0, 1000), "no connection arrived on the allowed port");
	cr_expect_neq(guest_probe(plan.host_ip_str, PORT_B, 0), 0, "a port not in the allowlist was reachable");
	cr_expect_not(arrived(lb, 0, 300), "a packet reached the port not allowed");
	cr_expect_neq(guest_probe(OTHER_ADDR, PORT_A, 0), 0, "an address not in the allowlist was reachable");
	cr_expect_not(arrived(la, 0, 300), "a packet reached the allowed port through another address");
	/* The netns itself (the guest's gateway) is not a destination either. */
	cr_expect_neq(guest_probe(plan.gw_str, 22, 0), 0);
	close(la);
	close(lb);
	net_teardown("t-net-a");
}

Test(net, dns_only_if_listed)
{
	struct jail_net_addr a = net_reserve("t-net-dns");
	struct jail_net_allow no_dns[] = { { a.host_ip, 32, PORT_A } };
	net_setup("t-net-dns", no_dns, 1);
	int u = listen_on(a.host_ip_str, 53, 1);
	cr_expect_eq(guest_probe(plan.host_ip_str, 53, 1), 0);
	cr_expect_not(arrived(u, 1, 500), "DNS passed without being listed");
	net_teardown("t-net-dns");
	struct jail_net_allow dns[] = { { a.host_ip, 32, 53 } };
	net_setup("t-net-dns", dns, 1);
	cr_expect_eq(guest_probe(plan.host_ip_str, 53, 1), 0);
	cr_expect(arrived(u, 1, 1000), "listed DNS did not arrive");
	close(u);
	net_teardown("t-net-dns");
}

Test(net, cidr_without_port_allows_every_port_of_that_network_only)
{
	struct jail_net_addr a = net_reserve("t-net-cidr");
	struct jail_net_allow allow[] = { { a.host_ip & ~3u, 30, 0 } };
	net_setup("t-net-cidr", allow, 1);
	int la = listen_on("0.0.0.0", PORT_A, 0), lb = listen_on("0.0.0.0", PORT_B, 0);
	cr_expect_eq(guest_probe(plan.host_ip_str, PORT_A, 0), 0);
	cr_expect_eq(guest_probe(plan.host_ip_str, PORT_B, 0), 0);
	cr_expect_neq(guest_probe(OTHER_ADDR, PORT_B, 0), 0, "outside the CIDR was reachable");
	close(la);
	close(lb);
	net_teardown("t-net-cidr");
}

static int verify_fn(void *names)
{
	struct err e = { 0 };
	int rc = jail_nft_verify(names, &e);
	if (rc)
		cr_log_info("verify: %s", e.msg);
	return rc;
}

Test(net, live_ruleset_has_hooked_drop_chains_and_tampering_is_detected)
{
	struct jail_net_addr a = net_reserve("t-net-rs");
	struct jail_net_allow allow[] = { { a.host_ip, 32, PORT_A } };
	net_setup("t-net-rs", allow, 1);
	struct jail_names nm = cur;
	/* Read back with the nft CLI (not our library code) and check the hooks. */
	char *argv[] = { "/bin/sh", "-c", NULL, NULL };
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ip netns exec %s nft -j list ruleset", nm.netns);
	argv[2] = cmd;
	struct run_result r;
	cr_assert_eq(harness_run(argv, NULL, 0, 10000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	json_t *root = json_loads(r.out, 0, NULL);
	cr_assert(root, "unparsable: %s", r.out);
	json_t *arr = json_object_get(root, "nftables"), *it;
	size_t i;
	int fwd = 0, in = 0, out = 0;
	json_array_foreach(arr, i, it) {
		json_t *ch = json_object_get(it, "chain");
		if (!ch)
			continue;
		const char *name = json_string_value(json_object_get(ch, "name"));
		const char *hook = json_string_value(json_object_get(ch, "hook"));
		const char *pol = json_string_value(json_object_get(ch, "policy"));
		cr_expect_str_eq(json_string_value(json_object_get(ch, "table")), nm.table);
		if (!strcmp(name, nm.chain_fwd))
			fwd = !strcmp(hook, "forward") && !strcmp(pol, "drop");
		if (!strcmp(name, nm.chain_in))
			in = !strcmp(hook, "input") && !strcmp(pol, "drop");
		if (!strcmp(name, nm.chain_out))
			out = !strcmp(hook, "output") && !strcmp(pol, "drop");
	}
	cr_expect(fwd && in && out, "base chains not hooked with policy drop: %s", r.out);
	json_decref(root);
	harness_result_free(&r);
	cr_expect_eq(run_in_ns(nm.netns, verify_fn, &cur), 0, "verification rejects the intact table");
	/* A table that exists but lets everything through must fail verification. */
	cr_assert_eq(sh("ip netns exec %s nft 'chain inet %s %s { policy accept; }'", nm.netns, nm.table, nm.chain_fwd), 0);
	cr_expect_neq(run_in_ns(nm.netns, verify_fn, &cur), 0, "policy accept went unnoticed");
	cr_assert_eq(sh("ip netns exec %s nft 'chain inet %s %s { policy drop; }'", nm.netns, nm.table, nm.chain_fwd), 0);
	cr_assert_eq(sh("ip netns exec %s nft delete chain inet %s %s", nm.netns, nm.table, nm.chain_in), 0);
	cr_expect_neq(run_in_ns(nm.netns, verify_fn, &cur), 0, "a missing input chain went unnoticed");
	cr_assert_eq(sh("ip netns exec %s nft add table ip intruder", nm.netns), 0);
	cr_expect_neq(run_in_ns(nm.netns, verify_fn, &cur), 0, "a foreign table went unnoticed");
	net_teardown("t-net-rs");
}

/* Everything of the VM named nm (with the slot it held) is gone. */
static void nothing_left(const struct jail_names *n)
{
	const struct jail_names nm = *n;
	const char *id = nm.id;
	char p[256];
	snprintf(p, sizeof(p), "/run/netns/%s", nm.netns);
	cr_expect_neq(access(p, F_OK), 0, "netns %s left", nm.netns);
	snprintf(p, sizeof(p), "/sys/class/net/%s", nm.veth_host);
	cr_expect_neq(access(p, F_OK), 0, "veth %s left", nm.veth_host);
	snprintf(p, sizeof(p), "%s/%s", JAIL_RUN_DIR, id);
	cr_expect_neq(access(p, F_OK), 0, "%s left", p);
	snprintf(p, sizeof(p), "%s/%s", JAIL_STATE_DIR, id);
	cr_expect_neq(access(p, F_OK), 0, "%s left", p);
	cr_expect_not(jail_cgroup_exists(id), "cgroup left");
	snprintf(p, sizeof(p), "%s/slot-%u", JAIL_STATE_DIR, nm.slot);
	cr_expect_neq(access(p, F_OK), 0, "address slot left");
	/* And no table of ours on the host either. */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "nft list tables | grep -q %s", nm.table);
	sh_quiet = 1;
	cr_expect_neq(sh("%s", cmd), 0, "table %s on the host", nm.table);
	sh_quiet = 0;
}

Test(net, an_injected_invalid_rule_means_no_vm_and_a_clear_error)
{
	cr_assert_eq(geteuid(), 0);
	jail_nft_test_inject("this is not a rule");
	char *argv[] = { "/bin/true", NULL };
	struct jail_net_allow allow[] = { { 0x0a000001u, 32, 80 } };
	net_reserve("t-net-inject");
	struct jail_config c = { .names = &cur, .argv = argv, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				 .stdout_fd = -1, .stderr_fd = -1, .net = 1, .allow = allow, .n_allow = 1 };
	struct err e = { 0 };
	struct jail *j = NULL;
	pid_t pid = 0;
	int rc = jail_spawn(&c, &pid, &j, &e);
	jail_nft_test_inject(NULL);
	cr_expect_neq(rc, 0);
	cr_expect_null(j);
	cr_expect_eq(pid, 0, "a VMM was started");
	cr_expect(strstr(e.msg, "firewall transaction rejected, no VM started"), "%s", e.msg);
	cr_expect(strstr(e.msg, "syntax error") || strstr(e.msg, "Error"), "the error says why: %s", e.msg);
	nothing_left(&cur);
}

static int only_lo(void *p)
{
	(void)p;
	struct if_nameindex *ifs = if_nameindex(), *i;
	int n = 0, lo = 0;
	for (i = ifs; i && i->if_name; i++) {
		n++;
		lo += !strcmp(i->if_name, "lo");
	}
	if_freenameindex(ifs);
	return n == 1 && lo == 1 ? 0 : -n - 1;
}

static int setns_pid_run(pid_t pid, int (*fn)(void *))
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	struct in_ns c = { NULL, fn, NULL, 0 };
	(void)c;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	/* A forked child joins the netns: no thread bookkeeping needed. */
	pid_t k = fork();
	if (k == 0)
		_exit(setns(fd, CLONE_NEWNET) ? 3 : (fn(NULL) ? 1 : 0));
	int st;
	waitpid(k, &st, 0);
	close(fd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static char standin[256];
static void build_standin(void)
{
	char dir[] = "/tmp/ironclaw-nettest-XXXXXX";
	cr_assert(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(standin, sizeof(standin), "%s/standin", dir);
	char src[512];
	snprintf(src, sizeof(src), "%s/tests/data/jail/standin.c", harness_root());
	char *argv[] = { "/usr/bin/cc", "-static", "-pthread", "-O1", "-o", standin, src, NULL };
	struct run_result r;
	cr_assert_eq(harness_run(argv, NULL, 0, 60000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	harness_result_free(&r);
}

static void remove_standin(void)
{
	unlink(standin);
	*strrchr(standin, '/') = 0;
	rmdir(standin);
}

Test(net, without_net_the_vmm_has_no_nic_and_with_net_destroy_removes_everything)
{
	cr_assert_eq(geteuid(), 0);
	build_standin();
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char *argv[] = { standin, "sleep", "20", NULL };
	struct jail_names none;
	cr_assert_eq(jail_names_make("t-net-none", &none, NULL), 0);
	struct jail_config c = { .names = &none, .argv = argv, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				 .stdout_fd = p[1], .stderr_fd = -1 };
	struct err e = { 0 };
	struct jail *j;
	pid_t pid;
	cr_assert_eq(jail_spawn(&c, &pid, &j, &e), 0, "%s", e.msg);
	char b[16];
	cr_assert_gt(read(p[0], b, sizeof(b)), 0);
	cr_expect_eq(setns_pid_run(pid, only_lo), 0, "the VMM's netns has more than lo");
	cr_expect_eq(jail_destroy(j, NULL, &e), 0, "%s", e.msg);
	close(p[0]);
	close(p[1]);

	/* With net: the tap arrives as fd 3, the VMM sits in the VM's netns. */
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	char *argv2[] = { standin, "ls", NULL };
	struct jail_net_allow allow[] = { { 0x0a000001u, 32, 80 } };
	net_reserve("t-net-full");
	struct jail_config c2 = { .names = &cur, .argv = argv2, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				  .stdout_fd = p[1], .stderr_fd = -1, .net = 1, .allow = allow, .n_allow = 1 };
	cr_assert_eq(jail_spawn(&c2, &pid, &j, &e), 0, "%s", e.msg);
	close(p[1]);
	char out[4096] = { 0 };
	size_t used = 0;
	ssize_t k;
	while ((k = read(p[0], out + used, sizeof(out) - 1 - used)) > 0)
		used += (size_t)k;
	close(p[0]);
	cr_expect(strstr(out, "fd3:open"), "no tap fd at 3: %s", out);
	struct jail_names nm = cur;
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/%s", nm.netns);
	cr_expect_eq(access(path, F_OK), 0, "the VM's netns is missing while it runs");
	cr_expect_eq(jail_destroy(j, NULL, &e), 0, "%s", e.msg);
	nothing_left(&nm);
	remove_standin();
}

Test(net, gc_removes_the_network_of_a_vm_that_is_gone)
{
	struct jail_net_addr a = net_reserve("t-net-gc");
	struct jail_net_allow allow[] = { { a.host_ip, 32, PORT_A } };
	struct err e = { 0 };
	/* A record whose owner and VMM are both gone (pid 0 = none). */
	char rec[256];
	snprintf(rec, sizeof(rec), "%s/t-net-gc", JAIL_STATE_DIR);
	FILE *f = fopen(rec, "w");
	cr_assert(f);
	fputs("0 0 0 0\n", f);
	fclose(f);
	int tap = -1;
	cr_assert_eq(jail_net_create(&cur, allow, 1, NULL, &tap, &e), 0, "%s", e.msg);
	close(tap);
	cr_expect_geq(jail_gc(&e), 1);
	nothing_left(&cur);
}

Test(net, a_name_clash_fails_the_new_vm_and_spares_the_existing_link)
{
	/* Another VM's veth with the same host name (a hash clash, simulated). */
	net_reserve("t-net-clash");
	struct jail_names nm = cur;
	sh("ip link delete %s 2>/dev/null; true", nm.veth_host);
	cr_assert_eq(sh("ip link add %s type veth peer name icclashpeer", nm.veth_host), 0);
	char *argv[] = { "/bin/true", NULL };
	struct jail_net_allow allow[] = { { 0x0a000001u, 32, 80 } };
	struct jail_config c = { .names = &nm, .argv = argv, .seccomp = qemu_seccomp_policy(0), .stdin_fd = -1,
				 .stdout_fd = -1, .stderr_fd = -1, .net = 1, .allow = allow, .n_allow = 1 };
	struct err e = { 0 };
	struct jail *j = NULL;
	pid_t pid = 0;
	cr_expect_neq(jail_spawn(&c, &pid, &j, &e), 0);
	cr_expect_null(j);
	cr_expect(strstr(e.msg, "creating the veth pair") && strstr(e.msg, "exists"), "%s", e.msg);
	char p[128];
	snprintf(p, sizeof(p), "/sys/class/net/%s", nm.veth_host);
	cr_expect_eq(access(p, F_OK), 0, "the other VM's link was removed");
	snprintf(p, sizeof(p), "/run/netns/%s", nm.netns);
	cr_expect_neq(access(p, F_OK), 0, "the failed VM's netns was left");
	sh("ip link delete %s", nm.veth_host);
}

Test(net, two_vms_whose_ids_clash_on_a_slot_both_get_working_distinct_networks)
{
	/* Both ids are forced onto one preferred slot: the second must take the
	 * next free one, and the first's network must keep working. */
	long slot = 300000 + (long)(getpid() % 1000) * 16;
	jail_test_force_slot(slot);
	struct jail_net_addr a = net_reserve("t-net-slot-a");
	struct jail_names na = cur;
	struct jail_net_allow allow[] = { { a.host_ip, 32, PORT_A } };
	net_setup("t-net-slot-a", allow, 1);
	struct err e = { 0 };
	struct jail_names nb;
	cr_assert_eq(jail_names_make("t-net-slot-b", &nb, &e), 0, "%s", e.msg);
	jail_test_force_slot(-1);
	cr_assert_eq(nb.slot, (uint32_t)slot, "the hook did not make the ids clash");
	cr_assert_eq(jail_state_write(nb.id, 0, &e), 0, "%s", e.msg);
	struct jail_net_addr b;
	cr_assert_eq(jail_net_reserve(&nb, &b, &e), 0, "%s", e.msg);
	cr_expect_neq(nb.slot, na.slot, "two live VMs share an address slot");
	cr_expect_neq(b.host_ip & ~7u, a.host_ip & ~7u, "the address ranges overlap");
	int tap = -1;
	struct jail_net_allow allow_b[] = { { b.host_ip, 32, PORT_B } };
	cr_assert_eq(jail_net_create(&nb, allow_b, 1, NULL, &tap, &e), 0, "the second VM's network failed: %s", e.msg);
	close(tap);
	/* The second VM's host end carries its own address... */
	cr_expect_eq(sh("ip -4 addr show dev %s | grep -q 'inet %s/30'", nb.veth_host, b.host_ip_str), 0);
	/* ...and the first VM's guest still reaches its allowed port. */
	int la = listen_on("0.0.0.0", PORT_A, 0);
	cr_expect_eq(guest_probe(a.host_ip_str, PORT_A, 0), 0, "the first VM's network broke when the second came");
	cr_expect(arrived(la, 0, 1000), "no connection arrived from the first VM");
	close(la);
	jail_net_remove(&nb, NULL);
	jail_slot_release(nb.id, nb.slot);
	jail_state_remove(nb.id);
	net_teardown("t-net-slot-a");
	nothing_left(&na);
	nothing_left(&nb);
}
