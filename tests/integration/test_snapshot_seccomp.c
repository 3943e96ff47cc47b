/* Snapshots must not cost the VMM's sandbox anything: saving and restoring go
 * through a descriptor passed over QMP, so the seccomp filter is the one it was
 * before snapshots existed. This pins the filter, rule by rule (name, action,
 * argument check), for both variants: a change to it fails here and has to be
 * argued for on its own, never slipped in with snapshot code. The pinned digests
 * were taken from the filter as it stood when snapshots were added. */
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
	cr_assert_str_eq(tcg, "bf21416430ac6bf16398f61f2ecd62bf9ba2a98bfb434c566f68bc9bcfa2c110", "the TCG filter changed: %s", tcg);
	cr_assert_str_eq(kvm, "99a0b3cd6c1ee1b5d3e878556a290136fb0bbcc625e6f54b5e82840f0c5d4946", "the KVM filter changed: %s", kvm);
}
