/* Unit tests of the jail's pure parts: VM id validation, kernel object names
 * (within limits, distinct for distinct ids), the address plan, the --net
 * allowlist parser, the seccomp policy table and its measured count, and the
 * bounded audit ring and its JSONL log. */
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "jail/jail.h"
#include "jail/jail_internal.h"
#include "jail/seccomp.h"

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

Test(jail_id, paths_are_never_made_from_bad_ids)
{
	struct err e = { 0 };
	char path[256] = "untouched";
	cr_expect_eq(jail_prepare_dir("../../etc", path, sizeof(path), &e), -EINVAL);
	cr_expect_str_eq(path, "untouched");
	struct jail_net_addr a;
	cr_expect_eq(jail_net_plan("UPPER", &a, &e), -EINVAL);
	char *argv[] = { "/bin/true", NULL };
	struct jail_config c = { .vm_id = "../x", .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	pid_t pid = 0;
	struct jail *j = (struct jail *)1;
	cr_expect_eq(jail_spawn(&c, &pid, &j, &e), -EINVAL);
	cr_expect_null(j);
	cr_expect_eq(pid, 0);
}

Test(jail_names, fit_kernel_limits_for_the_longest_id)
{
	char id[JAIL_ID_MAX + 1];
	memset(id, 'z', JAIL_ID_MAX);
	id[JAIL_ID_MAX] = 0;
	struct jail_names n;
	jail_names_for(id, &n);
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
		jail_names_for(id, &n);
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
	cr_assert_eq(jail_net_plan("vm-1", &a, NULL), 0);
	cr_expect_eq(a.prefix, 30);
	cr_expect_eq(a.guest_ip, a.gw + 1);
	cr_expect_eq(a.gw & ~3u, a.guest_ip & ~3u, "gateway and guest share a /30");
	cr_expect_eq(a.host_ip & 0xffc00000u, 0x64400000u, "inside 100.64.0.0/10");
	cr_expect_neq(a.host_ip & ~3u, a.gw & ~3u, "veth link and tap link are different /30s");
	char buf[16];
	snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a.guest_ip >> 24, (a.guest_ip >> 16) & 255, (a.guest_ip >> 8) & 255,
		 a.guest_ip & 255);
	cr_expect_str_eq(a.guest_ip_str, buf);
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
	size_t n;
	const struct secpol_entry *t = secpol_table(&n);
	cr_assert_gt(n, 50);
	for (size_t i = 0; i < n; i++) {
		cr_expect(t[i].why && strlen(t[i].why) > 10, "%s has no reason", t[i].name);
		cr_expect(t[i].variants & SECPOL_ALL, "%s serves no variant", t[i].name);
	}
}

static int policy_has(unsigned variant, const char *name)
{
	size_t n;
	const struct secpol_entry *t = secpol_table(&n);
	for (size_t i = 0; i < n; i++)
		if ((t[i].variants & variant) && !strcmp(t[i].name, name) && t[i].action != SECPOL_ERRNO)
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
		cr_expect_not(policy_has(SECPOL_TCG, never[i]), "%s allowed under TCG", never[i]);
		cr_expect_not(policy_has(SECPOL_KVM, never[i]), "%s allowed under KVM", never[i]);
	}
}

Test(seccomp, count_is_measured_against_libseccomp)
{
	struct secpol_count tcg, kvm;
	cr_assert_eq(secpol_count(SECPOL_TCG, &tcg, NULL), 0);
	cr_assert_eq(secpol_count(SECPOL_KVM, &kvm, NULL), 0);
	cr_expect_gt(tcg.arch_total, 300, "libseccomp's x86_64 table has %u", tcg.arch_total);
	cr_expect_lt(tcg.allowed, tcg.arch_total / 3, "%u of %u allowed", tcg.allowed, tcg.arch_total);
	cr_expect_gt(tcg.conditional, 3);   /* socket, clone, ioctl, prctl */
	cr_expect_eq(tcg.errno_only, 2);    /* clone3, io_uring_setup */
	cr_expect_eq(kvm.allowed, tcg.allowed, "KVM adds ioctl requests, not syscalls");
}

Test(seccomp, compiles_for_both_variants)
{
	struct secpol_program p;
	struct err e = { 0 };
	cr_assert_eq(secpol_compile(SECPOL_TCG, &p, &e), 0, "%s", e.msg);
	cr_expect_gt(p.len, 50);
	unsigned short tcg_len = p.len;
	secpol_program_free(&p);
	cr_assert_eq(secpol_compile(SECPOL_KVM, &p, &e), 0, "%s", e.msg);
	cr_expect_gt(p.len, tcg_len, "the KVM variant has more ioctl checks");
	secpol_program_free(&p);
	cr_expect_str_eq(secpol_syscall_name(0, 165), "mount");
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
