/* rtnetlink over libmnl: the handful of requests a VM's network needs (veth
 * pair, link up, address, default route, link lookup and delete).
 *
 * A netlink socket belongs to the netns its creating thread was in, so a
 * caller opens one socket per netns it works on. Every request asks for an
 * ACK and waits for it, so a failure is reported with the kernel's errno at
 * the request that caused it. Requests and replies live in one fixed buffer
 * per socket (no allocation per request). */
#include "jail/jail_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct jail_nl {
	struct mnl_socket *sk;
	unsigned portid;
	unsigned seq;
	char buf[8192];   /* MNL_SOCKET_BUFFER_SIZE is a runtime value; 8 KiB fits our replies */
};

int jail_nl_open(struct jail_nl **out, struct err *e)
{
	*out = NULL;
	struct jail_nl *nl = calloc(1, sizeof(*nl));
	if (!nl)
		return err_set(e, -ENOMEM, "netlink: out of memory");
	nl->sk = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sk || mnl_socket_bind(nl->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		int rc = -errno;
		if (nl->sk)
			mnl_socket_close(nl->sk);
		free(nl);
		return err_set(e, rc, "opening a netlink socket: %s", strerror(-rc));
	}
	nl->portid = mnl_socket_get_portid(nl->sk);
	nl->seq = (unsigned)time(NULL);
	*out = nl;
	return 0;
}

void jail_nl_close(struct jail_nl *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sk);
	free(nl);
}

static struct nlmsghdr *jail_nl_msg(struct jail_nl *nl, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(nl->buf);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	h->nlmsg_seq = ++nl->seq;
	return h;
}

/* Sends h and reads until its ACK; cb (may be NULL) sees data replies.
 * Returns 0 or the kernel's negative errno. */
static int jail_nl_talk(struct jail_nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
	unsigned seq = h->nlmsg_seq;
	if (mnl_socket_sendto(nl->sk, h, h->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sk, nl->buf, sizeof(nl->buf));
		if (n < 0)
			return errno == EINTR ? -EINTR : -errno;
		int rc = mnl_cb_run(nl->buf, (size_t)n, seq, nl->portid, cb, data);
		if (rc <= MNL_CB_STOP)
			return rc < 0 ? -errno : 0;
	}
}

static int jail_nl_fail(struct err *e, int rc, const char *what, const char *name)
{
	return err_set(e, rc, "netlink: %s %s: %s", what, name, strerror(-rc));
}

static int jail_nl_index_cb(const struct nlmsghdr *h, void *data)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
	*(int *)data = ifi->ifi_index;
	return MNL_CB_OK;
}

int jail_nl_link_index(struct jail_nl *nl, const char *name)
{
	struct nlmsghdr *h = jail_nl_msg(nl, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	int index = 0;
	int rc = jail_nl_talk(nl, h, jail_nl_index_cb, &index);
	if (rc)
		return rc;
	return index > 0 ? index : -ENODEV;
}

int jail_nl_link_up(struct jail_nl *nl, int ifindex, struct err *e)
{
	struct nlmsghdr *h = jail_nl_msg(nl, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	int rc = jail_nl_talk(nl, h, NULL, NULL);
	return rc ? err_set(e, rc, "netlink: bringing up link %d: %s", ifindex, strerror(-rc)) : 0;
}

int jail_nl_veth_add(struct jail_nl *nl, const char *name, const char *peer, int peer_ns_fd, struct err *e)
{
	struct nlmsghdr *h = jail_nl_msg(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	struct nlattr *linkinfo = mnl_attr_nest_start(h, IFLA_LINKINFO);
	mnl_attr_put_strz(h, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
	struct nlattr *peer_nest = mnl_attr_nest_start(h, VETH_INFO_PEER);
	/* The peer is an ifinfomsg followed by its own attributes. */
	struct ifinfomsg *pifi = mnl_nlmsg_put_extra_header(h, sizeof(*pifi));
	memset(pifi, 0, sizeof(*pifi));
	pifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, peer);
	mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)peer_ns_fd);
	mnl_attr_nest_end(h, peer_nest);
	mnl_attr_nest_end(h, data);
	mnl_attr_nest_end(h, linkinfo);
	int rc = jail_nl_talk(nl, h, NULL, NULL);
	return rc ? jail_nl_fail(e, rc, "creating the veth pair", name) : 0;
}

int jail_nl_link_del(struct jail_nl *nl, const char *name, struct err *e)
{
	struct nlmsghdr *h = jail_nl_msg(nl, RTM_DELLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(h, IFLA_IFNAME, name);
	int rc = jail_nl_talk(nl, h, NULL, NULL);
	if (rc == -ENODEV)
		return 0;
	return rc ? jail_nl_fail(e, rc, "deleting link", name) : 0;
}

int jail_nl_addr_add(struct jail_nl *nl, int ifindex, uint32_t ip, unsigned prefix, struct err *e)
{
	struct nlmsghdr *h = jail_nl_msg(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = (unsigned)ifindex;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	uint32_t be = htonl(ip);
	mnl_attr_put_u32(h, IFA_LOCAL, be);
	mnl_attr_put_u32(h, IFA_ADDRESS, be);
	if (prefix < 31) {
		uint32_t bcast = htonl(ip | (prefix ? 0xffffffffu >> prefix : 0xffffffffu));
		mnl_attr_put_u32(h, IFA_BROADCAST, bcast);
	}
	int rc = jail_nl_talk(nl, h, NULL, NULL);
	return rc ? err_set(e, rc, "netlink: adding an address to link %d: %s", ifindex, strerror(-rc)) : 0;
}

int jail_nl_route_default(struct jail_nl *nl, uint32_t gw, struct err *e)
{
	struct nlmsghdr *h = jail_nl_msg(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
	struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = 0;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(h, RTA_GATEWAY, htonl(gw));
	int rc = jail_nl_talk(nl, h, NULL, NULL);
	return rc ? err_set(e, rc, "netlink: adding the default route: %s", strerror(-rc)) : 0;
}
