/* A VM's opt-in network: named netns, veth pair to the host, tap for the VMM.
 *
 *   host: icv<hash> 100.64.S.1/30  <-veth->  netns ic-<hash>: up0 100.64.S.2/30
 *                                                         tap0 100.64.S.5/30 (gateway)
 *                                                 guest eth0 100.64.S.6/30
 *
 * The guest's packets enter the netns on tap0 and leave on up0 through the
 * forward hook, where the VM's nft table (nft.c) drops all but the allowlist;
 * they are masqueraded to up0's address, so the host needs no route back and
 * cannot start connections to the guest. Links and addresses are made with
 * iproute2's `ip` (fixed argv, no shell); the tap is opened from a thread that
 * joined the netns, so the device is created there and its fd handed to the
 * VMM. Any failure removes what was made: no VM starts on a half-built net. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/io.h"

struct jail_ns_call {
	int nsfd;
	int (*fn)(void *);
	void *arg;
	int rc;
};

static void *jail_ns_thread(void *p)
{
	struct jail_ns_call *c = p;
	/* setns(CLONE_NEWNET) affects only this thread; it ends right after. */
	if (setns(c->nsfd, CLONE_NEWNET))
		c->rc = -errno;
	else
		c->rc = c->fn(c->arg);
	return NULL;
}

int jail_net_in_ns(const char *vm_id, int (*fn)(void *arg), void *arg, struct err *e)
{
	struct jail_names n;
	char path[128];
	jail_names_for(vm_id, &n);
	snprintf(path, sizeof(path), "/run/netns/%s", n.netns);
	struct jail_ns_call c = { .fn = fn, .arg = arg, .rc = 0 };
	c.nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (c.nsfd < 0)
		return err_set(e, -errno, "opening netns %s: %s", path, strerror(errno));
	pthread_t t;
	int rc = pthread_create(&t, NULL, jail_ns_thread, &c);
	if (rc) {
		close(c.nsfd);
		return err_set(e, -rc, "starting the netns thread: %s", strerror(rc));
	}
	pthread_join(t, NULL);
	close(c.nsfd);
	return c.rc;
}

/* Runs `ip <args...>` (NULL-terminated); on failure the message carries ip's
 * own output. */
static int jail_ip(struct err *e, const char *what, const char *const *args)
{
	const char *ip = jail_ip_path();
	if (!ip)
		return err_set(e, -ENOENT, "`ip` not found (hint: run `make deps`, it installs iproute2)");
	char *argv[16] = { (char *)ip };
	int n = 1;
	for (int i = 0; n < 15 && args[i]; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	char out[512];
	int rc = jail_run(argv, out, sizeof(out));
	if (rc < 0)
		return err_set(e, rc, "%s: running ip: %s", what, strerror(-rc));
	if (rc > 0)
		return err_set(e, -EIO, "%s: ip failed: %s", what, out[0] ? out : "(no output)");
	return 0;
}
#define IP(e, what, ...) jail_ip(e, what, (const char *const[]){ __VA_ARGS__, NULL })

struct jail_tap_args {
	int fd;
	const char *gw_cidr;
};

static int jail_tap_open(void *p)
{
	struct jail_tap_args *a = p;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	/* No persist flag: the device lives exactly as long as an fd to it. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", JAIL_NS_TAP);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	a->fd = fd;
	/* Forwarding is per netns: on here, for the tap <-> up0 path only. */
	int s = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (s < 0)
		return -errno;
	int rc = io_write_all(s, "1", 1);
	close(s);
	return rc < 0 ? rc : 0;
}

struct jail_nft_args {
	const char *vm_id;
	const struct jail_net_allow *allow;
	size_t n_allow;
	struct err *e;
};

static int jail_nft_in_ns(void *p)
{
	struct jail_nft_args *a = p;
	int rc = jail_nft_apply(a->vm_id, a->allow, a->n_allow, a->e);
	if (!rc)
		rc = jail_nft_verify(a->vm_id, a->e);
	return rc;
}

int jail_net_create(const char *vm_id, const struct jail_net_allow *allow, size_t n_allow, int *tap_fd,
		    struct err *e)
{
	struct jail_names n;
	struct jail_net_addr a;
	int rc;
	*tap_fd = -1;
	jail_names_for(vm_id, &n);
	if ((rc = jail_net_plan(vm_id, &a, e)))
		return rc;
	char host_cidr[24], ns_cidr[24], gw_cidr[24], ns_ip[16], net_cidr[24];
	uint32_t base = a.host_ip - 1;
	snprintf(host_cidr, sizeof(host_cidr), "%s/30", a.host_ip_str);
	snprintf(ns_ip, sizeof(ns_ip), "%u.%u.%u.%u", (base + 2) >> 24, ((base + 2) >> 16) & 255, ((base + 2) >> 8) & 255,
		 (base + 2) & 255);
	snprintf(ns_cidr, sizeof(ns_cidr), "%s/30", ns_ip);
	snprintf(gw_cidr, sizeof(gw_cidr), "%s/30", a.gw_str);
	snprintf(net_cidr, sizeof(net_cidr), "%s", a.host_ip_str);

	if ((rc = IP(e, "creating the VM's network namespace", "netns", "add", n.netns)))
		return rc;   /* exists: a leftover (gc) or a clash; either way not ours to remove */
	struct jail_tap_args tap = { .fd = -1, .gw_cidr = gw_cidr };
	struct jail_nft_args nft = { vm_id, allow, n_allow, e };
	if ((rc = IP(e, "creating the veth pair", "link", "add", n.veth_host, "type", "veth", "peer", "name",
		     JAIL_NS_VETH, "netns", n.netns))) {
		/* The host name may belong to another VM (48-bit hash clash):
		 * remove only our netns. */
		IP(NULL, "deleting the VM's network namespace", "netns", "delete", n.netns);
		return rc;
	}
	if ((rc = IP(e, "addressing the host veth", "addr", "add", host_cidr, "dev", n.veth_host)) ||
	    (rc = IP(e, "bringing up the host veth", "link", "set", n.veth_host, "up")) ||
	    (rc = IP(e, "addressing the netns veth", "-n", n.netns, "addr", "add", ns_cidr, "dev", JAIL_NS_VETH)) ||
	    (rc = IP(e, "bringing up the netns veth", "-n", n.netns, "link", "set", JAIL_NS_VETH, "up")) ||
	    (rc = IP(e, "bringing up lo in the netns", "-n", n.netns, "link", "set", "lo", "up")))
		goto fail;
	/* The firewall goes in before the tap exists: there is no moment in
	 * which the guest's interface is up without its table. */
	if ((rc = jail_net_in_ns(vm_id, jail_nft_in_ns, &nft, e)))
		goto fail;
	rc = jail_net_in_ns(vm_id, jail_tap_open, &tap, e);
	if (rc) {
		if (!e || !e->code)
			err_set(e, rc, "creating the tap device in the VM's netns: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = IP(e, "addressing the tap", "-n", n.netns, "addr", "add", gw_cidr, "dev", JAIL_NS_TAP)) ||
	    (rc = IP(e, "bringing up the tap", "-n", n.netns, "link", "set", JAIL_NS_TAP, "up")) ||
	    (rc = IP(e, "routing the netns to the host", "-n", n.netns, "route", "add", "default", "via", net_cidr)))
		goto fail;
	*tap_fd = tap.fd;
	return 0;
fail:
	if (tap.fd >= 0)
		close(tap.fd);
	jail_net_remove(vm_id, NULL);
	return rc;
}

int jail_net_remove(const char *vm_id, struct err *e)
{
	struct jail_names n;
	char path[128];
	jail_names_for(vm_id, &n);
	const char *ip = jail_ip_path();
	if (!ip)
		return 0;
	/* Deleting the netns destroys up0 and so its peer on the host, and the
	 * table with it; the explicit link delete covers a veth left without a
	 * netns by a crash in between. */
	snprintf(path, sizeof(path), "/run/netns/%s", n.netns);
	int rc = 0;
	if (access(path, F_OK) == 0)
		rc = IP(e, "deleting the VM's network namespace", "netns", "delete", n.netns);
	char sys[128];
	snprintf(sys, sizeof(sys), "/sys/class/net/%s", n.veth_host);
	/* The kernel destroys the netns (and the veth with it) asynchronously. */
	for (int i = 0; i < 100 && access(sys, F_OK) == 0; i++)
		usleep(10000);
	if (access(sys, F_OK) == 0) {
		int r2 = IP(rc ? NULL : e, "deleting the host veth", "link", "delete", n.veth_host);
		if (!rc)
			rc = r2;
	}
	return rc;
}
