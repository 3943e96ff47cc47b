/* Unit tests of the jail's pure parts: VM id validation, kernel object names
 * (within limits, distinct for distinct ids, computed once), the address
 * slots (a taken slot means the next), the --net allowlist parser, the QEMU
 * seccomp policy table and its measured count, the loader-query cache, and
 * the bounded audit ring and its JSONL log. */
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "jail/jail.h"
#include "jail/jail_internal.h"
#include "jail/rootfs.h"
#include "jail/seccomp.h"
#include "vm/qemu_seccomp.h"

Test(jail_id, rejects_traversal_uppercase_overlong_and_empty)
{
	struct err e = { 0 };
	const char *bad[] = { "../x", "a/b", "..", ".", "x/../../etc", "Abc", "vm_1", "vm 1", "-vm", "", "vm\n",
			      "vm.1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		cr_expect_eq(jail_validate_id(bad[i], &e), -EINVAL, "id '%s' accepted", bad[i]);
		cr_expect(strstr(e.msg, "invalid VM id"), "message: %s", e.msg);
	}
	char longid[JAIL_ID_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	cr_expect_eq(jail_validate_id(longid, &e), -EINVAL);
	cr_expect(strstr(e.msg, "longer than"), "%s", e.msg);
	longid[JAIL_ID_MAX] = 0;   /* exactly the limit */
	cr_expect_eq(jail_validate_id(longid, &e), 0);
	cr_expect_eq(jail_validate_id(NULL, &e), -EINVAL);
	cr_expect_eq(jail_validate_id("vm-0a9z", &e), 0);
}

/* A throwaway tree: <tmp>/run/a is the run dir, <tmp>/etc the sacrificial
 * target that "../../etc" would reach from <tmp>/run/a/<id>'s parent. */
static char sandbox[64];

static void sandbox_make(void)
{
	char p[128];
	snprintf(sandbox, sizeof(sandbox), "/tmp/ironclaw-unit-XXXXXX");
	cr_assert_not_null(mkdtemp(sandbox));
	snprintf(p, sizeof(p), "%s/run", sandbox);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/etc", sandbox);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/run/a", sandbox);
	jail_test_set_run_dir(p);
}

static void sandbox_remove(void)
{
	jail_test_set_run_dir(NULL);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sandbox);
	cr_expect_eq(system(cmd), 0);
}

Test(jail_id, paths_are_never_made_from_bad_ids, .init = sandbox_make, .fini = sandbox_remove)
{
	struct err e = { 0 };
	char target[128];
	snprintf(target, sizeof(target), "%s/etc", sandbox);
	struct stat before, after;
	cr_assert_eq(stat(target, &before), 0);
	struct jail_names n;
	int rc = jail_names_make("../../etc", &n, &e);
	cr_expect_eq(rc, -EINVAL, "a traversing id was accepted");
	/* Were validation ever broken, the next call would give the target to
	 * the jail uid: it is a throwaway directory, checked below. */
	if (rc == 0)
		jail_prepare_dir(&n, &e);
	cr_assert_eq(stat(target, &after), 0);
	cr_expect_eq(after.st_uid, before.st_uid, "the sacrificial target was chowned");
	cr_expect_eq(after.st_mode, before.st_mode, "the sacrificial target was chmodded");
	cr_expect_eq(jail_names_make("UPPER", &n, &e), -EINVAL);
	char *argv[] = { "/bin/true", NULL };
	struct jail_config c = { .names = NULL, .argv = argv, .seccomp = qemu_seccomp_policy(0),
				 .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	pid_t pid = 0;
	struct jail *j = (struct jail *)1;
	cr_expect_eq(jail_spawn(&c, &pid, &j, &e), -EINVAL);
	cr_expect_null(j);
	cr_expect_eq(pid, 0);
}

Test(jail_names, computed_once_hold_every_derived_name)
{
	struct jail_names n;
	cr_assert_eq(jail_names_make("vm-abc", &n, NULL), 0);
	cr_expect_str_eq(n.id, "vm-abc");
	cr_expect_str_eq(n.dir, JAIL_RUN_DIR "/vm-abc");
	cr_expect_str_eq(n.cgroup, "vm-abc");
	char p[80];
	snprintf(p, sizeof(p), "/run/netns/%s", n.netns);
	cr_expect_str_eq(n.netns_path, p);
	cr_expect_geq(n.uid, JAIL_UID_BASE);
	cr_expect_eq((unsigned)n.gid, (unsigned)n.uid);
	cr_expect_lt(n.slot, JAIL_SLOTS);
	cr_expect_not(n.slot_claimed);
}

Test(jail_names, fit_kernel_limits_for_the_longest_id)
{
	char id[JAIL_ID_MAX + 1];
	memset(id, 'z', JAIL_ID_MAX);
	id[JAIL_ID_MAX] = 0;
	struct jail_names n;
	cr_assert_eq(jail_names_make(id, &n, NULL), 0);
	cr_expect_lt(strlen(n.veth_host), IFNAMSIZ, "veth name %s too long for IFNAMSIZ", n.veth_host);
	/* NFT_NAME_MAXLEN is 256 in the kernel; ours are fixed-length. */
	cr_expect_lt(strlen(n.table), 256);
	cr_expect_lt(strlen(n.chain_fwd), 256);
	cr_expect_eq(strncmp(n.table, "ironclaw_", 9), 0);
	cr_expect_eq(strncmp(n.veth_host, "icv", 3), 0);
	cr_expect_eq(strncmp(n.netns, "ic-", 3), 0);
	cr_expect_lt(strlen(JAIL_NS_TAP), IFNAMSIZ);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

Test(jail_names, distinct_ids_get_distinct_names)
{
	/* 100k ids that differ in small ways (the realistic case): no two share a
	 * veth name (the shortest, 48 bits of hash) or a table name. */
	enum { N = 100000 };
	char (*veth)[16] = calloc(N, 16);
	char (*table)[32] = calloc(N, 32);
	cr_assert(veth && table);
	for (int i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), "vm-%d", i);
		struct jail_names n;
		cr_assert_eq(jail_names_make(id, &n, NULL), 0);
		memcpy(veth[i], n.veth_host, 16);
		memcpy(table[i], n.table, 32);
	}
	qsort(veth, N, 16, cmp_str);
	qsort(table, N, 32, cmp_str);
	for (int i = 1; i < N; i++) {
		cr_assert_str_neq(veth[i - 1], veth[i]);
		cr_assert_str_neq(table[i - 1], table[i]);
	}
	free(veth);
	free(table);
}

Test(jail_net, address_plan_is_a_pair_of_slash30s)
{
	struct jail_net_addr a;
	jail_slot_addr(12345, &a);
	cr_expect_eq(a.prefix, 30);
	cr_expect_eq(a.guest_ip, a.gw + 1);
	cr_expect_eq(a.gw & ~3u, a.guest_ip & ~3u, "gateway and guest share a /30");
	cr_expect_eq(a.host_ip & 0xffc00000u, 0x64400000u, "inside 100.64.0.0/10");
	cr_expect_neq(a.host_ip & ~3u, a.gw & ~3u, "veth link and tap link are different /30s");
	char buf[16];
	snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a.guest_ip >> 24, (a.guest_ip >> 16) & 255, (a.guest_ip >> 8) & 255,
		 a.guest_ip & 255);
	cr_expect_str_eq(a.guest_ip_str, buf);
	struct jail_net_addr b2;
	jail_slot_addr(12346, &b2);
	cr_expect_eq(b2.host_ip, a.host_ip + 8, "slots are 8 addresses apart");
}

Test(jail_net, a_taken_slot_means_the_next_and_release_frees_it, .init = sandbox_make, .fini = sandbox_remove)
{
	struct err e = { 0 };
	struct jail_names a, b, c;
	jail_test_force_slot(777);
	cr_assert_eq(jail_names_make("t-slot-a", &a, &e), 0);
	cr_assert_eq(jail_names_make("t-slot-b", &b, &e), 0);
	cr_assert_eq(jail_names_make("t-slot-c", &c, &e), 0);
	jail_test_force_slot(-1);
	cr_assert_eq(a.slot, 777);
	cr_assert_eq(b.slot, 777, "the hook makes the ids clash");
	/* Records first, as jail_prepare_dir writes them: gc keeps live claims. */
	cr_assert_eq(jail_prepare_dir(&a, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_prepare_dir(&b, &e), 0, "%s", e.msg);
	struct jail_net_addr aa, ba, ca;
	cr_assert_eq(jail_net_reserve(&a, &aa, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_net_reserve(&b, &ba, &e), 0, "%s", e.msg);
	cr_expect_eq(a.slot, 777);
	cr_expect_eq(b.slot, 778, "a clash takes the next slot");
	cr_expect_neq(aa.guest_ip, ba.guest_ip);
	cr_expect_neq(aa.host_ip, ba.host_ip);
	/* Idempotent for the holder. */
	struct jail_net_addr again;
	cr_expect_eq(jail_net_reserve(&a, &again, &e), 0);
	cr_expect_eq(again.guest_ip, aa.guest_ip);
	/* Released by discard: the slot is free for the next claimer. */
	cr_assert_eq(jail_discard(&a, &e), 0, "%s", e.msg);
	c.slot = 777;
	cr_assert_eq(jail_prepare_dir(&c, &e), 0, "%s", e.msg);
	cr_assert_eq(jail_net_reserve(&c, &ca, &e), 0, "%s", e.msg);
	cr_expect_eq(c.slot, 777, "a released slot is taken again");
	/* Nothing left once both are discarded. */
	jail_discard(&b, NULL);
	jail_discard(&c, NULL);
	char p[160];
	snprintf(p, sizeof(p), "%s/run/a/.state/slot-777", sandbox);
	cr_expect_neq(access(p, F_OK), 0, "slot claim left behind");
	snprintf(p, sizeof(p), "%s/run/a/.state/slot-778", sandbox);
	cr_expect_neq(access(p, F_OK), 0, "slot claim left behind");
	snprintf(p, sizeof(p), "%s/run/a/t-slot-b", sandbox);
	cr_expect_neq(access(p, F_OK), 0, "VM dir left behind");
}

Test(rootfs, loader_is_asked_once_per_binary)
{
	struct rootfs_plan *p = calloc(1, sizeof(*p));
	cr_assert(p);
	struct err e = { 0 };
	unsigned q0 = rootfs_test_queries();
	cr_assert_eq(rootfs_plan_build(p, "/bin/sh", NULL, 0, 0, &e), 0, "%s", e.msg);
	size_t n1 = p->n;
	unsigned q1 = rootfs_test_queries();
	for (int i = 0; i < 5; i++)
		cr_assert_eq(rootfs_plan_build(p, "/bin/sh", NULL, 0, 0, &e), 0, "%s", e.msg);
	cr_expect_eq(p->n, n1, "the cached plan is the same");
	cr_expect_leq(q1 - q0, 1u);
	cr_expect_eq(rootfs_test_queries(), q1, "the loader was asked again for the same binary");
	free(p);
}

static int parse(const char *s, struct jail_net_allow *out, size_t *n, struct err *e)
{
	return jail_net_parse_allow(s, strlen(s), out, 4, n, e);
}

Test(jail_net, allow_parser_accepts_the_documented_forms)
{
	struct jail_net_allow a[4];
	size_t n;
	struct err e = { 0 };
	cr_assert_eq(parse("allow=10.0.0.0/8:443,1.1.1.1:53,192.168.1.7", a, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 3);
	cr_expect_eq(a[0].addr, 0x0a000000u);
	cr_expect_eq(a[0].prefix, 8);
	cr_expect_eq(a[0].port, 443);
	cr_expect_eq(a[1].addr, 0x01010101u);
	cr_expect_eq(a[1].prefix, 32);
	cr_expect_eq(a[1].port, 53);
	cr_expect_eq(a[2].port, 0);
	cr_assert_eq(parse("none", a, &n, &e), 0);
	cr_expect_eq(n, 0);
}

Test(jail_net, allow_parser_rejects_bad_entries_with_the_entry_quoted)
{
	struct jail_net_allow a[4];
	size_t n;
	struct err e = { 0 };
	const char *bad[] = { "allow=", "allow=1.2.3", "allow=1.2.3.4.5", "allow=256.1.1.1", "allow=1.2.3.4/33",
			      "allow=1.2.3.4:0", "allow=1.2.3.4:65536", "allow=1.2.3.4:", "allow=1.2.3.4,",
			      "allow=,1.2.3.4", "allow=-1.2.3.4", "allow=1.2.3.4 ", "deny=1.2.3.4", "allow=a.b.c.d",
			      "allow=1.2.3.4/8/8", "allow=0001.2.3.4", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		cr_expect_neq(parse(bad[i], a, &n, &e), 0, "'%s' accepted", bad[i]);
		cr_expect(e.msg[0] && strchr(e.msg, '\n') == NULL, "one-line message for '%s'", bad[i]);
	}
	err_clear(&e);
	parse("allow=1.2.3.4:99999", a, &n, &e);
	cr_expect(strstr(e.msg, "'1.2.3.4:99999'"), "the bad entry is quoted: %s", e.msg);
	cr_expect_eq(parse("allow=1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5", a, &n, &e), -E2BIG);
}

Test(seccomp, policy_table_is_well_formed)
{
	for (int kvm = 0; kvm < 2; kvm++) {
		const struct jail_seccomp_policy *p = qemu_seccomp_policy(kvm);
		cr_assert_gt(p->n_rules, 50);
		cr_expect(p->name && strstr(p->name, kvm ? "KVM" : "TCG"));
		for (size_t i = 0; i < p->n_rules; i++)
			cr_expect(p->rules[i].why && strlen(p->rules[i].why) > 10, "%s has no reason", p->rules[i].name);
	}
	cr_expect_gt(qemu_seccomp_policy(1)->n_rules, qemu_seccomp_policy(0)->n_rules, "KVM adds ioctls");
}

static int policy_has(int kvm, const char *name)
{
	const struct jail_seccomp_policy *p = qemu_seccomp_policy(kvm);
	for (size_t i = 0; i < p->n_rules; i++)
		if (!strcmp(p->rules[i].name, name) && p->rules[i].action != JAIL_SECCOMP_ERRNO)
			return 1;
	return 0;
}

Test(seccomp, dangerous_syscalls_are_not_allowed)
{
	const char *never[] = { "mount", "umount2", "ptrace", "kexec_load", "kexec_file_load", "init_module",
				"finit_module", "bpf", "perf_event_open", "setns", "unshare", "pivot_root", "chroot",
				"keyctl", "add_key", "userfaultfd", "process_vm_writev", "fork", "vfork", "reboot",
				"io_uring_enter", "open_by_handle_at", "setuid", "capset" };
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		cr_expect_not(policy_has(0, never[i]), "%s allowed under TCG", never[i]);
		cr_expect_not(policy_has(1, never[i]), "%s allowed under KVM", never[i]);
	}
}

Test(seccomp, count_is_measured_against_libseccomp)
{
	struct jail_seccomp_count tcg, kvm;
	cr_assert_eq(jail_seccomp_count(qemu_seccomp_policy(0), &tcg, NULL), 0);
	cr_assert_eq(jail_seccomp_count(qemu_seccomp_policy(1), &kvm, NULL), 0);
	cr_expect_gt(tcg.arch_total, 300, "libseccomp's x86_64 table has %u", tcg.arch_total);
	cr_expect_lt(tcg.allowed, tcg.arch_total / 3, "%u of %u allowed", tcg.allowed, tcg.arch_total);
	cr_expect_gt(tcg.conditional, 3);   /* socket, clone, ioctl, prctl */
	cr_expect_eq(tcg.errno_only, 2);    /* clone3, io_uring_setup */
	cr_expect_eq(kvm.allowed, tcg.allowed, "KVM adds ioctl requests, not syscalls");
}

Test(seccomp, compiles_for_both_variants_and_refuses_no_policy)
{
	struct secpol_program p;
	struct err e = { 0 };
	cr_assert_eq(secpol_compile(qemu_seccomp_policy(0), &p, &e), 0, "%s", e.msg);
	cr_expect_gt(p.len, 50);
	unsigned short tcg_len = p.len;
	secpol_program_free(&p);
	cr_assert_eq(secpol_compile(qemu_seccomp_policy(1), &p, &e), 0, "%s", e.msg);
	cr_expect_gt(p.len, tcg_len, "the KVM variant has more ioctl checks");
	secpol_program_free(&p);
	cr_expect_eq(secpol_compile(NULL, &p, &e), -EINVAL, "no policy must not mean no filter");
	struct jail_seccomp_policy empty = { "empty", NULL, 0 };
	cr_expect_eq(secpol_compile(&empty, &p, &e), -EINVAL);
	char name[32];
	cr_expect_eq(secpol_syscall_name(0, 165, name, sizeof(name)), 0);
	cr_expect_str_eq(name, "mount");
	cr_expect_str_eq(secpol_arch_name(0, 0x40000000L | 39), "x32");
}

static void ev_make(struct audit_event *ev, int i)
{
	memset(ev, 0, sizeof(*ev));
	ev->time = 1000 + i;
	snprintf(ev->kind, sizeof(ev->kind), "seccomp");
	snprintf(ev->vm_id, sizeof(ev->vm_id), "vm-%d", i);
	ev->pid = 100 + i;
	ev->syscall = i;
	snprintf(ev->syscall_name, sizeof(ev->syscall_name), "sc%d", i);
}

Test(audit, ring_is_bounded_drops_oldest_and_counts)
{
	struct audit_ring *r = malloc(sizeof(*r));
	cr_assert(r);
	audit_ring_init(r, 4);
	struct audit_event ev;
	for (int i = 0; i < 10; i++) {
		ev_make(&ev, i);
		audit_ring_push(r, &ev);
	}
	cr_expect_eq(r->count, 4);
	cr_expect_eq(r->dropped, 6);
	for (size_t i = 0; i < 4; i++)
		cr_expect_eq(audit_ring_get(r, i)->syscall, (long)(6 + i), "oldest kept first");
	cr_expect_null(audit_ring_get(r, 4));
	audit_ring_init(r, 100000);
	cr_expect_eq(r->cap, AUDIT_RING_MAX, "capacity is clamped");
	free(r);
}

Test(audit, log_round_trips_and_skips_damaged_lines)
{
	char dir[] = "/tmp/ironclaw-audit-XXXXXX";
	cr_assert(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/sub/audit.jsonl", dir);
	struct audit_event ev;
	for (int i = 0; i < 3; i++) {
		ev_make(&ev, i);
		cr_assert_eq(audit_log_append(path, &ev, NULL), 0);
	}
	FILE *f = fopen(path, "a");
	fputs("not json\n{\"no\":\"kind\"}\n", f);
	for (int i = 0; i < AUDIT_LINE_MAX + 10; i++)
		fputc('x', f);
	fputc('\n', f);
	fclose(f);
	ev_make(&ev, 3);
	cr_assert_eq(audit_log_append(path, &ev, NULL), 0);
	struct audit_ring *r = malloc(sizeof(*r));
	audit_ring_init(r, 2);
	cr_assert_eq(audit_log_load(path, r, NULL), 0);
	cr_expect_eq(r->count, 2);
	cr_expect_eq(r->dropped, 2, "the cap applies to a loaded log too");
	cr_expect_eq(audit_ring_get(r, 1)->syscall, 3);
	cr_expect_str_eq(audit_ring_get(r, 1)->vm_id, "vm-3");
	free(r);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}
