/* `--net` with the Firecracker backend, proven with real kernel objects.
 *
 * Firecracker opens its tap by name (network-interfaces host_dev_name), so the
 * jail makes the tap persistent and owned by the VMM's uid and gid and gives
 * the jail a /dev/net/tun node (jail_config.tap_by_name). Here:
 *
 *   - through vm.h, with the stand-in for the firecracker process
 *     (peers/fc_api_peer.c) launched by the real launcher in the real jail
 *     under Firecracker's seccomp policy, exactly as Firecracker would be:
 *     it is told the tap's name and a guest_mac in PUT /network-interfaces,
 *     attaches to it with TUNSETIFF, cannot create a second tap nor attach
 *     to one the test makes in its netns for another uid, resolves the
 *     gateway with a real ARP request and sends real UDP datagrams: the one
 *     to the allowed address and port arrives on the host, the ones to
 *     another port and to another address of the host are dropped by the
 *     VM's nftables table; afterwards no netns and no veth is left;
 *   - the tap itself (jail_net_create with an owner), from processes that
 *     join the VM's netns with no capabilities: its owner attaches, another
 *     uid cannot, and nobody creates a device.
 * Needs root (CI runs the integration tests as root). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/jail.h"
#include "jail/jail_internal.h"
#include "lib/harness.h"
#include "vm/vm.h"
#include "integration/lib/vmrun.h"

#define PORT_A 18095
#define PORT_B 18096

/* An IPv4 address of this host that is not a VM's veth: a destination the
 * allowlist can name, reachable from a VM's netns through the host end. */
static int host_addr(char *out, size_t n, uint32_t *ip)
{
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa))
		return -errno;
	int rc = -ENOENT;
	for (struct ifaddrs *i = ifa; i && rc; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
		    !(i->ifa_flags & IFF_UP) || !strncmp(i->ifa_name, "icv", 3))
			continue;
		struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		*ip = ntohl(a.s_addr);
		inet_ntop(AF_INET, &a, out, (socklen_t)n);
		rc = 0;
	}
	freeifaddrs(ifa);
	return rc;
}

static int udp_listen(int port)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind :%d: %s", port, strerror(errno));
	return s;
}

/* Every datagram that arrived on s (waiting up to first_ms for the first),
 * payloads joined by '|'. */
static void udp_drain(int s, int first_ms, char *out, size_t n)
{
	out[0] = '\0';
	struct pollfd pf = { .fd = s, .events = POLLIN };
	int wait = first_ms;
	while (poll(&pf, 1, wait) == 1) {
		char b[128];
		ssize_t got = recv(s, b, sizeof(b) - 1, MSG_DONTWAIT);
		if (got <= 0)
			break;
		b[got] = '\0';
		size_t l = strlen(out);
		snprintf(out + l, n - l, "%s|", b);
		wait = 200;
	}
}

struct nt {
	uv_loop_t loop;
	struct vm *vm;
	int failed, destroyed;
	struct err e;
	char console[8192];
	struct jail_names names;
	uv_fs_event_t watch;
	int planted;
	char dir[128];
};

/* In the VM's netns: a persistent tap owned by another uid (root makes it;
 * the thread that joins the netns ends right after). */
static int plant_other(void *arg)
{
	const struct jail_names *n = arg;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "tap9");
	int rc = fd >= 0 && !ioctl(fd, TUNSETIFF, &ifr) && !ioctl(fd, TUNSETOWNER, (unsigned long)(n->uid + 1)) &&
			 !ioctl(fd, TUNSETGROUP, (unsigned long)(n->gid + 1)) && !ioctl(fd, TUNSETPERSIST, 1ul)
		 ? 0 : -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The stand-in is at network-interfaces: plant the other uid's tap, let it go on. */
static void nt_on_dir(uv_fs_event_t *w, const char *file, int events, int status)
{
	struct nt *t = w->data;
	(void)events;
	if (status < 0 || !file || strcmp(file, "peer-waiting") || t->planted)
		return;
	struct err e = { 0 };
	t->planted = jail_net_in_ns(&t->names, plant_other, &t->names, &e) == 0 ? 1 : -1;
	char go[160];
	snprintf(go, sizeof(go), "%s/peer-go", t->dir);
	int fd = open(go, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "g", 1) != 1)
			t->planted = -1;
		close(fd);
	}
	uv_fs_event_stop(w);
}

static void nt_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct nt *t = ctx;
	t->failed++;
	t->e = *e;
	char path[256];
	snprintf(path, sizeof(path), "/run/ironclaw/%s/console.log", vm_id(vm));
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(t->console, 1, sizeof(t->console) - 1, f);
		t->console[n] = '\0';
		fclose(f);
	}
	vm_destroy(vm);
}

static void nt_ready(struct vm *vm, void *ctx)
{
	(void)ctx;
	vm_destroy(vm);
}

static void nt_destroyed(struct vm *vm, void *ctx)
{
	(void)vm;
	((struct nt *)ctx)->destroyed = 1;
}

Test(fc_net, the_jailed_vmm_attaches_to_its_owned_tap_and_its_packets_meet_the_allowlist, .timeout = 180)
{
	cr_assert_eq(geteuid(), 0, "the network tests need root (CI runs them as root)");
	char peer[4096], hs[INET_ADDRSTRLEN];
	const char *bin = harness_ironclaw();
	snprintf(peer, sizeof(peer), "%.*s/tests/integration/peers/fc_api_peer", (int)(strrchr(bin, '/') - bin), bin);
	cr_assert_eq(access(peer, X_OK), 0, "%s missing (make integration-tests builds it)", peer);
	uint32_t hip = 0;
	cr_assert_eq(host_addr(hs, sizeof(hs), &hip), 0, "no IPv4 address on this host to send to");
	setenv("IRONCLAW_FIRECRACKER", peer, 1);
	vmrun_use_checkout_image();
	int la = udp_listen(PORT_A), lb = udp_listen(PORT_B);

	struct nt t;
	memset(&t, 0, sizeof(t));
	uv_loop_init(&t.loop);
	const struct jail_net_allow allow[] = { { hip, 32, PORT_A } };
	struct vm_options o = { .backend = &vm_backend_firecracker, .boot_timeout_ms = 60000, .net = 1,
				.allow = allow, .n_allow = 1 };
	static const struct vm_events ev = { .ready = nt_ready, .failed = nt_failed, .destroyed = nt_destroyed };
	struct err e = { 0 };
	cr_assert_eq(vm_create(&t.loop, &o, &ev, &t, &t.vm, &e), 0, "%s", e.msg);
	struct jail_names names;
	cr_assert_eq(jail_names_make(vm_id(t.vm), &names, &e), 0, "%s", e.msg);
	t.names = names;
	snprintf(t.dir, sizeof(t.dir), "/run/ironclaw/%s", vm_id(t.vm));
	char fifo[192];
	snprintf(fifo, sizeof(fifo), "%s/peer-go", t.dir);
	cr_assert_eq(mkfifo(fifo, 0666), 0, "%s: %s", fifo, strerror(errno));
	chmod(fifo, 0666);
	uv_fs_event_init(&t.loop, &t.watch);
	t.watch.data = &t;
	cr_assert_eq(uv_fs_event_start(&t.watch, nt_on_dir, t.dir, 0), 0);
	/* The stand-in cannot boot a guest: it refuses InstanceStart (request 7,
	 * after network-interfaces at 5), having used the NIC. */
	char path[256], script[512];
	snprintf(path, sizeof(path), "/run/ironclaw/%s/peer-script", vm_id(t.vm));
	snprintf(script, sizeof(script),
		 "fault 7 the stand-in boots no guest\nother tap9\nudp %s:%d\nudp %s:%d\nudp host:%d\n", hs, PORT_A, hs,
		 PORT_B, PORT_A);
	FILE *f = fopen(path, "w");
	cr_assert(f, "%s", path);
	fputs(script, f);
	fclose(f);
	chmod(path, 0644);
	while (!t.destroyed && uv_run(&t.loop, UV_RUN_ONCE))
		;
	cr_assert(t.destroyed);
	uv_close((uv_handle_t *)&t.watch, NULL);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&t.loop), 0, "a handle was left open");
	unsetenv("IRONCLAW_FIRECRACKER");

	cr_assert_eq(t.failed, 1);
	cr_expect(strstr(t.e.msg, "Firecracker refused PUT /actions (HTTP 400): the stand-in boots no guest"), "%s",
		  t.e.msg);
	cr_expect(strstr(t.console, "request PUT /network-interfaces/eth0"), "%s", t.console);
	cr_expect(strstr(t.console, "fc-peer: nic 06:fc:"), "the NIC has its guest_mac:\n%s", t.console);
	cr_expect(strstr(t.console, "tap attach tap0: ok"), "the VMM attaches to its tap by name:\n%s", t.console);
	cr_expect(strstr(t.console, "tap create tap1: Operation not permitted"), "nor creates another:\n%s",
		  t.console);
	cr_expect_eq(t.planted, 1, "the other uid's tap could not be made");
	cr_expect(strstr(t.console, "tap other tap9: Operation not permitted"),
		  "nor attaches to another uid's tap:\n%s", t.console);
	cr_expect(strstr(t.console, "arp gateway: ok"), "%s", t.console);
	char want[96];
	snprintf(want, sizeof(want), "udp sent %s:%d: ok", hs, PORT_A);
	cr_expect(strstr(t.console, want), "%s", t.console);

	char got_a[512], got_b[512];
	udp_drain(la, 2000, got_a, sizeof(got_a));
	udp_drain(lb, 300, got_b, sizeof(got_b));
	snprintf(want, sizeof(want), "to %s:%d|", hs, PORT_A);
	cr_expect(strstr(got_a, want), "the datagram to the allowed address and port did not arrive (got '%s')", got_a);
	snprintf(want, sizeof(want), "to host:%d|", PORT_A);
	cr_expect_null(strstr(got_a, want), "a datagram to an address not in the allowlist arrived: '%s'", got_a);
	cr_expect_str_eq(got_b, "", "a datagram to a port not in the allowlist arrived");
	close(la);
	close(lb);

	/* The tap went with the netns; the veth and the netns are gone. */
	struct stat st;
	cr_expect_neq(lstat(names.netns_path, &st), 0, "the netns %s was left behind", names.netns_path);
	cr_expect_eq(if_nametoindex(names.veth_host), 0, "the host veth %s was left behind", names.veth_host);
	pid_t left[4];
	cr_expect_eq(harness_find_processes("fc_api_peer", getpid(), left, 4), 0, "the VMM outlived its VM");
}

/* ---- the owned tap, from unprivileged processes in the VM's netns ---- */

/* In a child: join the netns, drop to uid/gid (which clears every
 * capability), TUNSETIFF `name`. Exits with 0 or the errno. */
static int tap_try(const struct jail_names *n, uid_t uid, gid_t gid, const char *name)
{
	pid_t p = fork();
	cr_assert_geq(p, 0);
	if (p == 0) {
		/* /dev/net/tun may be root-only here (the jail gives its VMM a node of
		 * its own): open it first; the tun driver checks the caller's
		 * credentials at TUNSETIFF, not at open. */
		int ns = open(n->netns_path, O_RDONLY | O_CLOEXEC);
		if (ns < 0 || setns(ns, CLONE_NEWNET))
			_exit(100);
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
			_exit(100);
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
		_exit(fd < 0 ? 101 : ioctl(fd, TUNSETIFF, &ifr) ? errno : 0);
	}
	int status = 0;
	waitpid(p, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

Test(fc_net, an_owned_tap_is_attachable_by_its_uid_only_and_no_one_creates_another, .timeout = 60)
{
	cr_assert_eq(geteuid(), 0, "the network tests need root (CI runs them as root)");
	struct jail_names n;
	struct jail_net_addr a;
	struct err e = { 0 };
	char id[32];
	snprintf(id, sizeof(id), "t-fcnet-%d", (int)getpid());
	cr_assert_eq(jail_names_make(id, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_prepare_base(&e), 0, "%s", e.msg);
	cr_assert_eq(jail_state_write(id, 0, &e), 0, "%s", e.msg);   /* live: gc leaves it alone */
	cr_assert_eq(jail_net_reserve(&n, &a, &e), 0, "%s", e.msg);
	const struct jail_tap_owner owner = { n.uid, n.gid };
	int fd = 0;
	cr_assert_eq(jail_net_create(&n, NULL, 0, &owner, &fd, &e), 0, "%s", e.msg);
	cr_expect_eq(fd, -1, "a persistent tap hands no fd back");

	cr_expect_eq(tap_try(&n, n.uid + 1, n.gid + 1, JAIL_TAP_NAME), EPERM, "another uid attached to the VM's tap");
	cr_expect_eq(tap_try(&n, n.uid, n.gid, "tap1"), EPERM, "the VMM's uid created a tap");
	cr_expect_eq(tap_try(&n, n.uid, n.gid, JAIL_TAP_NAME), 0, "the owner cannot attach to its tap");
	cr_expect_eq(tap_try(&n, n.uid, n.gid, JAIL_TAP_NAME), 0, "the tap did not outlive its last fd");

	cr_expect_eq(jail_net_remove(&n, &e), 0, "%s", e.msg);
	jail_slot_release(n.id, n.slot);
	jail_state_remove(n.id);
	struct stat st;
	cr_expect_neq(lstat(n.netns_path, &st), 0);
}
