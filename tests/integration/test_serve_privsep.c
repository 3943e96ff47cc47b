/* `ironclaw serve` is split in two (src/serve/priv.h): a root parent that only
 * makes and removes jails, and the API process, which parses every hostile
 * byte, as an unprivileged uid. These tests read the API process's
 * credentials from /proc, adopt them in a forked child to show what that uid
 * cannot read (a root 0600 file, /etc/shadow, a VM's QMP socket), drive a
 * sandbox through the split, speak to the privileged parent directly on the
 * API process's own sockets (taken with pidfd_getfd) to show that malformed
 * messages and bad SPAWN shapes are refused and logged and spawn nothing, and
 * kill -9 either process to show the other one follows and nothing is left,
 * and boot an image from a store under a home the API uid cannot walk. */
#include "test_serve_util.h"

#include <dirent.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "image/image.h"
#include "serve/priv.h"
#include "vm/layout.h"
#include "vm/qemu.h"

static void ps_start(struct serve_d *d)
{
	serve_d_start(d, (char *[]){ "--no-snapshot", "--memory", "128", NULL });
}

/* The API process: the daemon's one child that is an ironclaw. */
static pid_t ps_api_pid(pid_t daemon)
{
	char p[64], line[256];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/children", daemon, daemon);
	FILE *f = fopen(p, "r");
	cr_assert(f, "no %s", p);
	pid_t api = 0;
	int kid;
	while (!api && fscanf(f, "%d", &kid) == 1) {
		snprintf(p, sizeof(p), "/proc/%d/comm", kid);
		FILE *c = fopen(p, "r");
		if (c && fgets(line, sizeof(line), c) && !strncmp(line, "ironclaw", 8))
			api = kid;
		if (c)
			fclose(c);
	}
	fclose(f);
	cr_assert(api > 0, "the daemon %d has no API process", daemon);
	return api;
}

/* The value of a /proc/<pid>/status line ("Uid", "CapEff", ...). */
static void ps_status(pid_t pid, const char *key, char *out, size_t n)
{
	char p[64], line[512];
	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	FILE *f = fopen(p, "r");
	cr_assert(f);
	out[0] = 0;
	size_t kl = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			char *v = line + kl + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = 0;
			snprintf(out, n, "%s", v);
		}
	fclose(f);
}

static int ps_gone_within(pid_t pid, int ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return errno == ESRCH;
	struct pollfd pp = { .fd = pfd, .events = POLLIN };
	int r = poll(&pp, 1, ms);
	close(pfd);
	return r == 1;
}

/* In a forked child with exactly uid/gid and no groups: errno of open(path)
 * for reading (0: it opened), or of connect() when sock. */
static int ps_try_as(uid_t uid, gid_t gid, const char *path, int sock)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t k = fork();
	if (k == 0) {
		int err = 0;
		if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid) ||
		    getuid() != uid) {
			err = -1;
		} else if (sock) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
			int fd = socket(AF_UNIX, SOCK_STREAM, 0);
			err = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
		} else {
			err = open(path, O_RDONLY) >= 0 ? 0 : errno;
		}
		if (write(p[1], &err, sizeof(err)) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	int err = -2;
	cr_assert_eq(read(p[0], &err, sizeof(err)), (ssize_t)sizeof(err));
	close(p[0]);
	waitpid(k, NULL, 0);
	cr_assert_neq(err, -1, "the probe child could not take uid %u", uid);
	return err;
}

Test(serve_privsep, api_process_is_unprivileged_and_drives_a_sandbox, .timeout = 600)
{
	struct serve_d d;
	char v[256];
	ps_start(&d);
	pid_t api = ps_api_pid(d.pid);

	ps_status(d.pid, "Uid", v, sizeof(v));
	cr_assert(!strncmp(v, "0\t", 2), "the privileged parent is not root: Uid %s", v);
	ps_status(api, "Uid", v, sizeof(v));
	unsigned r, e, s, fs;
	cr_assert_eq(sscanf(v, "%u %u %u %u", &r, &e, &s, &fs), 4, "Uid: %s", v);
	cr_assert(r != 0 && e == r && s == r && fs == r, "the API process's Uid: %s", v);
	cr_assert_eq(r, PRIV_API_UID);
	ps_status(api, "Gid", v, sizeof(v));
	unsigned g;
	cr_assert_eq(sscanf(v, "%u", &g), 1);
	cr_assert_neq(g, 0, "Gid: %s", v);
	ps_status(api, "Groups", v, sizeof(v));
	cr_assert_str_eq(v, "", "supplementary groups left: %s", v);
	const char *zero[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
	for (size_t i = 0; i < 5; i++) {
		ps_status(api, zero[i], v, sizeof(v));
		cr_assert_str_eq(v, "0000000000000000", "%s: %s", zero[i], v);
	}
	ps_status(api, "NoNewPrivs", v, sizeof(v));
	cr_assert_str_eq(v, "1");
	ps_status(api, "Seccomp", v, sizeof(v));
	cr_assert_str_eq(v, "2", "the API process has no seccomp filter (Seccomp: %s)", v);
	ps_status(d.pid, "Seccomp", v, sizeof(v));
	cr_assert_str_eq(v, "0", "the parent has a filter of its own?");

	/* What that uid can read: not a root 0600 file, not /etc/shadow. */
	char secret[] = "/tmp/ic-privsep-secret-XXXXXX";
	int sfd = mkstemp(secret);
	cr_assert(sfd >= 0);
	cr_assert_eq(write(sfd, "x", 1), 1);
	fchmod(sfd, 0600);
	close(sfd);
	cr_assert_eq(ps_try_as(r, g, secret, 0), EACCES, "the API uid read a root 0600 file");
	cr_assert_eq(ps_try_as(r, g, "/etc/shadow", 0), EACCES, "the API uid read /etc/shadow");
	cr_assert_eq(ps_try_as(0, 0, secret, 0), 0, "the probe itself is broken");
	unlink(secret);

	/* Root's image store: searched by the API gid (it looks images up by
	 * name or id), never listed or written by it (priv_images.c). */
	const char *img = getenv("IRONCLAW_IMAGES"), *home = getenv("HOME");
	char store[512], names[600];
	snprintf(store, sizeof(store), img && *img ? "%s" : "%s/.cache/ironclaw/images",
		 img && *img ? img : home ? home : "/root");
	struct stat ss;
	cr_assert_eq(stat(store, &ss), 0, "%s", store);
	cr_assert_eq(ss.st_gid, PRIV_API_UID, "the store's group is %u", (unsigned)ss.st_gid);
	cr_assert_eq(ss.st_mode & 0077, 0010, "the store's mode is %o", ss.st_mode & 07777);
	snprintf(names, sizeof(names), "%s/names", store);
	cr_assert_eq(ps_try_as(r, g, names, 0), EACCES, "the API uid listed the image names");

	/* A sandbox through the split: made, used, removed. Its QMP socket is
	 * the VM uid's: the API uid reaches it only through the parent. */
	char *id = sb_create(&d, "{}", NULL, 0);
	json_t *j = sb_get_json(&d, id);
	char vm[64], qmp[160];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	cr_assert(vm_dir_exists(vm));
	cr_assert_eq(vmm_count(d.pid), 1, "the VMM is not the privileged parent's child");
	snprintf(qmp, sizeof(qmp), "/run/ironclaw/%s/qmp.sock", vm);
	cr_assert_eq(ps_try_as(r, g, qmp, 1), EACCES, "the API uid connected to QMP itself");
	int code;
	size_t len;
	char *out = sb_exec(&d, id, "[\"sh\",\"-c\",\"echo through-the-split; id -u\"]", &code, &len);
	cr_assert_eq(code, 0);
	cr_assert(strstr(out, "through-the-split\n"), "exec output: %s", out);
	free(out);
	sb_delete(&d, id);
	free(id);
	sb_wait_torn_down(&d);   /* the 204 comes before the teardown ends */
	cr_assert_not(vm_dir_exists(vm), "%s left behind", vm);
	cr_assert_eq(vmm_count(d.pid), 0);
	cr_assert_eq(metric(&d, "ironclaw_sandbox_failures_total"), 0);
	serve_d_stop(&d);
}

/* ---- speaking to the parent on the API process's sockets ---- */

/* The API process's two SEQPACKET sockets (sync has the lower number: it is
 * made first, and descriptors are the lowest free). */
static void ps_take_sockets(pid_t api, int *sync_fd, int *async_fd)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fd", api);
	DIR *dir = opendir(p);
	cr_assert(dir);
	int pfd = (int)syscall(SYS_pidfd_open, api, 0);
	cr_assert(pfd >= 0);
	int nums[2], n = 0;
	struct dirent *de;
	int lo = -1, hi = -1;
	while ((de = readdir(dir))) {
		int num = atoi(de->d_name);
		if (de->d_name[0] == '.')
			continue;
		int fd = (int)syscall(SYS_pidfd_getfd, pfd, num, 0);
		if (fd < 0)
			continue;
		int type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_SEQPACKET &&
		    n < 2) {
			nums[n++] = num;
			if (lo < 0) {
				lo = fd;
			} else if (num < nums[0]) {
				hi = lo;
				lo = fd;
			} else {
				hi = fd;
			}
			continue;
		}
		close(fd);
	}
	closedir(dir);
	close(pfd);
	cr_assert_eq(n, 2, "the API process has %d SEQPACKET sockets, not 2", n);
	*sync_fd = lo;
	*async_fd = hi;
}

/* Sends raw bytes on the sync socket and returns the REPLY's rc. */
static int ps_sync_raw(int sock, const void *m, size_t n, char *text, size_t tn)
{
	cr_assert_eq(send(sock, m, n, 0), (ssize_t)n);
	struct pollfd p = { .fd = sock, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 5000), 1, "no answer from the privileged parent");
	struct priv_msg_reply r;
	ssize_t got = recv(sock, &r, sizeof(r), 0);
	cr_assert_eq(got, (ssize_t)sizeof(r), "a REPLY of %zd bytes", got);
	cr_assert_eq(r.h.type, PRIV_REPLY);
	if (text)
		snprintf(text, tn, "%.*s", (int)sizeof(r.text), r.text);
	return r.rc;
}

static int ps_prepare(int sync_fd, const char *id)
{
	struct priv_msg_id m;
	priv_msg_init(&m.h, PRIV_PREPARE, id);
	return ps_sync_raw(sync_fd, &m, sizeof(m), NULL, 0);
}

/* A SPAWN that would be accepted: QEMU, the VM's directory, the image. */
static void ps_good_spawn(struct priv_msg_spawn *m, const char *id)
{
	priv_msg_init(&m->h, PRIV_SPAWN, id);
	const char *argv[] = { QEMU_BINARY, "-version" };
	size_t used = 0;
	for (int i = 0; i < 2; i++) {
		m->argv_off[i] = (uint32_t)used;
		memcpy(m->store + used, argv[i], strlen(argv[i]) + 1);
		used += strlen(argv[i]) + 1;
	}
	m->argc = 2;
	m->n_binds = 1;
	snprintf(m->binds[0].host, sizeof(m->binds[0].host), "/run/ironclaw/%s", id);
	snprintf(m->binds[0].jail, sizeof(m->binds[0].jail), "/run/vm");
	m->binds[0].writable = 1;
}

/* Sends a SPAWN on the async socket (with a stderr pipe, as the API process
 * does); the answer goes to the API process, the refusal to the log. */
static void ps_spawn(int async_fd, const struct priv_msg_spawn *m)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(priv_msg_send(async_fd, m, sizeof(*m), p[1]), 0);
	close(p[0]);
	close(p[1]);
}

static int ps_log_count(struct serve_d *d, const char *needle)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(d->log, "r");
	cr_assert(f);
	int n = 0;
	ssize_t got;
	while ((got = getline(&text, &len, f)) >= 0)
		n += strstr(text, needle) != NULL;
	free(text);
	fclose(f);
	return n;
}

/* The parent answers on the async socket after its log line: wait for it. */
static void ps_wait_log(struct serve_d *d, const char *needle, int want)
{
	for (int i = 0; i < 500 && ps_log_count(d, needle) < want; i++)
		usleep(10000);
	cr_assert_geq(ps_log_count(d, needle), want, "no log line '%s' (see %s)", needle, d->log);
}

static int ps_dir_exists(const char *id)
{
	return vm_dir_exists(id);
}

Test(serve_privsep, malformed_messages_are_refused_logged_and_spawn_nothing, .timeout = 600)
{
	struct serve_d d;
	ps_start(&d);
	pid_t api = ps_api_pid(d.pid);
	int sy, as;
	ps_take_sockets(api, &sy, &as);
	char id[48], text[600];
	snprintf(id, sizeof(id), "privsep-test-%d", (int)getpid());

	/* Wrong size: a PREPARE with ten bytes too many. */
	unsigned char big[sizeof(struct priv_msg_id) + 10];
	memset(big, 0, sizeof(big));
	priv_msg_init((struct priv_hdr *)big, PRIV_PREPARE, id);
	cr_assert_eq(ps_sync_raw(sy, big, sizeof(big), text, sizeof(text)), -EPROTO);
	cr_assert(strstr(text, "wrong size"), "%s", text);
	/* Shorter than a header. */
	cr_assert_eq(ps_sync_raw(sy, big, 7, text, sizeof(text)), -EPROTO);
	/* Larger than any message. */
	static unsigned char huge[PRIV_MSG_MAX + 100];
	priv_msg_init((struct priv_hdr *)huge, PRIV_PREPARE, id);
	cr_assert_eq(ps_sync_raw(sy, huge, sizeof(huge), text, sizeof(text)), -EPROTO);
	cr_assert(strstr(text, "truncated"), "%s", text);
	/* Unknown type. */
	struct priv_msg_id m;
	priv_msg_init(&m.h, PRIV_PREPARE, id);
	m.h.type = 999;
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), -EPROTO);
	cr_assert(strstr(text, "unknown type"), "%s", text);
	/* Bad magic; len that disagrees with the size. */
	priv_msg_init(&m.h, PRIV_PREPARE, id);
	m.h.magic = 0x41414141;
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), -EPROTO);
	priv_msg_init(&m.h, PRIV_PREPARE, id);
	m.h.len = 4;
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), -EPROTO);
	/* An id that is a path; an unterminated id. */
	priv_msg_init(&m.h, PRIV_PREPARE, "../../etc");
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), -EINVAL);
	priv_msg_init(&m.h, PRIV_PREPARE, id);
	memset(m.h.id, 'a', sizeof(m.h.id));
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), -EPROTO);
	/* A VM it never prepared; an async type on the sync channel. */
	struct priv_msg_file fm;
	priv_msg_init(&fm.h, PRIV_CONNECT, id);
	fm.file = PRIV_FILE_QMP;
	cr_assert_eq(ps_sync_raw(sy, &fm, sizeof(fm), text, sizeof(text)), -ENOENT);
	cr_assert_not(ps_dir_exists(id), "a refused message made %s", id);

	/* Prepared: now the VM's own calls are checked field by field. */
	cr_assert_eq(ps_prepare(sy, id), 0);
	cr_assert(ps_dir_exists(id));
	priv_msg_init(&fm.h, PRIV_CONNECT, id);
	fm.file = PRIV_FILE_CONSOLE;   /* a file CONNECT may not name */
	cr_assert_eq(ps_sync_raw(sy, &fm, sizeof(fm), text, sizeof(text)), -EINVAL);
	fm.file = 77;
	cr_assert_eq(ps_sync_raw(sy, &fm, sizeof(fm), text, sizeof(text)), -EINVAL);
	struct priv_msg_scratch sm;
	priv_msg_init(&sm.h, PRIV_SCRATCH, id);
	sm.bytes = 12345;   /* not whole MiB */
	cr_assert_eq(ps_sync_raw(sy, &sm, sizeof(sm), text, sizeof(text)), -EINVAL);
	struct priv_msg_id km;
	priv_msg_init(&km.h, PRIV_KILL, id);
	cr_assert_eq(ps_sync_raw(sy, &km, sizeof(km), text, sizeof(text)), -EPROTO);
	priv_msg_init(&m.h, PRIV_PREPARE, id);
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), -EEXIST, "%s", text);
	priv_msg_init(&m.h, PRIV_DISCARD, id);
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), text, sizeof(text)), 0, "%s", text);
	cr_assert_not(ps_dir_exists(id));

	/* Bad SPAWN shapes: each refused, logged, the VM discarded, nothing run. */
	char secret[] = "/tmp/ic-privsep-bind-XXXXXX";
	int sfd = mkstemp(secret);
	cr_assert(sfd >= 0);
	fchmod(sfd, 0600);
	close(sfd);
	static struct priv_msg_spawn sp;
	static const char *const cases[] = {
		"argv[0] is not",
		"only the VM's own directory is writable",
		"is not readable by the API uid",
		"argc 0 out of range",
		"argv[1] outside the store",
		"kvm_node 7",
		"is under /proc or /sys",
	};
	int refused = ps_log_count(&d, "priv: refused");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(ps_prepare(sy, id), 0, "case %zu", i);
		ps_good_spawn(&sp, id);
		switch (i) {
		case 0:
			snprintf(sp.store, sizeof(sp.store), "/bin/sh");
			break;
		case 1:
			snprintf(sp.binds[0].host, sizeof(sp.binds[0].host), "/etc");
			break;
		case 2:
			sp.n_binds = 2;
			snprintf(sp.binds[1].host, sizeof(sp.binds[1].host), "%s", secret);
			snprintf(sp.binds[1].jail, sizeof(sp.binds[1].jail), "/vm/secret");
			break;
		case 3:
			sp.argc = 0;
			break;
		case 4:
			sp.argv_off[1] = VM_PLAN_STORE + 5;
			break;
		case 5:
			sp.kvm_node = 7;
			break;
		case 6:   /* in the parent, that is the parent's own descriptor */
			sp.n_binds = 2;
			snprintf(sp.binds[1].host, sizeof(sp.binds[1].host), "/proc/self/fd/0");
			snprintf(sp.binds[1].jail, sizeof(sp.binds[1].jail), "/vm/fd");
			break;
		}
		ps_spawn(as, &sp);
		ps_wait_log(&d, cases[i], 1);
		ps_wait_log(&d, "priv: refused", refused + 1);
		refused = ps_log_count(&d, "priv: refused");
		/* The refusal discarded the prepared VM. */
		for (int k = 0; k < 500 && ps_dir_exists(id); k++)
			usleep(10000);
		cr_assert_not(ps_dir_exists(id), "case %zu: %s left behind", i, id);
		cr_assert_eq(vmm_count(d.pid), 0, "case %zu: a VMM was started", i);
	}
	/* A SPAWN of the wrong size on the async socket: refused before reading it. */
	cr_assert_eq(ps_prepare(sy, id), 0);
	ps_good_spawn(&sp, id);
	cr_assert_eq(send(as, &sp, sizeof(sp) - 1, 0), (ssize_t)sizeof(sp) - 1);
	ps_wait_log(&d, "wrong size for its type", 2);
	cr_assert_eq(vmm_count(d.pid), 0);
	priv_msg_init(&m.h, PRIV_DISCARD, id);
	cr_assert_eq(ps_sync_raw(sy, &m, sizeof(m), NULL, 0), 0);
	cr_assert_not(ps_dir_exists(id));
	unlink(secret);
	close(sy);
	close(as);

	/* The daemon is unharmed: a sandbox still works end to end. */
	char *sid = sb_create(&d, "{}", NULL, 0);
	int code;
	char *out = sb_exec(&d, sid, "[\"echo\",\"ok\"]", &code, NULL);
	cr_assert_eq(code, 0);
	cr_assert_str_eq(out, "ok\n");
	free(out);
	sb_delete(&d, sid);
	free(sid);
	serve_d_stop(&d);
}

/* Either process dying takes the other with it, and nothing is left. */
Test(serve_privsep, kill9_of_either_process_ends_both_and_leaves_nothing, .timeout = 900)
{
	struct serve_d d;
	ps_start(&d);
	char *id = sb_create(&d, "{}", NULL, 0);
	json_t *j = sb_get_json(&d, id);
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	free(id);
	pid_t vmm[4];
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", d.pid, vmm, 4), 1);
	/* The API process dies: the parent destroys its VMs, removes the socket
	 * and exits (not 0: its child did not stop cleanly). */
	pid_t api = ps_api_pid(d.pid);
	kill(api, SIGKILL);
	int st = harness_wait(d.pid, 60000, NULL);
	cr_assert(st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0),
		  "the parent did not follow its API process (status %d)", st);
	cr_assert(ps_gone_within(vmm[0], 10000), "the VMM outlived the API process");
	cr_assert_not(vm_dir_exists(vm), "%s left behind by the parent", vm);
	struct stat sb;
	cr_assert(stat(d.sock, &sb) < 0, "the socket was left behind");
	close(d.stop_w);

	/* The parent dies: the API process and the VMM follow; the next start
	 * removes the rest (gc) and serves. */
	serve_d_start_at(&d, (char *[]){ "--no-snapshot", "--memory", "128", NULL });
	id = sb_create(&d, "{}", NULL, 0);
	j = sb_get_json(&d, id);
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	free(id);
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", d.pid, vmm, 4), 1);
	api = ps_api_pid(d.pid);
	kill(d.pid, SIGKILL);
	waitpid(d.pid, NULL, 0);
	cr_assert(ps_gone_within(api, 10000), "the API process outlived its parent");
	cr_assert(ps_gone_within(vmm[0], 10000), "the VMM outlived the parent");
	close(d.stop_w);
	serve_d_start_at(&d, (char *[]){ "--no-snapshot", "--memory", "128", NULL });
	cr_assert_not(vm_dir_exists(vm), "the restarted daemon did not remove %s", vm);
	id = sb_create(&d, "{}", NULL, 0);
	sb_delete(&d, id);
	free(id);
	serve_d_stop(&d);
}

/* Root's image store usually sits under root's 0700 home: the API process
 * still looks an image up and reads it through /proc/self/fd, and the parent
 * still binds it (priv_images.c). The checkout's store is bind-mounted inside
 * a fresh 0700 directory, so no path to it can be walked by the API uid. */
Test(serve_privsep, an_image_under_a_home_the_api_uid_cannot_walk_boots, .timeout = 600)
{
	char store[4200], home[] = "/tmp/ic-privsep-home-XXXXXX", mnt[64];
	snprintf(store, sizeof(store), "%s/build/images", harness_root());
	setenv("IRONCLAW_IMAGES", store, 1);
	struct image_info info;
	if (image_lookup("ci-small", &info, NULL) < 0)
		cr_skip_test("no ci-small image (run `make image-test` first)");
	image_info_free(&info);
	cr_assert(mkdtemp(home));   /* 0700, root's */
	snprintf(mnt, sizeof(mnt), "%s/images", home);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	cr_assert_eq(mount(store, mnt, NULL, MS_BIND, NULL), 0, "bind %s: %s", store, strerror(errno));
	setenv("IRONCLAW_IMAGES", mnt, 1);
	struct serve_d d;
	serve_d_start(&d, (char *[]){ "--no-snapshot", "--memory", "256", NULL });
	char *id = sb_create(&d, "{\"image\":\"ci-small\"}", NULL, 0);
	int code;
	char *out = sb_exec(&d, id, "[\"python3\",\"-c\",\"print(6 * 7)\"]", &code, NULL);
	cr_assert_eq(code, 0, "python3 in the image: exit %d", code);
	cr_assert_str_eq(out, "42\n");
	free(out);
	sb_delete(&d, id);
	free(id);
	serve_d_stop(&d);
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	rmdir(home);
	setenv("IRONCLAW_IMAGES", store, 1);
}
