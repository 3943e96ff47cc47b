/* `ironclaw doctor`'s guest-image section against stores built here with the
 * real store code: the tools it needs (with a PATH that lacks one), the store's
 * path, how many names and distinct image files it holds and their size (two
 * names on one id count one file), and whether the dev image exists. Images
 * are optional, so none of this may turn a line into FAIL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "lib/harness.h"

static char store[64];

static void setup(void)
{
	snprintf(store, sizeof(store), "/tmp/ironclaw-doctor-XXXXXX");
	cr_assert(mkdtemp(store));
	setenv("IRONCLAW_IMAGES", store, 1);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", store);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", store);
}

TestSuite(doctor, .init = setup, .fini = teardown, .timeout = 300);

static void doctor(struct run_result *r)
{
	char *argv[] = { (char *)harness_ironclaw(), "doctor", NULL };
	cr_assert_eq(harness_run(argv, NULL, 0, 240000, r), 0);
	cr_assert_not(r->timed_out, "doctor hung: %s", r->err);
	cr_assert(!strstr(r->out, "FAIL image") && !strstr(r->out, "FAIL dev image"), "%s", r->out);
}

/* An 8 MiB ext4 file published as NAME, the way a build publishes one. */
static void publish(const char *name, char id[IMAGE_ID_HEX + 1])
{
	char tmp[IMAGE_PATH_MAX], cmd[IMAGE_PATH_MAX + 100];
	struct err e = { 0 };
	cr_assert_eq(image_store_tmpdir(tmp, sizeof(tmp), &e), 0, "%s", e.msg);
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F %s/rootfs.ext4 8M >/dev/null", tmp);
	cr_assert_eq(system(cmd), 0);
	image_sha256_text(name, strlen(name), id);
	json_t *meta = json_pack("{s:s, s:s}", "id", id, "source", "doctor-test");
	struct image_info info;
	cr_assert_eq(image_store_publish(tmp, name, id, meta, &info, &e), 0, "%s", e.msg);
	json_decref(meta);
	image_info_free(&info);
}

Test(doctor, an_empty_store_says_how_to_get_the_dev_image)
{
	struct run_result r;
	doctor(&r);
	char want[160];
	snprintf(want, sizeof(want), "ok   image store   %s: 0 names, 0 images, 0.0 MiB\n", store);
	cr_assert(strstr(r.out, want), "%s", r.out);
	cr_assert(strstr(r.out, "ok   image tools   mmdebstrap, umoci, skopeo, mkfs.ext4 found\n"), "%s", r.out);
	cr_assert(strstr(r.out, "--   dev image     'dev' (python3, git, make, gcc) is not built") &&
		  strstr(r.out, "fix: make image-dev"), "%s", r.out);
	harness_result_free(&r);
}

Test(doctor, names_on_one_image_count_one_file)
{
	char id[IMAGE_ID_HEX + 1];
	struct image_info info;
	struct err e = { 0 };
	publish("dev", id);
	cr_assert_eq(image_store_reuse("dev-again", id, &info, &e), 0, "%s", e.msg);
	image_info_free(&info);
	struct run_result r;
	doctor(&r);
	char want[200];
	snprintf(want, sizeof(want), "ok   image store   %s: 2 names, 1 image, 8.0 MiB\n", store);
	cr_assert(strstr(r.out, want), "%s", r.out);
	snprintf(want, sizeof(want), "ok   dev image     'dev' is %s (8.0 MiB)\n", id);
	cr_assert(strstr(r.out, want), "%s", r.out);
	harness_result_free(&r);
}

Test(doctor, a_missing_tool_gets_the_make_deps_hint)
{
	/* A PATH with every image tool but umoci. */
	char bin[128], cmd[600];
	snprintf(bin, sizeof(bin), "%s/bin", store);
	snprintf(cmd, sizeof(cmd), "mkdir %s && for t in mmdebstrap skopeo mkfs.ext4; do ln -s \"$(command -v $t)\" %s/$t; done",
		 bin, bin);
	cr_assert_eq(system(cmd), 0);
	char *path = strdup(getenv("PATH"));
	setenv("PATH", bin, 1);
	struct run_result r;
	doctor(&r);
	setenv("PATH", path, 1);
	free(path);
	cr_assert(strstr(r.out, "--   image tools   missing: umoci\n") && strstr(r.out, "fix: make deps"), "%s", r.out);
	harness_result_free(&r);
}
