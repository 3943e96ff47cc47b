/* The daemon restores its VMs from templates: a shape without one boots cold
 * while the template is built in the background, then every VM of the shape
 * is a restore (made "snapshot"), byte-exact on exec; two pool VMs restored
 * from one template have their own identity; a corrupt template is counted,
 * skipped (cold) and rebuilt; a state that passes the manifest but that QEMU
 * refuses falls back to a cold boot in the same request. Each test has its
 * own template cache (XDG_CACHE_HOME), so no other test's or user's template
 * is touched. The waits poll /metrics: no event tells another process that a
 * template was built. */
#include "test_serve_util.h"
#include "integration/lib/vmrun.h"

#include <dirent.h>
#include <glob.h>
#include <openssl/evp.h>

#define BIG (8u << 20)

static void tpl_cache(char *dir, size_t n, const char *name, int fresh)
{
	snprintf(dir, n, "%s/build/test-cache/%s", harness_root(), name);
	if (fresh) {
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
		cr_assert_eq(system(cmd), 0);
	}
	setenv("XDG_CACHE_HOME", dir, 1);
	vmrun_use_checkout_image();
}

static void tpl_wait_built(struct serve_d *d, double want)
{
	for (int i = 0; i < 3000 && metric(d, "ironclaw_templates_built_total") < want; i++) {
		cr_assert_eq(metric(d, "ironclaw_template_build_failures_total"), 0,
			     "the template build failed; see %s", d->log);
		usleep(100000);
	}
	cr_assert_geq(metric(d, "ironclaw_templates_built_total"), want, "see %s", d->log);
}

/* The one template directory under the cache (its state path in out). */
static void tpl_state_path(const char *cache, char *out, size_t n)
{
	char cmd[4400];
	snprintf(cmd, sizeof(cmd), "ls -d %s/ironclaw/templates/*/state", cache);
	FILE *f = popen(cmd, "r");
	cr_assert(f && fgets(out, (int)n, f), "no template under %s", cache);
	pclose(f);
	out[strcspn(out, "\n")] = 0;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char d[32];
	unsigned dl = 0;
	cr_assert_eq(EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL), 1);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* `seq 1 2000000 | head -c 8 MiB`, made here. */
static void want_seq_hash(char out[65])
{
	char *b = malloc(BIG + 32);
	size_t len = 0;
	for (unsigned i = 1; len < BIG; i++)
		len += (size_t)sprintf(b + len, "%u\n", i);
	sha256_hex(b, BIG, out);
	free(b);
}

Test(serve_snapshot, built_in_background_then_restored_byte_exact_corrupt_falls_back,
     .timeout = 900)
{
	char cache[4096], state[4400];
	tpl_cache(cache, sizeof(cache), "serve-snapshot-build", 1);
	struct serve_d d;
	serve_d_start(&d, NULL);
	char made[16];
	/* No template yet: this one boots cold; its lookup starts the build. */
	char *a = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "cold");
	sb_delete(&d, a);
	free(a);
	tpl_wait_built(&d, 1);
	char *b = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "snapshot", "a VM of a shape with a template was not restored");
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_created_total{made=\"snapshot\"}"), 1);
	int code;
	size_t len = 0;
	char *out = sb_exec(&d, b, "[\"sh\",\"-c\",\"seq 1 2000000 | head -c 8388608\"]", &code, &len);
	cr_assert_eq(code, 0);
	cr_assert_eq(len, BIG);
	char got[65], want[65];
	sha256_hex(out, len, got);
	want_seq_hash(want);
	cr_assert_str_eq(got, want, "8 MiB of exec output from a restored VM differ");
	free(out);
	json_t *j = sb_get_json(&d, b);
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	sb_delete(&d, b);
	free(b);
	sb_wait_torn_down(&d);
	cr_assert_not(vm_dir_exists(vm), "the restored VM's directory was left behind");
	cr_assert_eq(vmm_count(d.pid), 0, "a VMM was left behind");
	serve_d_stop(&d);

	/* A flipped byte: the manifest check refuses it, the VM boots cold, the
	 * template is counted unusable and rebuilt. */
	tpl_state_path(cache, state, sizeof(state));
	int fd = open(state, O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char c;
	cr_assert_eq(pread(fd, &c, 1, 4096), 1);
	c ^= 0x5a;
	cr_assert_eq(pwrite(fd, &c, 1, 4096), 1);
	close(fd);
	serve_d_start_at(&d, NULL);
	char *e = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "cold", "a corrupt template was used");
	cr_assert_eq(metric(&d, "ironclaw_templates_unusable_total"), 1);
	free(sb_exec(&d, e, "[\"true\"]", &code, NULL));
	cr_assert_eq(code, 0);
	sb_delete(&d, e);
	free(e);
	tpl_wait_built(&d, 1);
	char *f = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "snapshot", "the rebuilt template was not used");
	sb_delete(&d, f);
	free(f);
	serve_d_stop(&d);

	/* A state that passes its manifest (rewritten to match) but that QEMU
	 * cannot load: the restore fails and the same request boots cold. */
	tpl_state_path(cache, state, sizeof(state));
	char dir[4400], cmd[9000];
	snprintf(dir, sizeof(dir), "%s", state);
	*strrchr(dir, '/') = 0;
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd '%s'; s=$(stat -c %%s state); truncate -s $((s/3)) state; "
		 "truncate -s $s state; h=$(sha256sum state | cut -c1-64); "
		 "sed -i \"s/\\\"state_sha256\\\": \\\"[0-9a-f]*\\\"/\\\"state_sha256\\\": \\\"$h\\\"/\" manifest.json; "
		 "grep -q $h manifest.json", dir);
	cr_assert_eq(system(cmd), 0, "rewriting the template under %s", dir);
	serve_d_start_at(&d, NULL);
	char *g = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "cold");
	cr_assert_eq(metric(&d, "ironclaw_restore_fallbacks_total"), 1, "see %s", d.log);
	free(sb_exec(&d, g, "[\"echo\",\"hi\"]", &code, NULL));
	cr_assert_eq(code, 0);
	sb_delete(&d, g);
	free(g);
	serve_d_stop(&d);
}

Test(serve_snapshot, pool_vms_restored_from_one_template_have_their_own_identity,
     .timeout = 900)
{
	char cache[4096];
	/* Kept across runs: the key says whether the template still fits. */
	tpl_cache(cache, sizeof(cache), "serve-snapshot-pool", 0);
	struct serve_d d;
	serve_d_start(&d, NULL);
	char made[16];
	char *a = sb_create(&d, "{}", made, sizeof(made));
	sb_delete(&d, a);
	free(a);
	if (strcmp(made, "snapshot"))
		tpl_wait_built(&d, 1);
	serve_d_stop(&d);

	serve_d_start_at(&d, (char *[]){ "--pool", "2", NULL });
	for (int i = 0; i < 6000 && metric(&d, "ironclaw_pool_ready") < 2; i++)
		usleep(50000);
	cr_assert_eq(metric(&d, "ironclaw_pool_ready"), 2);
	cr_assert_eq(metric(&d, "ironclaw_vms_made_total{how=\"snapshot\"}"), 2,
		     "the pool's VMs were not restored from the template");
	cr_assert_eq(metric(&d, "ironclaw_vms_made_total{how=\"cold\"}"), 0);
	char *id[2], *o[2];
	int code;
	for (int i = 0; i < 2; i++) {
		id[i] = sb_create(&d, "{}", made, sizeof(made));
		cr_assert_str_eq(made, "pool");
	}
	for (int i = 0; i < 2; i++) {
		o[i] = sb_exec(&d, id[i],
			       "[\"sh\",\"-c\",\"head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\\\n';"
			       " echo; cat /proc/sys/kernel/random/uuid; hostname\"]",
			       &code, NULL);
		cr_assert_eq(code, 0);
	}
	char *l0[3], *l1[3], *s0 = NULL, *s1 = NULL;
	for (int k = 0; k < 3; k++) {
		l0[k] = strtok_r(k ? NULL : o[0], "\n", &s0);
		l1[k] = strtok_r(k ? NULL : o[1], "\n", &s1);
		cr_assert(l0[k] && l1[k], "short output");
	}
	cr_assert_eq(strlen(l0[0]), 64, "%s", l0[0]);
	cr_assert_str_neq(l0[0], l1[0], "two clones read the same /dev/urandom bytes");
	cr_assert_str_neq(l0[1], l1[1], "two clones made the same uuid");
	cr_assert_str_neq(l0[2], l1[2], "two clones have the same hostname");
	for (int i = 0; i < 2; i++) {
		sb_delete(&d, id[i]);
		free(id[i]);
		free(o[i]);
	}
	serve_d_stop(&d);
}

/* A sandbox is never reused, so delete kills its VMM at once (vm_destroy_now)
 * instead of asking the guest to power off, and still leaves nothing: no
 * VMM, no netns (its nft table lived in it), no cgroup, no directory. */
Test(serve_snapshot, delete_kills_at_once_and_leaves_nothing, .timeout = 600)
{
	char cache[4096];
	tpl_cache(cache, sizeof(cache), "serve-snapshot-pool", 0);
	setenv("IRONCLAW_LOG", "debug", 1);
	struct serve_d d;
	serve_d_start(&d, NULL);
	unsetenv("IRONCLAW_LOG");
	char made[16];
	char *id = sb_create(&d, "{\"net\": \"allow=192.0.2.1:80\"}", made, sizeof(made));
	json_t *j = sb_get_json(&d, id);
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	pid_t pids[4];
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", d.pid, pids, 4), 1);
	char p[320];
	struct stat ns;
	snprintf(p, sizeof(p), "/proc/%d/ns/net", (int)pids[0]);
	cr_assert_eq(stat(p, &ns), 0);
	/* Its cgroups: <root>/ironclaw/<vm> (v2) or <root>/<controller>/ironclaw/<vm>. */
	char pat[256];
	glob_t g;
	snprintf(pat, sizeof(pat), "/sys/fs/cgroup{,/*}/ironclaw/%s", vm);
	cr_assert_eq(glob(pat, GLOB_BRACE, NULL, &g), 0, "the VM has no cgroup (%s)", pat);
	globfree(&g);
	struct stat st;
	sb_delete(&d, id);
	free(id);
	sb_wait_torn_down(&d);
	cr_assert_eq(vmm_count(d.pid), 0, "the VMM outlived the delete");
	cr_assert_not(vm_dir_exists(vm), "the VM's directory was left behind");
	cr_assert_neq(glob(pat, GLOB_BRACE, NULL, &g), 0, "the VM's cgroup was left behind");
	DIR *nd = opendir("/run/netns");
	for (struct dirent *de; nd && (de = readdir(nd));) {
		snprintf(p, sizeof(p), "/run/netns/%s", de->d_name);
		cr_assert(stat(p, &st) < 0 || st.st_ino != ns.st_ino || st.st_dev != ns.st_dev,
			  "the VM's netns %s was left behind", p);
	}
	if (nd)
		closedir(nd);
	/* How it stopped, from the daemon's own account (its log). */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "grep -q 'VM %s stopped: the VMM was killed' %s", vm, d.log);
	cr_assert_eq(system(cmd), 0,
		     "the sandbox's guest was asked to power off instead of killed at once");
	serve_d_stop(&d);
}
