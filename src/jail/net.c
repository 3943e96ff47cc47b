/* A VM's opt-in network: named netns, veth pair to the host, tap for the VMM.
 *
 *   host: icv<hash> 100.64.S.1/30  <-veth->  netns ic-<hash>: up0 100.64.S.2/30
 *                                                         tap0 100.64.S.5/30 (gateway)
 *                                                 guest eth0 100.64.S.6/30
 *
 * The guest's packets enter the netns on tap0 and leave on up0 through the
 * forward hook, where the VM's nft table (nft.c) drops all but the allowlist;
 * they are masqueraded to up0's address, so the host needs no route back and
 * cannot start connections to the guest.
 *
 * Everything is made by one short-lived thread of ours, over netlink (nl.c),
 * without forking: it opens a netlink socket in the host netns, unshares
 * CLONE_NEWNET (only this thread moves), pins the new netns by bind-mounting
 * /proc/self/task/<tid>/ns/net onto /run/netns/<name> (as iproute2's `ip netns
 * add` does, so `ip -n` works on it), and from inside sets up links, the
 * verified nft table, the tap (TUNSETIFF) and the route. The caller's thread
 * never changes netns. Any failure removes what was made: no VM starts on a
 * half-built net.
 *
 * The tap comes in two kinds, chosen by the caller: an fd (QEMU is handed it;
 * the device lives as long as that fd), or, for a VMM that opens its tap by
 * name (Firecracker), a persistent tap owned by the VMM's uid and gid. The
 * VMM has no capabilities, so TUNSETIFF lets it attach to that tap only: the
 * tun driver refuses another owner's tap, and creating a device needs
 * CAP_NET_ADMIN. The persistent tap is deleted with its netns. */
#include "jail/jail_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

int jail_net_in_ns(const struct jail_names *n, int (*fn)(void *arg), void *arg, struct err *e)
{
	int nsfd = open(n->netns_path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return err_set(e, -errno, "opening netns %s: %s", n->netns_path, strerror(errno));
	struct jail_ns_call c = { .nsfd = nsfd, .fn = fn, .arg = arg, .rc = 0 };
	pthread_t t;
	int rc = pthread_create(&t, NULL, jail_ns_thread, &c);
	if (rc) {
		close(nsfd);
		return err_set(e, -rc, "starting the netns thread: %s", strerror(rc));
	}
	pthread_join(t, NULL);
	close(nsfd);
	return c.rc;
}

/* /run/netns must be a shared mount point, so a netns pinned there later is
 * seen by mount namespaces made before (iproute2 sets it up the same way;
 * doing it again is harmless). */
static pthread_mutex_t jail_netns_dir_lock = PTHREAD_MUTEX_INITIALIZER;

static int jail_netns_dir(struct err *e)
{
	static int done;
	int rc = 0, bound = 0;
	/* Once per process, and never twice at once (two self-binds would stack). */
	pthread_mutex_lock(&jail_netns_dir_lock);
	if (done)
		goto out;
	if (mkdir(JAIL_NETNS_DIR, 0755) && errno != EEXIST) {
		rc = err_set(e, -errno, "creating %s: %s", JAIL_NETNS_DIR, strerror(errno));
		goto out;
	}
	while (mount("", JAIL_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL)) {
		/* EINVAL: not a mount point yet; bind it onto itself, once. */
		if (errno != EINVAL || bound ||
		    mount(JAIL_NETNS_DIR, JAIL_NETNS_DIR, "none", MS_BIND | MS_REC, NULL)) {
			rc = err_set(e, -errno, "making %s a shared mount: %s", JAIL_NETNS_DIR, strerror(errno));
			goto out;
		}
		bound = 1;
	}
	done = 1;
out:
	pthread_mutex_unlock(&jail_netns_dir_lock);
	return rc;
}

int jail_netns_delete(const char *netns, struct err *e)
{
	char path[96];
	if (snprintf(path, sizeof(path), "%s/%s", JAIL_NETNS_DIR, netns) >= (int)sizeof(path))
		return err_set(e, -ENAMETOOLONG, "netns name too long");
	/* Detach: a netns still held by a process (or an fd) lives on until
	 * that goes, but its name is gone at once. */
	if (umount2(path, MNT_DETACH) && errno != EINVAL && errno != ENOENT)
		return err_set(e, -errno, "unmounting netns %s: %s", path, strerror(errno));
	if (unlink(path) && errno != ENOENT)
		return err_set(e, -errno, "removing %s: %s", path, strerror(errno));
	return 0;
}

struct jail_net_build {
	const struct jail_names *n;
	const struct jail_net_allow *allow;
	size_t n_allow;
	struct jail_net_addr a;
	const struct jail_tap_owner *owner;  /* NULL: an fd-lived tap */
	int tap_fd;      /* out */
	int pinned;      /* out: the netns file is a mount of ours */
	int veth_made;   /* out */
	struct err *e;
};

/* The tap, made in the calling thread's netns. Without owner: no persist
 * flag, so the device lives exactly as long as an fd to it (the VMM's). With
 * owner: persistent, and attachable only by that uid and gid. The flags are
 * the ones Firecracker asks for when it attaches (they must match). */
static int jail_tap_open(const struct jail_tap_owner *owner, int *out, struct err *e)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "opening /dev/net/tun: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", JAIL_NS_TAP);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		int rc = -errno;
		close(fd);
		return err_set(e, rc, "creating the tap device in the VM's netns: %s", strerror(-rc));
	}
	if (owner && (ioctl(fd, TUNSETOWNER, (unsigned long)owner->uid) ||
		      ioctl(fd, TUNSETGROUP, (unsigned long)owner->gid) || ioctl(fd, TUNSETPERSIST, 1ul))) {
		int rc = -errno;
		close(fd);
		return err_set(e, rc, "giving the VM's tap to uid %u: %s", (unsigned)owner->uid, strerror(-rc));
	}
	*out = fd;
	return 0;
}

/* Forwarding is per netns: on here, for the tap <-> up0 path only. The sysctl
 * file resolves to the netns of the thread that opens it. */
static int jail_ns_forwarding(struct err *e)
{
	int s = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (s < 0)
		return err_set(e, -errno, "enabling forwarding in the VM's netns: %s", strerror(errno));
	int rc = io_write_all(s, "1", 1);
	close(s);
	return rc < 0 ? err_set(e, rc, "enabling forwarding in the VM's netns: %s", strerror(-rc)) : 0;
}

/* Links, addresses and the host end, from inside the new netns. */
static int jail_net_links(struct jail_net_build *b, struct jail_nl *host, struct jail_nl *ns, int nsfd)
{
	const struct jail_names *n = b->n;
	struct err *e = b->e;
	int rc, idx;
	if ((rc = jail_nl_veth_add(host, n->veth_host, JAIL_NS_VETH, nsfd, e)))
		return rc;   /* the host name may be another VM's (48-bit clash): not ours to remove */
	b->veth_made = 1;
	uint32_t base = b->a.host_ip - 1;
	if ((idx = jail_nl_link_index(host, n->veth_host)) < 0)
		return err_set(e, idx, "netlink: finding %s: %s", n->veth_host, strerror(-idx));
	if ((rc = jail_nl_addr_add(host, idx, b->a.host_ip, 30, e)) || (rc = jail_nl_link_up(host, idx, e)))
		return err_wrap(e, "host veth %s", n->veth_host);
	if ((idx = jail_nl_link_index(ns, JAIL_NS_VETH)) < 0)
		return err_set(e, idx, "netlink: finding %s in the netns: %s", JAIL_NS_VETH, strerror(-idx));
	if ((rc = jail_nl_addr_add(ns, idx, base + 2, 30, e)) || (rc = jail_nl_link_up(ns, idx, e)))
		return err_wrap(e, "netns veth %s", JAIL_NS_VETH);
	if ((idx = jail_nl_link_index(ns, "lo")) < 0 || (rc = jail_nl_link_up(ns, idx, e)))
		return idx < 0 ? err_set(e, idx, "netlink: no lo in the netns") : err_wrap(e, "lo");
	return 0;
}

/* The tap and the route go in after the firewall: there is no moment in which
 * the guest's interface is up without its table. */
static int jail_net_tap(struct jail_net_build *b, struct jail_nl *ns)
{
	struct err *e = b->e;
	int rc, idx;
	if ((rc = jail_nft_apply(b->n, b->allow, b->n_allow, e)) || (rc = jail_nft_verify(b->n, e)))
		return rc;
	if ((rc = jail_tap_open(b->owner, &b->tap_fd, e)) || (rc = jail_ns_forwarding(e)))
		return rc;
	if ((idx = jail_nl_link_index(ns, JAIL_NS_TAP)) < 0)
		return err_set(e, idx, "netlink: finding %s: %s", JAIL_NS_TAP, strerror(-idx));
	if ((rc = jail_nl_addr_add(ns, idx, b->a.gw, 30, e)) || (rc = jail_nl_link_up(ns, idx, e)))
		return err_wrap(e, "tap %s", JAIL_NS_TAP);
	return jail_nl_route_default(ns, b->a.host_ip, e);
}

/* The builder thread: host socket, unshare, pin, then build from inside. */
static void *jail_net_build_thread(void *p)
{
	struct jail_net_build *b = p;
	struct jail_nl *host = NULL, *ns = NULL;
	int nsfd = -1, rc;
	char self[64];
	if ((rc = jail_nl_open(&host, b->e)))
		goto out;
	if (unshare(CLONE_NEWNET)) {
		rc = err_set(b->e, -errno, "creating the VM's network namespace: %s", strerror(errno));
		goto out;
	}
	/* /proc/self/ns/net is the main thread's: name this thread's. */
	snprintf(self, sizeof(self), "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
	if (mount(self, b->n->netns_path, "none", MS_BIND, NULL)) {
		rc = err_set(b->e, -errno, "pinning netns %s: %s", b->n->netns_path, strerror(errno));
		goto out;
	}
	b->pinned = 1;
	nsfd = open(self, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		rc = err_set(b->e, -errno, "opening %s: %s", self, strerror(errno));
		goto out;
	}
	if ((rc = jail_nl_open(&ns, b->e)) || (rc = jail_net_links(b, host, ns, nsfd)) || (rc = jail_net_tap(b, ns)))
		goto out;
out:
	if (nsfd >= 0)
		close(nsfd);
	jail_nl_close(ns);
	jail_nl_close(host);
	return (void *)(intptr_t)rc;
}

int jail_net_create(const struct jail_names *n, const struct jail_net_allow *allow, size_t n_allow,
		    const struct jail_tap_owner *owner, int *tap_fd, struct err *e)
{
	*tap_fd = -1;
	if (!n->slot_claimed)
		return err_set(e, -EINVAL, "jail: the VM's address slot was not reserved (call jail_net_reserve first)");
	struct jail_net_build b = { .n = n, .allow = allow, .n_allow = n_allow, .owner = owner, .tap_fd = -1,
				    .e = e };
	jail_slot_addr(n->slot, &b.a);
	int rc = jail_netns_dir(e);
	if (rc)
		return rc;
	/* The mount point, made exclusively: an existing one is a leftover (gc)
	 * or a clash; either way not ours to remove. */
	int fd = open(n->netns_path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return err_set(e, -errno, "creating %s: %s%s", n->netns_path, strerror(errno),
			       errno == EEXIST ? " (hint: a leftover; run `ironclaw gc`)" : "");
	close(fd);
	pthread_t t;
	void *ret = NULL;
	if ((rc = pthread_create(&t, NULL, jail_net_build_thread, &b)))
		rc = err_set(e, -rc, "starting the netns builder thread: %s", strerror(rc));
	else if (!pthread_join(t, &ret))
		rc = (int)(intptr_t)ret;
	if (rc == 0 && owner) {
		/* Persistent: it stays, in the netns, for its owner to attach. */
		close(b.tap_fd);
		return 0;
	}
	if (rc == 0) {
		*tap_fd = b.tap_fd;
		return 0;
	}
	if (b.tap_fd >= 0)
		close(b.tap_fd);
	if (b.veth_made) {
		struct jail_nl *host = NULL;
		if (jail_nl_open(&host, NULL) == 0) {
			jail_nl_link_del(host, n->veth_host, NULL);
			jail_nl_close(host);
		}
	}
	jail_netns_delete(n->netns, NULL);
	return rc;
}

int jail_net_remove(const struct jail_names *n, struct err *e)
{
	/* Deleting the host end takes its peer (and so nothing is left to route)
	 * synchronously; the netns and the table in it go with the last
	 * reference, which the unmount drops. */
	struct jail_nl *host = NULL;
	int rc = jail_nl_open(&host, e);
	if (!rc) {
		rc = jail_nl_link_del(host, n->veth_host, e);
		jail_nl_close(host);
	}
	int r2 = jail_netns_delete(n->netns, rc ? NULL : e);
	return rc ? rc : r2;
}
