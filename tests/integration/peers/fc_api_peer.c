/* A stand-in for the `firecracker` process in the backend's failure tests
 * (tests/integration/test_fc_backend.c), run by the real launcher in the real
 * jail under Firecracker's seccomp policy, as `firecracker --api-sock PATH
 * --id ID` would be. It is static, like Firecracker's release builds.
 *
 * It serves Firecracker's API on PATH the way Firecracker answers (204 for
 * accepted configuration, 400 with fault_message), logs each request to
 * /run/vm/console.log (where the backend points Firecracker's logger), and
 * follows /run/vm/peer-script, read when the first request arrives:
 *   "die N"         exit(1) when request N arrives, logging the monotonic time
 *                   of its exit first ("exit-at-ns <t>")
 *   "fault N MSG"   answer request N with 400 and fault_message MSG
 *   "hang"          accept and never answer
 * On PUT /boot-source it logs whether /vm/kernel and /vm/initramfs.cpio
 * open ("kernel readable"), and on its first request whether the file given
 * with --seccomp-filter opened when it started ("seccomp-filter readable").
 * On PUT /snapshot/load it logs what it sees of the snapshot bound at
 * /vm/snapshot ("snapshot vmstate=readable mem=readable writable=no").
 *
 * On PUT /network-interfaces it does what Firecracker does with the body's
 * host_dev_name (open /dev/net/tun, TUNSETIFF by name with IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR, TUNSETVNETHDRSZ 12) and logs each result
 * ("tap attach tap0: ok"), then tries what a compromised VMM would: create
 * another tap ("tap create tap1: ...") and attach to the tap named on a
 * script line "other NAME" ("tap other NAME: ..."), which the test makes,
 * owned by another uid, when it sees /run/vm/peer-waiting (then it writes
 * to the FIFO /run/vm/peer-go). Then it is the guest's
 * NIC: it resolves the gateway (the guest's address and gateway come from
 * the boot-source's ironclaw.ip= and ironclaw.gw=) with a real ARP request on
 * the tap, and sends one UDP datagram, with the payload "to ADDR:PORT", to
 * each "udp ADDR:PORT" line of the script (ADDR "host" is the host end of
 * the VM's veth, the gateway minus 4).
 *
 * Snapshots, as Firecracker does them: PUT /snapshot/create writes the two
 * files its body names (snapshot_path, mem_file_path), PATCH /vm is accepted.
 *
 * With a script line "guest", or without a script, it also plays the guest's end of the vsock
 * device once InstanceStart or /snapshot/load was accepted: it listens on
 * /run/vm/v.sock (the uds_path), answers `CONNECT 52` with `OK`, says
 * `hello` after a boot (not after a restore, as a restored agent does not),
 * answers `ping` and `vm.identity` as the guest agent does, and exits on
 * `shutdown` (the guest powering off) or SendCtrlAltDel. It runs no
 * commands: exec through a real guest is the real-binary test's. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void logf_line(const char *what, const char *detail)
{
	FILE *f = fopen("/run/vm/console.log", "a");
	if (!f)
		return;
	fprintf(f, "fc-peer: %s %s\n", what, detail);
	fclose(f);
}

/* ---- the NIC, as Firecracker and then the guest use it ---- */

#define VNET_HDR 12   /* Firecracker's TUNSETVNETHDRSZ */

static uint32_t guest_ip, gw_ip;   /* network byte order, from the boot args */
static unsigned char guest_mac[6];

static int tap_attach(const char *name)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static void log_result(const char *what, const char *name, int rc)
{
	char d[128];
	snprintf(d, sizeof(d), "%s: %s", name, rc >= 0 ? "ok" : strerror(-rc));
	logf_line(what, d);
}

static uint16_t ip_sum(const unsigned char *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* The gateway's MAC, from a real ARP exchange with the VM's netns. */
static int arp_gw(int fd, unsigned char gw_mac[6])
{
	unsigned char f[VNET_HDR + 42];
	memset(f, 0, sizeof(f));
	unsigned char *eth = f + VNET_HDR, *arp = eth + 14;
	memset(eth, 0xff, 6);
	memcpy(eth + 6, guest_mac, 6);
	eth[12] = 0x08, eth[13] = 0x06;
	static const unsigned char hdr[] = { 0, 1, 8, 0, 6, 4, 0, 1 };
	memcpy(arp, hdr, 8);
	memcpy(arp + 8, guest_mac, 6);
	memcpy(arp + 14, &guest_ip, 4);
	memcpy(arp + 24, &gw_ip, 4);
	for (int tries = 0; tries < 3; tries++) {
		if (write(fd, f, sizeof(f)) != (ssize_t)sizeof(f))
			return -errno;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		unsigned char in[2048];
		while (poll(&pf, 1, 1000) == 1) {
			ssize_t n = read(fd, in, sizeof(in));
			const unsigned char *ie = in + VNET_HDR, *ia = ie + 14;
			if (n >= VNET_HDR + 42 && ie[12] == 0x08 && ie[13] == 0x06 && ia[7] == 2 &&
			    !memcmp(ia + 14, &gw_ip, 4)) {
				memcpy(gw_mac, ia + 8, 6);
				return 0;
			}
		}
	}
	return -ETIMEDOUT;
}

static int udp_send(int fd, const unsigned char gw_mac[6], uint32_t dst, uint16_t port, const char *payload)
{
	unsigned char f[VNET_HDR + 14 + 20 + 8 + 64];
	size_t pl = strlen(payload) > 64 ? 64 : strlen(payload);
	memset(f, 0, sizeof(f));
	unsigned char *eth = f + VNET_HDR, *ip = eth + 14, *udp = ip + 20;
	memcpy(eth, gw_mac, 6);
	memcpy(eth + 6, guest_mac, 6);
	eth[12] = 0x08, eth[13] = 0x00;
	uint16_t tot = (uint16_t)(20 + 8 + pl);
	ip[0] = 0x45, ip[2] = (unsigned char)(tot >> 8), ip[3] = (unsigned char)tot, ip[8] = 64, ip[9] = 17;
	memcpy(ip + 12, &guest_ip, 4);
	memcpy(ip + 16, &dst, 4);
	uint16_t cs = ip_sum(ip, 20);
	ip[10] = (unsigned char)(cs >> 8), ip[11] = (unsigned char)cs;
	udp[0] = 40000 >> 8, udp[1] = 40000 & 0xff, udp[2] = (unsigned char)(port >> 8), udp[3] = (unsigned char)port;
	udp[4] = (unsigned char)((8 + pl) >> 8), udp[5] = (unsigned char)(8 + pl);   /* checksum 0: none (IPv4) */
	memcpy(udp + 8, payload, pl);
	size_t len = VNET_HDR + 14 + tot;
	return write(fd, f, len) == (ssize_t)len ? 0 : -errno;
}

static void net_setup(const char *req, const char *script)
{
	const char *body = strstr(req, "\r\n\r\n");
	char name[IFNAMSIZ] = "", mac[18] = "";
	const char *p = body ? strstr(body, "\"host_dev_name\"") : NULL;
	if (p)
		sscanf(p, "\"host_dev_name\": \"%15[^\"]\"", name);
	if (p && !name[0])
		sscanf(p, "\"host_dev_name\":\"%15[^\"]\"", name);
	p = body ? strstr(body, "\"guest_mac\"") : NULL;
	if (p && sscanf(p, "\"guest_mac\":%*[ ]\"%17[^\"]\"", mac) != 1)
		sscanf(p, "\"guest_mac\":\"%17[^\"]\"", mac);
	logf_line("nic", mac[0] ? mac : "(no guest_mac)");
	unsigned m[6];
	if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6)
		for (int i = 0; i < 6; i++)
			guest_mac[i] = (unsigned char)m[i];
	int fd = tap_attach(name);
	log_result("tap attach", name, fd);
	int fd2 = tap_attach("tap1");
	log_result("tap create", "tap1", fd2);
	if (fd2 >= 0)
		close(fd2);
	const char *o = strstr(script, "\nother ");
	if (o) {
		/* The test plants that tap (another uid's) once we are here: it
		 * sees /run/vm/peer-waiting appear and answers on the FIFO
		 * /run/vm/peer-go (opened read-write, so the read blocks until it
		 * writes). */
		int go = open("/run/vm/peer-go", O_RDWR | O_CLOEXEC);
		int mark = open("/run/vm/peer-waiting", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		char b;
		if (mark >= 0)
			close(mark);
		if (go < 0 || read(go, &b, 1) != 1)
			logf_line("wait", "no go from the test");
		if (go >= 0)
			close(go);
		char other[IFNAMSIZ] = "";
		sscanf(o + 7, "%15s", other);
		int fd3 = tap_attach(other);
		log_result("tap other", other, fd3);
		if (fd3 >= 0)
			close(fd3);
	}
	if (fd < 0)
		return;
	int hdr = VNET_HDR;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr))
		log_result("vnet hdr", name, -errno);
	unsigned char gw_mac[6];
	int rc = arp_gw(fd, gw_mac);
	log_result("arp", "gateway", rc);
	for (const char *u = strstr(script, "\nudp "); rc == 0 && u; u = strstr(u + 1, "\nudp ")) {
		char addr[32] = "";
		unsigned port = 0;
		if (sscanf(u + 5, "%31[^:]:%u", addr, &port) != 2)
			continue;
		uint32_t dst;
		if (!strcmp(addr, "host"))
			dst = htonl(ntohl(gw_ip) - 4);
		else if (inet_pton(AF_INET, addr, &dst) != 1)
			continue;
		char payload[64], where[40];
		snprintf(payload, sizeof(payload), "to %s:%u", addr, port);
		snprintf(where, sizeof(where), "%s:%u", addr, port);
		log_result("udp sent", where, udp_send(fd, gw_mac, dst, (uint16_t)port, payload));
	}
	close(fd);
}

static void boot_args_seen(const char *req)
{
	const char *ip = strstr(req, "ironclaw.ip="), *gw = strstr(req, "ironclaw.gw=");
	char a[20] = "", b[20] = "";
	if (ip)
		sscanf(ip + 12, "%19[0-9.]", a);
	if (gw)
		sscanf(gw + 12, "%19[0-9.]", b);
	inet_pton(AF_INET, a, &guest_ip);
	inet_pton(AF_INET, b, &gw_ip);
}

/* ---- the guest's end of the vsock device ("guest" in the script) ---- */

static int vs_listen = -1, vs_conn = -1, vs_booted;
static unsigned char vs_buf[65536];
static size_t vs_have;
static int vs_connected;   /* the CONNECT line was answered */

static void vs_start(int booted)
{
	if (vs_listen >= 0)
		return;
	vs_booted = booted;
	vs_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "/run/vm/v.sock");
	unlink(a.sun_path);
	if (vs_listen < 0 || bind(vs_listen, (struct sockaddr *)&a, sizeof(a)) || listen(vs_listen, 4))
		_exit(6);
	logf_line("guest", booted ? "booted" : "restored");
}

static void vs_send_json(const char *json)
{
	size_t n = strlen(json);
	unsigned char h[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
			       (unsigned char)n };
	if (write(vs_conn, h, 4) != 4 || write(vs_conn, json, n) != (ssize_t)n)
		_exit(7);
}

/* One JSON-RPC request from the host, answered as the guest agent does. */
static void vs_request(const char *msg)
{
	const char *idp = strstr(msg, "\"id\":");
	const char *mp = strstr(msg, "\"method\":\"");
	if (!idp || !mp)
		return;
	long long id = strtoll(idp + 5, NULL, 10);
	char method[64] = "";
	sscanf(mp + 10, "%63[^\"]", method);
	logf_line("guest request", method);
	char out[512];
	if (!strcmp(method, "vm.identity")) {
		/* The agent takes the entropy and echoes the names it set. */
		char host[64] = "", vmid[64] = "";
		const char *hp = strstr(msg, "\"hostname\":\""), *vp = strstr(msg, "\"vm_id\":\"");
		if (hp)
			sscanf(hp + 12, "%63[a-z0-9-]", host);
		if (vp)
			sscanf(vp + 9, "%63[a-z0-9-]", vmid);
		snprintf(out, sizeof(out),
			 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"entropy_bytes\":64,\"hostname\":\"%s\",\"vm_id\":\"%s\"}}",
			 id, host, vmid);
	} else if (!strcmp(method, "ping") || !strcmp(method, "shutdown"))
		snprintf(out, sizeof(out), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}", id);
	else
		snprintf(out, sizeof(out),
			 "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32601,\"message\":\"the stand-in runs nothing\"}}",
			 id);
	vs_send_json(out);
	if (!strcmp(method, "shutdown"))
		_exit(0);   /* the guest powered off: Firecracker exits */
}

static void vs_readable(void)
{
	ssize_t n = read(vs_conn, vs_buf + vs_have, sizeof(vs_buf) - 1 - vs_have);
	if (n <= 0) {
		close(vs_conn);
		vs_conn = -1;
		vs_have = 0;
		vs_connected = 0;
		return;
	}
	vs_have += (size_t)n;
	if (!vs_connected) {
		unsigned char *nl = memchr(vs_buf, '\n', vs_have);
		if (!nl)
			return;
		if (strncmp((char *)vs_buf, "CONNECT 52\n", 11)) {
			close(vs_conn);   /* nothing listens on that port: Firecracker closes */
			vs_conn = -1;
			vs_have = 0;
			return;
		}
		size_t used = (size_t)(nl + 1 - vs_buf);
		memmove(vs_buf, nl + 1, vs_have - used);
		vs_have -= used;
		vs_connected = 1;
		const char *ok = "OK 1073741824\n";
		if (write(vs_conn, ok, strlen(ok)) < 0)
			_exit(7);
		if (vs_booted)
			vs_send_json("{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":2,\"kernel\":\"fc-peer\"}}");
	}
	while (vs_have >= 4) {
		size_t len = (size_t)vs_buf[0] << 24 | (size_t)vs_buf[1] << 16 | (size_t)vs_buf[2] << 8 | vs_buf[3];
		if (len > sizeof(vs_buf) - 8)
			_exit(8);
		if (vs_have < 4 + len)
			return;
		char msg[65536];
		memcpy(msg, vs_buf + 4, len);
		msg[len] = '\0';
		memmove(vs_buf, vs_buf + 4 + len, vs_have - 4 - len);
		vs_have -= 4 + len;
		vs_request(msg);
	}
}

/* As Firecracker does on an accepted /snapshot/create: the two files it names. */
static void snapshot_write(const char *req)
{
	static const char *const keys[] = { "\"snapshot_path\":\"", "\"mem_file_path\":\"" };
	for (int i = 0; i < 2; i++) {
		const char *at = strstr(req, keys[i]);
		char path[256] = "";
		if (!at || sscanf(at + strlen(keys[i]), "%255[^\"]", path) != 1)
			continue;
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		const char *what = i ? "mem of the stand-in\n" : "vmstate of the stand-in\n";
		if (fd < 0 || write(fd, what, strlen(what)) < 0)
			logf_line("snapshot write failed", path);
		else
			logf_line("snapshot wrote", path);
		if (fd >= 0)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	const char *api = NULL, *filter_seen = NULL;
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--api-sock"))
			api = argv[i + 1];
		if (!strcmp(argv[i], "--seccomp-filter")) {
			/* Firecracker reads it as it starts. */
			int fd = open(argv[i + 1], O_RDONLY | O_CLOEXEC);
			filter_seen = fd >= 0 ? "readable" : "missing";
			if (fd >= 0)
				close(fd);
		}
	}
	if (!api)
		return 2;
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", api);
	unlink(api);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 8))
		return 3;
	char script[1024] = "";
	int loaded = 0, script_found = 0;
	for (int idx = 0;; idx++) {
		/* The API, and the guest's vsock end once it exists. */
		struct pollfd pf[3] = { { .fd = ls, .events = POLLIN }, { .fd = vs_listen, .events = POLLIN },
					{ .fd = vs_conn, .events = POLLIN } };
		if (poll(pf, 3, -1) < 0)
			return 4;
		if (pf[1].revents & POLLIN) {
			int c = accept4(vs_listen, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0 && vs_conn >= 0)
				close(c);   /* one connection at a time is all the host makes */
			else if (c >= 0)
				vs_conn = c;
		}
		if (pf[2].revents & (POLLIN | POLLHUP))
			vs_readable();
		if (!(pf[0].revents & POLLIN)) {
			idx--;
			continue;
		}
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return 4;
		if (!loaded++) {
			FILE *f = fopen("/run/vm/peer-script", "r");
			script_found = f != NULL;
			if (f) {
				/* The first line is the step script; later lines are for the NIC. */
				size_t got = fread(script, 1, sizeof(script) - 1, f);
				script[got] = '\0';
				fclose(f);
			}
		}
		char req[16384];
		size_t have = 0;
		while (have < sizeof(req) - 1) {
			ssize_t n = read(c, req + have, sizeof(req) - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			req[have] = '\0';
			char *end = strstr(req, "\r\n\r\n");
			char *cl = strcasestr(req, "content-length:");
			if (end && (!cl || have >= (size_t)(end + 4 - req) + strtoul(cl + 15, NULL, 10)))
				break;
		}
		req[have] = '\0';
		if (have == 0) {
			/* A connection that only checked the socket exists (the backend's). */
			close(c);
			idx--;
			continue;
		}
		char line[160];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(req, "\r\n"), req);
		logf_line("request", line);
		if (filter_seen && idx == 0)
			logf_line("seccomp-filter", filter_seen);
		if (!strncmp(line, "PUT /boot-source ", 17)) {
			/* As Firecracker does: the kernel and initrd are opened now. */
			int fk = open("/vm/kernel", O_RDONLY | O_CLOEXEC), fi = open("/vm/initramfs.cpio", O_RDONLY | O_CLOEXEC);
			logf_line("kernel", fk >= 0 && fi >= 0 ? "readable" : "missing");
			if (fk >= 0)
				close(fk);
			if (fi >= 0)
				close(fi);
		}
		if (!strncmp(line, "PUT /snapshot/load ", 19)) {
			/* open, not access: the VMM's seccomp policy has no access(2). */
			int fv = open("/vm/snapshot/vmstate", O_RDONLY | O_CLOEXEC);
			int fm = open("/vm/snapshot/mem", O_RDONLY | O_CLOEXEC);
			int fw = open("/vm/snapshot/mem", O_WRONLY | O_CLOEXEC);
			char seen[128];
			snprintf(seen, sizeof(seen), "vmstate=%s mem=%s writable=%s", fv >= 0 ? "readable" : "missing",
				 fm >= 0 ? "readable" : "missing", fw >= 0 ? "yes" : "no");
			if (fv >= 0)
				close(fv);
			if (fm >= 0)
				close(fm);
			if (fw >= 0)
				close(fw);
			logf_line("snapshot", seen);
		}
		if (!strncmp(line, "PUT /boot-source ", 17))
			boot_args_seen(req);
		if (!strncmp(line, "PUT /snapshot/create ", 21))
			snapshot_write(req);
		if (!strncmp(line, "PUT /network-interfaces/", 24))
			net_setup(req, script);
		int n_at = -1;
		char msg[200] = "";
		if (!strncmp(script, "hang", 4))
			for (;;)   /* keeps c open, never answers (pause() is not in the policy) */
				accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (sscanf(script, "die %d", &n_at) == 1 && n_at == idx) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			char t[64];
			snprintf(t, sizeof(t), "%lld", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
			logf_line("exit-at-ns", t);
			_exit(1);
		}
		const char *resp = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		char buf[512];
		if (sscanf(script, "fault %d %199[^\n]", &n_at, msg) == 2 && n_at == idx) {
			char body[300];
			int bl = snprintf(body, sizeof(body), "{\"fault_message\":\"%s\"}", msg);
			snprintf(buf, sizeof(buf),
				 "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
				 "Connection: close\r\n\r\n%s", bl, body);
			resp = buf;
		}
		if (send(c, resp, strlen(resp), MSG_NOSIGNAL) < 0)
			return 5;
		close(c);
		int accepted = resp[9] == '2';
		/* No script at all (a VM the test did not name beforehand, as a
		 * template build's) is a guest too. */
		int guest = !script_found || strstr(script, "\nguest") || !strncmp(script, "guest", 5);
		if (accepted && guest && !strncmp(line, "PUT /actions ", 13) &&
		    strstr(req, "InstanceStart"))
			vs_start(1);
		if (accepted && guest && !strncmp(line, "PUT /snapshot/load ", 19))
			vs_start(0);
		if (accepted && !strncmp(line, "PUT /actions ", 13) && strstr(req, "SendCtrlAltDel"))
			_exit(0);   /* x86: the guest resets, Firecracker exits */
	}
}
