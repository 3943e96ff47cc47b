/* Snapshots must not cost the VMM's sandbox anything: saving and restoring go
 * through a descriptor passed over QMP, so the seccomp filter is the one it was
 * before snapshots existed. This pins the filter, rule by rule (name, action,
 * argument check), for both variants: a change to it fails here and has to be
 * argued for on its own, never slipped in with snapshot code. The pinned digests
 * were taken from the filter as it stood when snapshots were added, plus the
 * one change argued since: preadv, pwritev and fallocate for virtio-blk image
 * and scratch disks (src/vm/qemu_seccomp.c, docs/security.md). */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "vm/vm.h"

static void policy_digest(int kvm, char out[65])
{
	const struct jail_seccomp_policy *p = vm_seccomp_policy(kvm);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct jail_seccomp_rule *r = &p->rules[i];
		char line[256];
		int n = snprintf(line, sizeof(line), "%s %d %u %llx %llx\n", r->name, (int)r->action,
				 r->arg, (unsigned long long)r->mask, (unsigned long long)r->value);
		EVP_DigestUpdate(md, line, (size_t)n);
	}
	unsigned char d[32];
	unsigned dl;
	EVP_DigestFinal_ex(md, d, &dl);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

Test(snapshot_seccomp, the_vmm_filter_is_the_one_from_before_snapshots)
{
	char tcg[65], kvm[65];
	policy_digest(0, tcg);
	policy_digest(1, kvm);
	cr_assert_str_eq(tcg, "7503b96bd42379d12dcb4db26ba1e2f668c7358ac5b4148d7339afc918fceafa", "the TCG filter changed: %s", tcg);
	cr_assert_str_eq(kvm, "1d42288da5e98e050dea417f4be59dd6826ae37521baa6bf6cc335dd0e825fdb", "the KVM filter changed: %s", kvm);
}
