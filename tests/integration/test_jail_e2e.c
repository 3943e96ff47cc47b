/* End to end through the real binary and the real QEMU: while `ironclaw exec`
 * runs a VM, its QEMU process is under the seccomp filter (Seccomp: 2), runs
 * as a non-root uid with no_new_privs in its own namespaces; from inside the
 * VM (busybox nc in the guest) a listener on the host is unreachable without
 * --net, and with `--net allow=ADDR:PORT` that port is reachable and another
 * is not. Needs root, QEMU and the default image (`make image`). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io.h"
#include "jail/jail_internal.h"
#include "lib/harness.h"

#define BOOT_BUDGET_MS 120000

/* An IPv4 address of this host that the guest would route to it: any global
 * one outside the VMs' own 100.64.0.0/10. */
static void host_addr(char out[INET_ADDRSTRLEN])
{
	struct ifaddrs *ifs, *i;
	out[0] = 0;
	cr_assert_eq(getifaddrs(&ifs), 0);
	for (i = ifs; i && !out[0]; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		uint32_t a = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		if ((a >> 24) == 127 || (a & 0xffc00000u) == 0x64400000u)
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, INET_ADDRSTRLEN);
	}
	freeifaddrs(ifs);
	if (!out[0]) {
		/* No global address (an isolated machine): give the host one on lo;
		 * packets for it that arrive on the VM's veth are delivered locally. */
		char *argv[] = { "/bin/sh", "-c", "ip addr replace 198.18.99.1/32 dev lo", NULL };
		struct run_result r;
		cr_assert_eq(harness_run(argv, NULL, 0, 10000, &r), 0);
		cr_assert_eq(r.exit_code, 0, "adding a host address: %s", r.err);
		harness_result_free(&r);
		snprintf(out, INET_ADDRSTRLEN, "198.18.99.1");
	}
}

/* A host listener on 0.0.0.0:port that accepts and reads on its own thread:
 * busybox nc in the guest waits for the peer to close, so the test must serve
 * connections while `ironclaw exec` runs. */
struct listener {
	int s;
	volatile int stop;
	char got[256];
	pthread_t t;
};

static void *listener_main(void *p)
{
	struct listener *l = p;
	size_t used = 0;
	while (!l->stop) {
		struct pollfd pf = { .fd = l->s, .events = POLLIN };
		if (poll(&pf, 1, 100) != 1)
			continue;
		int c = accept4(l->s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		struct pollfd q = { .fd = c, .events = POLLIN };
		if (poll(&q, 1, 2000) == 1) {
			ssize_t n = read(c, l->got + used, sizeof(l->got) - 1 - used);
			if (n > 0)
				used += (size_t)n;
			l->got[used] = 0;
		}
		close(c);
	}
	return NULL;
}

static void listener_start(struct listener *l, int port)
{
	memset(l, 0, sizeof(*l));
	l->s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(l->s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	cr_assert_eq(bind(l->s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(l->s, 4), 0);
	cr_assert_eq(pthread_create(&l->t, NULL, listener_main, l), 0);
}

static void listener_stop(struct listener *l)
{
	l->stop = 1;
	pthread_join(l->t, NULL);
	close(l->s);
}

static void exec_vm(char *const *args, struct run_result *r)
{
	char *argv[32] = { (char *)harness_ironclaw(), "exec" };
	int n = 2;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(harness_run(argv, NULL, 0, BOOT_BUDGET_MS, r), 0);
	cr_assert_not(r->timed_out, "ironclaw exec hung: %s", r->err);
}

static void status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], *buf = NULL;
	size_t n;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	out[0] = 0;
	if (io_read_file(path, 1 << 16, &buf, &n))
		return;
	char *p = strstr(buf, key);
	if (p) {
		p += strlen(key);
		p += strspn(p, " \t");
		snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
	}
	free(buf);
}

static int same_ns(pid_t pid, const char *ns)
{
	char a[64], b[64], pa[64], pb[64];
	snprintf(pa, sizeof(pa), "/proc/%d/ns/%s", (int)pid, ns);
	snprintf(pb, sizeof(pb), "/proc/self/ns/%s", ns);
	ssize_t la = readlink(pa, a, sizeof(a) - 1), lb = readlink(pb, b, sizeof(b) - 1);
	if (la <= 0 || lb <= 0)
		return -1;
	a[la] = b[lb] = 0;
	return !strcmp(a, b);
}

Test(jail_e2e, running_qemu_is_filtered_unprivileged_and_namespaced)
{
	cr_assert_eq(geteuid(), 0, "needs root (CI runs as root)");
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--", "sleep", "6", NULL };
	pid_t ic = harness_spawn(argv, "/dev/null", "/dev/null");
	cr_assert_gt(ic, 0);
	pid_t q[4];
	int n = 0;
	double t0 = harness_now_ms();
	while ((n = harness_find_processes("qemu-system-x86_64", ic, q, 4)) == 0 && harness_now_ms() - t0 < 30000)
		usleep(50000);
	cr_assert_eq(n, 1, "no QEMU under ironclaw exec");
	char v[128];
	status_field(q[0], "Seccomp:", v, sizeof(v));
	cr_expect_str_eq(v, "2", "QEMU not under a seccomp filter: '%s'", v);
	status_field(q[0], "Uid:", v, sizeof(v));
	cr_expect_neq(strtoul(v, NULL, 10), 0ul, "QEMU runs as root: %s", v);
	status_field(q[0], "NoNewPrivs:", v, sizeof(v));
	cr_expect_str_eq(v, "1");
	status_field(q[0], "CapEff:", v, sizeof(v));
	cr_expect_str_eq(v, "0000000000000000");
	const char *nss[] = { "mnt", "pid", "net", "ipc", "uts" };
	for (int i = 0; i < 5; i++)
		cr_expect_eq(same_ns(q[0], nss[i]), 0, "QEMU shares the host's %s namespace", nss[i]);
	int st = harness_wait(ic, BOOT_BUDGET_MS, NULL);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec failed: status %d", st);
}

#define E2E_PORT_A 19191
#define E2E_PORT_B 19192

Test(jail_e2e, without_net_a_host_listener_is_unreachable)
{
	char host[INET_ADDRSTRLEN], cmd[256];
	host_addr(host);
	struct listener l;
	listener_start(&l, E2E_PORT_A);
	snprintf(cmd, sizeof(cmd), "echo hi | nc -w 2 %s %d", host, E2E_PORT_A);
	struct run_result r;
	exec_vm((char *[]){ "--", "sh", "-c", cmd, NULL }, &r);
	listener_stop(&l);
	cr_expect_neq(r.exit_code, 0, "nc succeeded without --net: %s", r.out);
	cr_expect_str_eq(l.got, "", "the host listener got '%s' from a VM without --net", l.got);
	harness_result_free(&r);
}

/* 1 when a live VM's record names this object (which: 0 netns, 1 host veth,
 * 2 slot claim file). */
static int owned_by_live_vm(int which, const char *name)
{
	if (which == 2) {
		char path[320], *buf = NULL;
		size_t n;
		snprintf(path, sizeof(path), "%s/%s", JAIL_STATE_DIR, name);
		if (io_read_file(path, 128, &buf, &n))
			return 1;   /* gone meanwhile */
		int alive = jail_state_alive(buf);
		free(buf);
		return alive;
	}
	DIR *d = opendir(JAIL_STATE_DIR);
	struct dirent *de;
	int found = 0;
	while (d && !found && (de = readdir(d))) {
		struct jail_names nm;
		if (de->d_name[0] == '.' || jail_names_make(de->d_name, &nm, NULL) || !jail_state_alive(nm.id))
			continue;
		found = !strcmp(name, which == 0 ? nm.netns : nm.veth_host);
	}
	if (d)
		closedir(d);
	return found;
}

Test(jail_e2e, with_net_allow_only_the_listed_address_and_port_are_reachable)
{
	char host[INET_ADDRSTRLEN], allow[64], cmd[512];
	host_addr(host);
	struct listener la, lb;
	listener_start(&la, E2E_PORT_A);
	listener_start(&lb, E2E_PORT_B);
	snprintf(allow, sizeof(allow), "allow=%s:%d", host, E2E_PORT_A);
	/* a: the allowed address:port; b: another port; c: another address of
	 * the host (its end of the veth, derived from the guest's gateway .5 -> .1)
	 * with the allowed port. */
	snprintf(cmd, sizeof(cmd),
		 "echo allowed | nc -w 2 %s %d; echo a=$?; echo other | nc -w 2 %s %d; echo b=$?; "
		 "GW=$(ip route | awk '/default/ {print $3}'); H=${GW%%.*}.$(( ${GW##*.} - 4 )); "
		 "echo h=$H; echo otheraddr | nc -w 2 $H %d; echo c=$?",
		 host, E2E_PORT_A, host, E2E_PORT_B, E2E_PORT_A);
	struct run_result r;
	exec_vm((char *[]){ "--net", allow, "--", "sh", "-c", cmd, NULL }, &r);
	listener_stop(&la);
	listener_stop(&lb);
	cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_expect(strstr(r.out, "a=0"), "the allowed port was unreachable: %s %s", r.out, r.err);
	cr_expect(strstr(r.out, "b=1"), "the other port was reachable: %s %s", r.out, r.err);
	cr_expect(strstr(r.out, "h=100."), "the host's veth address was not derived: %s", r.out);
	cr_expect(strstr(r.out, "c=1"), "another host address was reachable: %s %s", r.out, r.err);
	cr_expect_str_eq(la.got, "allowed\n");
	cr_expect_str_eq(lb.got, "", "the other port received '%s'", lb.got);
	harness_result_free(&r);
	/* Nothing of the VM's network is left behind: no netns, veth or slot
	 * claim that no live VM owns (others' VMs may run meanwhile). */
	static const char *const where[] = { "/run/netns", "/sys/class/net", JAIL_STATE_DIR };
	static const char *const prefix[] = { "ic-", "icv", "slot-" };
	for (int w = 0; w < 3; w++) {
		DIR *d = opendir(where[w]);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, prefix[w], strlen(prefix[w])))
				cr_expect(owned_by_live_vm(w, de->d_name), "%s/%s left behind", where[w], de->d_name);
		if (d)
			closedir(d);
	}
}

/* The VM id whose state record names vmm as its VMM (the record is root's and
 * outside any jail: "<owner> <start> <vmm> <start>"). */
static int vm_id_of(pid_t vmm, char *id, size_t len)
{
	DIR *d = opendir("/run/ironclaw/.state");
	struct dirent *de;
	int found = 0;
	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !strncmp(de->d_name, "slot-", 5))
			continue;
		char path[320], *buf = NULL;
		size_t n;
		snprintf(path, sizeof(path), "/run/ironclaw/.state/%s", de->d_name);
		if (io_read_file(path, 256, &buf, &n))
			continue;
		int owner = 0, v = 0;
		if (sscanf(buf, "%d %*u %d", &owner, &v) == 2 && v == vmm) {
			snprintf(id, len, "%.48s", de->d_name);
			found = 1;
		}
		free(buf);
	}
	if (d)
		closedir(d);
	return found ? 0 : -1;
}

static void qmp_send(int s, const char *msg, char *reply, size_t len)
{
	if (msg)
		cr_assert_eq(write(s, msg, strlen(msg)), (ssize_t)strlen(msg));
	struct pollfd p = { .fd = s, .events = POLLIN };
	reply[0] = 0;
	if (poll(&p, 1, 5000) == 1) {
		ssize_t n = read(s, reply, len - 1);
		reply[n > 0 ? n : 0] = 0;
	}
}

Test(jail_e2e, real_qemu_made_to_fork_is_killed_by_the_filter_and_audited)
{
	cr_assert_eq(geteuid(), 0, "needs root (CI runs as root)");
	char logdir[] = "/tmp/ironclaw-e2eaudit-XXXXXX", logpath[128];
	cr_assert(mkdtemp(logdir));
	snprintf(logpath, sizeof(logpath), "%s/audit.jsonl", logdir);
	setenv("IRONCLAW_AUDIT_LOG", logpath, 1);
	char errpath[160];
	snprintf(errpath, sizeof(errpath), "%s/stderr", logdir);
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--", "sleep", "30", NULL };
	pid_t ic = harness_spawn(argv, "/dev/null", errpath);
	cr_assert_gt(ic, 0);
	pid_t q[2];
	int n = 0;
	double t0 = harness_now_ms();
	while ((n = harness_find_processes("qemu-system-x86_64", ic, q, 2)) == 0 && harness_now_ms() - t0 < 30000)
		usleep(50000);
	cr_assert_eq(n, 1, "no QEMU under ironclaw exec");
	char id[64];
	t0 = harness_now_ms();
	while (vm_id_of(q[0], id, sizeof(id)) && harness_now_ms() - t0 < 10000)
		usleep(50000);
	cr_assert_eq(vm_id_of(q[0], id, sizeof(id)), 0, "no state record names QEMU pid %d", (int)q[0]);
	/* QMP, as the host can: ask QEMU to migrate to "exec:", which makes it
	 * fork a shell. clone without CLONE_THREAD is not in the allowlist. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/run/ironclaw/%s/qmp.sock", id);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	t0 = harness_now_ms();
	while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) && harness_now_ms() - t0 < 10000)
		usleep(50000);
	char reply[4096];
	qmp_send(s, NULL, reply, sizeof(reply));
	cr_assert(strstr(reply, "\"QMP\""), "no QMP greeting: %s", reply);
	qmp_send(s, "{\"execute\":\"qmp_capabilities\"}\n", reply, sizeof(reply));
	qmp_send(s, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:true\"}}\n", reply, sizeof(reply));
	close(s);
	int st = harness_wait(ic, 60000, NULL);
	cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "exec did not fail: status %d", st);
	char *err = NULL;
	size_t errlen;
	cr_assert_eq(io_read_file(errpath, 1 << 16, &err, &errlen), 0);
	cr_expect(strstr(err, "signal 31") || strstr(err, "seccomp"), "exec's error does not say why: %s", err);
	free(err);
	/* `ironclaw audit` shows the violation with the syscall's name. */
	struct run_result r;
	char *aargv[] = { (char *)harness_ironclaw(), "audit", "--log", logpath, NULL };
	cr_assert_eq(harness_run(aargv, NULL, 0, 30000, &r), 0);
	char want[128];
	snprintf(want, sizeof(want), "vm=%s pid=%d syscall=clone", id, (int)q[0]);
	cr_expect(strstr(r.out, want), "no '%s' in:\n%s", want, r.out);
	harness_result_free(&r);
	unlink(logpath);
	unlink(errpath);
	rmdir(logdir);
}
