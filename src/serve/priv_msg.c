/* The wire between serve's two processes (priv.h): one fixed-size message per
 * SOCK_SEQPACKET datagram, at most one descriptor with it. Receiving checks
 * the shape every message has (size by type, magic, len, id) before anyone
 * looks at a field; the meaning of the fields is the receiver's to check. */
#include "serve/priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

size_t priv_msg_size(uint32_t type)
{
	switch (type) {
	case PRIV_PREPARE:
	case PRIV_NET_RESERVE:
	case PRIV_DISCARD:
	case PRIV_KILL:
	case PRIV_DESTROY:
		return sizeof(struct priv_msg_id);
	case PRIV_SCRATCH:
		return sizeof(struct priv_msg_scratch);
	case PRIV_CONNECT:
	case PRIV_OPEN_LOG:
		return sizeof(struct priv_msg_file);
	case PRIV_REPLY:
		return sizeof(struct priv_msg_reply);
	case PRIV_SPAWN:
		return sizeof(struct priv_msg_spawn);
	case PRIV_SPAWNED:
		return sizeof(struct priv_msg_spawned);
	case PRIV_EXITED:
		return sizeof(struct priv_msg_exited);
	case PRIV_DESTROYED:
		return sizeof(struct priv_msg_destroyed);
	default:
		return 0;
	}
}

_Static_assert(sizeof(struct priv_msg_spawn) < PRIV_MSG_MAX, "PRIV_MSG_MAX");

void priv_msg_init(struct priv_hdr *h, uint32_t type, const char *id)
{
	size_t n = priv_msg_size(type);
	memset(h, 0, n);
	h->magic = PRIV_MAGIC;
	h->type = type;
	h->len = (uint32_t)n;
	snprintf(h->id, sizeof(h->id), "%s", id ? id : "");
}

int priv_msg_send(int sock, const void *msg, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* Takes the first descriptor of a message; closes any others. */
static int priv_msg_take_fds(struct msghdr *mh)
{
	int kept = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (kept < 0)
				kept = fd;
			else
				close(fd);
		}
	}
	return kept;
}

ssize_t priv_msg_recv(int sock, void *buf, int *fd, char *why, size_t why_len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = PRIV_MSG_MAX };
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	*fd = -1;
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return 0;
	*fd = priv_msg_take_fds(&mh);
	const struct priv_hdr *h = buf;
	const char *bad = NULL;
	size_t want = n >= (ssize_t)sizeof(*h) ? priv_msg_size(h->type) : 0;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		bad = "truncated (larger than any message, or too many descriptors)";
	else if ((size_t)n < sizeof(*h))
		bad = "shorter than a header";
	else if (h->magic != PRIV_MAGIC)
		bad = "bad magic";
	else if (!want)
		bad = "unknown type";
	else if ((size_t)n != want)
		bad = "wrong size for its type";
	else if (h->len != want)
		bad = "len does not match the size";
	else if (!memchr(h->id, '\0', sizeof(h->id)))
		bad = "id not NUL-terminated";
	if (bad) {
		snprintf(why, why_len, "message of %zd bytes, type %u: %s", n,
			 (size_t)n >= sizeof(*h) ? h->type : 0u, bad);
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EPROTO;
	}
	return n;
}
