/* A vhost-user vsock device for tests: see vhost_vsock.h.
 *
 * One child process, one poll() loop (test code: blocking is its own business,
 * nothing here runs on a caller's libuv loop). Pieces:
 *   vhost-user  the frontend (QEMU) connects to vhost_sock and configures us:
 *               features, the guest memory table (memfds, mmap'ed here), the
 *               three virtqueues (rx 0, tx 1, event 2), their kick/call
 *               eventfds, and reads the config (guest_cid).
 *   virtqueues  split rings, no indirect descriptors, no event index: we take
 *               the guest's tx buffers as packets, fill its rx buffers with ours.
 *   vsock       virtio-vsock packets (REQUEST, RESPONSE, RST, SHUTDOWN, RW,
 *               CREDIT_UPDATE, CREDIT_REQUEST) with credit flow control.
 *   hybrid      Firecracker's host side: `CONNECT <port>\n` on uds_path, answered
 *               `OK <local port>\n` once the guest accepts, the connection closed
 *               when it refuses; guest-initiated connections to host port P are
 *               forwarded to uds_path_P.
 * Modes for fault tests: VHOST_VSOCK_COALESCE_OK holds the OK line back and
 * writes it together with the guest's first bytes (one read on the host);
 * VHOST_VSOCK_RESET_AFTER(n) resets the connection after n guest bytes. */
#include "vhost_vsock.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* vhost-user requests used by QEMU's vhost-user-vsock-device. */
enum {
	VU_GET_FEATURES = 1, VU_SET_FEATURES = 2, VU_SET_OWNER = 3, VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5, VU_SET_VRING_NUM = 8, VU_SET_VRING_ADDR = 9, VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11, VU_SET_VRING_KICK = 12, VU_SET_VRING_CALL = 13, VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15, VU_SET_PROTOCOL_FEATURES = 16, VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18, VU_GET_CONFIG = 24, VU_SET_CONFIG = 25,
};
#define VU_VERSION 0x1u
#define VU_REPLY 0x4u
#define VU_F_PROTOCOL_FEATURES (1ull << 30)
#define VIRTIO_F_VERSION_1 (1ull << 32)
#define VU_PROTOCOL_F_CONFIG (1ull << 9)
#define VU_MAX_REGIONS 8

struct vu_region { uint64_t gpa, size, uva, off; };
struct vu_msg {
	uint32_t req, flags, size;
	union {
		uint64_t u64;
		struct { uint32_t index, num; } state;
		struct { uint32_t index, flags; uint64_t desc, used, avail, log; } addr;
		struct { uint32_t n, pad; struct vu_region r[VU_MAX_REGIONS]; } mem;
		struct { uint32_t offset, size, flags; uint8_t region[256]; } cfg;
	} p;
} __attribute__((packed));

struct vring_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

struct vq {
	unsigned num;
	struct vring_desc *desc;
	uint16_t *avail;         /* flags, idx, ring[num] */
	uint16_t *used;          /* flags, idx, then {u32 id, u32 len}[num] */
	uint16_t last_avail, used_idx;
	int kick, call;
	int ready;
};

/* virtio-vsock packet header (little-endian, packed: 44 bytes). */
struct vs_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };
#define VS_TYPE_STREAM 1
#define HOST_CID 2
#define BUF_ALLOC (256u * 1024)
#define PKT_MAX (64u * 1024)

struct pkt {
	struct vs_hdr h;
	uint8_t *data;
	struct pkt *next;
};

enum conn_state { C_CONNECT_LINE, C_REQUESTED, C_OPEN };
#define CONNS_MAX 16

struct conn {
	int fd;                   /* host side (Unix); -1: free slot */
	enum conn_state st;
	uint32_t local, peer;     /* host port, guest port */
	char line[32];
	size_t line_len;
	uint32_t peer_buf, peer_fwd, tx_cnt;   /* the guest's credit, bytes we sent */
	uint32_t fwd_cnt, fwd_reported;        /* bytes we took from the guest */
	int ok_pending;           /* COALESCE_OK: OK line not written yet */
	uint64_t guest_bytes;
};

struct dev {
	int vu_fd, listen_fd;
	struct vu_region regions[VU_MAX_REGIONS];
	uint8_t *maps[VU_MAX_REGIONS];
	uint64_t map_len[VU_MAX_REGIONS];
	unsigned n_regions;
	struct vq q[3];
	uint64_t cid;
	char uds[108];
	struct conn c[CONNS_MAX];
	struct pkt *out, **out_tail;
	size_t n_out;
	uint32_t next_port;
	int mode;
	uint64_t reset_after;
};

static void *gpa_to_va(struct dev *d, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < d->n_regions; i++) {
		struct vu_region *r = &d->regions[i];
		if (gpa >= r->gpa && gpa + len <= r->gpa + r->size)
			return d->maps[i] + r->off + (gpa - r->gpa);
	}
	return NULL;
}

static void *uva_to_va(struct dev *d, uint64_t uva)
{
	for (unsigned i = 0; i < d->n_regions; i++) {
		struct vu_region *r = &d->regions[i];
		if (uva >= r->uva && uva < r->uva + r->size)
			return d->maps[i] + r->off + (uva - r->uva);
	}
	return NULL;
}

/* ---- vhost-user ---- */

static int vu_recv(struct dev *d, struct vu_msg *m, int *fds, int *nfds)
{
	struct iovec iov = { m, 12 };
	char cbuf[CMSG_SPACE(sizeof(int) * VU_MAX_REGIONS)];
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(d->vu_fd, &mh, MSG_CMSG_CLOEXEC);
	if (n != 12)
		return -1;
	*nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			*nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)*nfds);
		}
	if (m->size > sizeof(m->p))
		return -1;
	size_t got = 0;
	while (got < m->size) {
		n = read(d->vu_fd, (char *)&m->p + got, m->size - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void vu_reply(struct dev *d, struct vu_msg *m, uint32_t size)
{
	m->flags = VU_VERSION | VU_REPLY;
	m->size = size;
	if (write(d->vu_fd, m, 12 + size) < 0)
		_exit(20);
}

static void vq_signal(struct vq *q)
{
	uint64_t one = 1;
	if (q->call >= 0 && write(q->call, &one, sizeof(one)) < 0)
		return;
}

static int vu_handle(struct dev *d)
{
	struct vu_msg m;
	int fds[VU_MAX_REGIONS], nfds = 0;
	if (vu_recv(d, &m, fds, &nfds) < 0)
		return -1;
	struct vq *q = m.p.state.index < 3 ? &d->q[m.p.state.index] : NULL;
	switch (m.req) {
	case VU_GET_FEATURES:
		m.p.u64 = VIRTIO_F_VERSION_1 | VU_F_PROTOCOL_FEATURES;
		vu_reply(d, &m, 8);
		break;
	case VU_GET_PROTOCOL_FEATURES:
		m.p.u64 = VU_PROTOCOL_F_CONFIG;
		vu_reply(d, &m, 8);
		break;
	case VU_GET_QUEUE_NUM:
		m.p.u64 = 3;
		vu_reply(d, &m, 8);
		break;
	case VU_GET_CONFIG:
		memset(m.p.cfg.region, 0, sizeof(m.p.cfg.region));
		if (m.p.cfg.offset == 0 && m.p.cfg.size >= 8)
			memcpy(m.p.cfg.region, &d->cid, 8);
		vu_reply(d, &m, m.size);
		break;
	case VU_SET_MEM_TABLE:
		for (unsigned i = 0; i < d->n_regions; i++)
			munmap(d->maps[i], d->map_len[i]);
		d->n_regions = m.p.mem.n < (unsigned)nfds ? m.p.mem.n : (unsigned)nfds;
		for (unsigned i = 0; i < d->n_regions; i++) {
			d->regions[i] = m.p.mem.r[i];
			d->map_len[i] = d->regions[i].size + d->regions[i].off;
			d->maps[i] = mmap(NULL, d->map_len[i], PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
			close(fds[i]);
			if (d->maps[i] == MAP_FAILED)
				_exit(21);
		}
		break;
	case VU_SET_VRING_NUM:
		if (q)
			q->num = m.p.state.num;
		break;
	case VU_SET_VRING_ADDR:
		q = m.p.addr.index < 3 ? &d->q[m.p.addr.index] : NULL;
		if (q) {
			q->desc = uva_to_va(d, m.p.addr.desc);
			q->avail = uva_to_va(d, m.p.addr.avail);
			q->used = uva_to_va(d, m.p.addr.used);
			q->used_idx = q->used ? q->used[1] : 0;
		}
		break;
	case VU_SET_VRING_BASE:
		if (q)
			q->last_avail = (uint16_t)m.p.state.num;
		break;
	case VU_GET_VRING_BASE:
		if (q) {
			q->ready = 0;
			m.p.state.num = q->last_avail;
		}
		vu_reply(d, &m, 8);
		break;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR: {
		unsigned idx = (unsigned)(m.p.u64 & 0xff);
		int fd = nfds ? fds[0] : -1;
		if (idx >= 3) {
			if (fd >= 0)
				close(fd);
			break;
		}
		if (m.req == VU_SET_VRING_KICK) {
			if (d->q[idx].kick >= 0)
				close(d->q[idx].kick);
			d->q[idx].kick = fd;
		} else if (m.req == VU_SET_VRING_CALL) {
			if (d->q[idx].call >= 0)
				close(d->q[idx].call);
			d->q[idx].call = fd;
		} else if (fd >= 0) {
			close(fd);
		}
		break;
	}
	case VU_SET_VRING_ENABLE:
		if (q)
			q->ready = (int)m.p.state.num;
		break;
	default:   /* SET_FEATURES, SET_OWNER, SET_PROTOCOL_FEATURES, ...: nothing to keep */
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		break;
	}
	return 0;
}

/* ---- packets to the guest ---- */

static void out_push(struct dev *d, struct conn *c, uint16_t op, uint32_t flags, const void *data, uint32_t len)
{
	struct pkt *p = calloc(1, sizeof(*p));
	p->h = (struct vs_hdr){ .src_cid = HOST_CID, .dst_cid = d->cid, .src_port = c->local, .dst_port = c->peer,
				.len = len, .type = VS_TYPE_STREAM, .op = op, .flags = flags, .buf_alloc = BUF_ALLOC,
				.fwd_cnt = c->fwd_cnt };
	if (len) {
		p->data = malloc(len);
		memcpy(p->data, data, len);
	}
	c->fwd_reported = c->fwd_cnt;
	if (op == OP_RW)
		c->tx_cnt += len;
	*d->out_tail = p;
	d->out_tail = &p->next;
	d->n_out++;
}

static void rst_to(struct dev *d, const struct vs_hdr *h)
{
	struct conn tmp = { .local = h->dst_port, .peer = h->src_port };
	out_push(d, &tmp, OP_RST, 0, NULL, 0);
}

/* Fills the guest's rx buffers with queued packets. */
static void rx_flush(struct dev *d)
{
	struct vq *q = &d->q[0];
	int signalled = 0;
	while (d->out && q->ready && q->avail && q->last_avail != __atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE)) {
		struct pkt *p = d->out;
		uint16_t head = q->avail[2 + q->last_avail % q->num];
		const uint8_t *src[2] = { (const uint8_t *)&p->h, p->data };
		size_t left[2] = { sizeof(p->h), p->h.len };
		uint32_t total = 0;
		for (uint16_t i = head;;) {
			struct vring_desc *ds = &q->desc[i];
			uint8_t *dst = gpa_to_va(d, ds->addr, ds->len);
			size_t room = dst && (ds->flags & VRING_DESC_F_WRITE) ? ds->len : 0;
			for (int s = 0; s < 2 && room; s++) {
				size_t n = left[s] < room ? left[s] : room;
				memcpy(dst, src[s], n);
				dst += n, src[s] += n, left[s] -= n, room -= n, total += (uint32_t)n;
			}
			if (!(ds->flags & VRING_DESC_F_NEXT))
				break;
			i = ds->next;
		}
		if (left[0] || left[1])
			_exit(22);   /* the guest's rx buffers are sized for 64 KiB packets */
		q->last_avail++;
		uint32_t *ue = (uint32_t *)(q->used + 2) + 2 * (q->used_idx % q->num);
		ue[0] = head;
		ue[1] = total;
		q->used_idx++;
		__atomic_store_n(&q->used[1], q->used_idx, __ATOMIC_RELEASE);
		signalled = 1;
		d->out = p->next;
		if (!d->out)
			d->out_tail = &d->out;
		d->n_out--;
		free(p->data);
		free(p);
	}
	if (signalled)
		vq_signal(q);
}

/* ---- packets from the guest ---- */

static struct conn *conn_find(struct dev *d, uint32_t local, uint32_t peer)
{
	for (int i = 0; i < CONNS_MAX; i++)
		if (d->c[i].fd >= 0 && d->c[i].local == local && d->c[i].peer == peer)
			return &d->c[i];
	return NULL;
}

static struct conn *conn_new(struct dev *d, int fd)
{
	for (int i = 0; i < CONNS_MAX; i++)
		if (d->c[i].fd < 0) {
			memset(&d->c[i], 0, sizeof(d->c[i]));
			d->c[i].fd = fd;
			return &d->c[i];
		}
	close(fd);
	return NULL;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void host_write(struct conn *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

static void guest_packet(struct dev *d, const struct vs_hdr *h, const uint8_t *data)
{
	if (h->type != VS_TYPE_STREAM || h->dst_cid != HOST_CID)
		return;
	struct conn *c = conn_find(d, h->dst_port, h->src_port);
	if (c) {
		c->peer_buf = h->buf_alloc;
		c->peer_fwd = h->fwd_cnt;
	}
	switch (h->op) {
	case OP_REQUEST: {
		/* Guest-initiated: forward to <uds>_<port>, as Firecracker does. */
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		if (snprintf(a.sun_path, sizeof(a.sun_path), "%.90s_%u", d->uds, h->dst_port) < 0)
			break;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			if (fd >= 0)
				close(fd);
			rst_to(d, h);
			break;
		}
		c = conn_new(d, fd);
		if (!c) {
			rst_to(d, h);
			break;
		}
		c->st = C_OPEN;
		c->local = h->dst_port;
		c->peer = h->src_port;
		c->peer_buf = h->buf_alloc;
		c->peer_fwd = h->fwd_cnt;
		out_push(d, c, OP_RESPONSE, 0, NULL, 0);
		break;
	}
	case OP_RESPONSE:
		if (c && c->st == C_REQUESTED) {
			c->st = C_OPEN;
			if (d->mode & VHOST_VSOCK_COALESCE_OK) {
				c->ok_pending = 1;
			} else {
				char ok[32];
				int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local);
				host_write(c, ok, (size_t)n);
			}
		}
		break;
	case OP_RW:
		if (!c || c->st != C_OPEN)
			break;
		if (c->ok_pending) {
			/* The OK line and the guest's first bytes in one write. */
			uint8_t buf[64 + PKT_MAX];
			int n = snprintf((char *)buf, 64, "OK %u\n", c->local);
			memcpy(buf + n, data, h->len);
			host_write(c, buf, (size_t)n + h->len);
			c->ok_pending = 0;
		} else if (d->reset_after && c->guest_bytes + h->len > d->reset_after) {
			/* Reset mid-stream: forward part, then drop both sides. */
			host_write(c, data, (size_t)(d->reset_after - c->guest_bytes));
			out_push(d, c, OP_RST, 0, NULL, 0);
			conn_close(c);
			break;
		} else {
			host_write(c, data, h->len);
		}
		c->guest_bytes += h->len;
		c->fwd_cnt += h->len;
		if (c->fwd_cnt - c->fwd_reported > BUF_ALLOC / 4)
			out_push(d, c, OP_CREDIT_UPDATE, 0, NULL, 0);
		break;
	case OP_CREDIT_REQUEST:
		if (c)
			out_push(d, c, OP_CREDIT_UPDATE, 0, NULL, 0);
		break;
	case OP_SHUTDOWN:
	case OP_RST:
		if (c) {
			if (h->op == OP_SHUTDOWN)
				out_push(d, c, OP_RST, 0, NULL, 0);
			conn_close(c);   /* a refused port: the host sees EOF, as with Firecracker */
		}
		break;
	default:
		break;
	}
}

static void tx_drain(struct dev *d)
{
	struct vq *q = &d->q[1];
	static uint8_t buf[sizeof(struct vs_hdr) + PKT_MAX];
	int signalled = 0;
	while (q->ready && q->avail && q->last_avail != __atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE)) {
		uint16_t head = q->avail[2 + q->last_avail % q->num];
		size_t got = 0;
		for (uint16_t i = head;;) {
			struct vring_desc *ds = &q->desc[i];
			uint8_t *src = gpa_to_va(d, ds->addr, ds->len);
			size_t n = src && ds->len <= sizeof(buf) - got ? ds->len : 0;
			memcpy(buf + got, src, n);
			got += n;
			if (!(ds->flags & VRING_DESC_F_NEXT))
				break;
			i = ds->next;
		}
		q->last_avail++;
		uint32_t *ue = (uint32_t *)(q->used + 2) + 2 * (q->used_idx % q->num);
		ue[0] = head;
		ue[1] = 0;
		q->used_idx++;
		__atomic_store_n(&q->used[1], q->used_idx, __ATOMIC_RELEASE);
		signalled = 1;
		if (got >= sizeof(struct vs_hdr)) {
			struct vs_hdr h;
			memcpy(&h, buf, sizeof(h));
			if (h.len <= got - sizeof(h))
				guest_packet(d, &h, buf + sizeof(h));
		}
	}
	if (signalled)
		vq_signal(q);
}

/* ---- the host side ---- */

static void host_readable(struct dev *d, struct conn *c)
{
	if (c->st == C_CONNECT_LINE) {
		/* One byte at a time: nothing after the line is ours to take. */
		char ch;
		ssize_t n = recv(c->fd, &ch, 1, 0);
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->line[c->line_len++] = ch;
		if (ch != '\n') {
			if (c->line_len >= sizeof(c->line) - 1)
				conn_close(c);
			return;
		}
		c->line[c->line_len] = '\0';
		unsigned port;
		if (sscanf(c->line, "CONNECT %u\n", &port) != 1) {
			conn_close(c);
			return;
		}
		c->peer = port;
		c->local = d->next_port++;
		c->st = C_REQUESTED;
		c->peer_buf = 0;
		out_push(d, c, OP_REQUEST, 0, NULL, 0);
		return;
	}
	uint32_t credit = c->peer_buf - (c->tx_cnt - c->peer_fwd);
	if (credit == 0 || credit > c->peer_buf) {
		out_push(d, c, OP_CREDIT_REQUEST, 0, NULL, 0);
		return;
	}
	static uint8_t buf[PKT_MAX];
	size_t want = credit < sizeof(buf) ? credit : sizeof(buf);
	ssize_t n = recv(c->fd, buf, want, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		out_push(d, c, OP_SHUTDOWN, 3, NULL, 0);
		conn_close(c);
		return;
	}
	if (n > 0)
		out_push(d, c, OP_RW, 0, buf, (uint32_t)n);
}

static void drain_eventfd(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
}

static void dev_run(struct dev *d)
{
	for (;;) {
		struct pollfd p[4 + CONNS_MAX];
		int n = 0;
		p[n++] = (struct pollfd){ .fd = d->vu_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = d->q[1].kick, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = d->q[0].kick, .events = POLLIN };
		int conn_at[CONNS_MAX];
		for (int i = 0; i < CONNS_MAX; i++) {
			struct conn *c = &d->c[i];
			conn_at[i] = -1;
			int wants = c->fd >= 0 && (c->st == C_CONNECT_LINE || (c->st == C_OPEN && d->n_out < 64 &&
										  c->peer_buf > c->tx_cnt - c->peer_fwd));
			if (wants) {
				conn_at[i] = n;
				p[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
			}
		}
		if (poll(p, (nfds_t)n, 50) < 0 && errno != EINTR)
			_exit(23);
		if (p[0].revents && vu_handle(d) < 0)
			_exit(0);   /* QEMU went away */
		if (p[1].revents & POLLIN) {
			int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				struct conn *c = conn_new(d, fd);
				if (c)
					c->st = C_CONNECT_LINE;
			}
		}
		if (d->q[1].kick >= 0 && (p[2].revents & POLLIN))
			drain_eventfd(d->q[1].kick);
		if (d->q[0].kick >= 0 && (p[3].revents & POLLIN))
			drain_eventfd(d->q[0].kick);
		tx_drain(d);
		for (int i = 0; i < CONNS_MAX; i++)
			if (conn_at[i] >= 0 && (p[conn_at[i]].revents & (POLLIN | POLLHUP)) && d->c[i].fd >= 0)
				host_readable(d, &d->c[i]);
		rx_flush(d);
	}
}

pid_t vhost_vsock_start(const char *vhost_sock, const char *uds_path, uint64_t guest_cid, int mode,
			uint64_t reset_after)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX }, b = { .sun_family = AF_UNIX };
	if (strlen(vhost_sock) >= sizeof(a.sun_path) || strlen(uds_path) + 12 >= sizeof(b.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, vhost_sock);
	strcpy(b.sun_path, uds_path);
	int vl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int hl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(vhost_sock);
	unlink(uds_path);
	if (vl < 0 || hl < 0 || bind(vl, (struct sockaddr *)&a, sizeof(a)) || listen(vl, 1) ||
	    bind(hl, (struct sockaddr *)&b, sizeof(b)) || listen(hl, 8)) {
		int rc = -errno;
		close(vl);
		close(hl);
		return rc;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0) {
		close(vl);
		close(hl);
		return pid < 0 ? -errno : pid;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	static struct dev d;
	d.listen_fd = hl;
	d.cid = guest_cid;
	d.mode = mode;
	d.reset_after = reset_after;
	d.next_port = 1u << 30;
	snprintf(d.uds, sizeof(d.uds), "%s", uds_path);
	d.out_tail = &d.out;
	for (int i = 0; i < 3; i++)
		d.q[i].kick = d.q[i].call = -1;
	for (int i = 0; i < CONNS_MAX; i++)
		d.c[i].fd = -1;
	/* QEMU (the vhost-user frontend) connects once, at its start. */
	d.vu_fd = accept4(vl, NULL, NULL, SOCK_CLOEXEC);
	if (d.vu_fd < 0)
		_exit(24);
	close(vl);
	dev_run(&d);
	_exit(0);
}

void vhost_vsock_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}
