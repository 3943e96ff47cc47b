/* Templates of image VMs: the cached test image (minbase + python3-minimal +
 * git, from `make image-test` in build/images, as test_image.c finds it) gets a
 * template of its own, and `ironclaw exec --image` restores from it. A clone
 * runs python3 from the image, its writes land in its throwaway overlay and
 * are gone for the next clone, and the image file's bytes stay the same. The
 * key holds the image's content hash: a copy of the image that differs in one
 * byte (one the filesystem does not use) has another key, finds no template,
 * and boots cold, though a template of the original is right there. The
 * templates live in a cache directory of this binary's own (XDG_CACHE_HOME). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "lib/harness.h"
#include "vm/template.h"
#include "integration/lib/vmrun.h"
#include "test_snapshot_util.h"

#define IMG "ci-small"
#define IMG_PACKAGES "python3-minimal,git"
#define BUDGET_MS 180000
#define BUILD_BUDGET_MS (15 * 60 * 1000)
#define RESTORED "restored from a template"

static char img_path[IMAGE_PATH_MAX];

static void run_cli(struct run_result *r, unsigned budget, char *const *args)
{
	char *argv[40];
	size_t n = 0;
	argv[n++] = (char *)harness_ironclaw();
	for (size_t i = 0; args[i] && n < 39; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(harness_run(argv, NULL, 0, budget, r), 0);
	cr_assert_not(r->timed_out, "ironclaw hung; stderr: %s", r->err);
}

static void simg_setup(void)
{
	char dir[IMAGE_PATH_MAX];
	vmrun_use_checkout_image();
	snprintf(dir, sizeof(dir), "%s/build/test-cache/snapshot-image", harness_root());
	setenv("XDG_CACHE_HOME", dir, 1);
	snprintf(dir, sizeof(dir), "%s/build/images", harness_root());
	setenv("IRONCLAW_IMAGES", dir, 1);
	/* exec says at debug level whether the VM was restored or booted. */
	setenv("IRONCLAW_LOG", "debug", 1);
	struct image_info info;
	struct err e = { 0 };
	if (image_lookup(IMG, &info, &e) < 0) {
		struct run_result r;
		run_cli(&r, BUILD_BUDGET_MS, (char *[]){ "image", "build", IMG, "--packages", IMG_PACKAGES, NULL });
		cr_assert_eq(r.exit_code, 0, "building the test image failed: %s", r.err);
		harness_result_free(&r);
		cr_assert_eq(image_lookup(IMG, &info, &e), 0, "%s", e.msg);
	}
	snprintf(img_path, sizeof(img_path), "%s", info.path);
	image_info_free(&info);
}

TestSuite(snapshot_image, .init = simg_setup, .timeout = 900);

Test(snapshot_image, clone_runs_python_and_its_writes_vanish)
{
	struct vm_template_shape shape = { .root_image = img_path };
	struct vm_template t;
	snap_template_get(&shape, &t);
	cr_assert_str_eq(t.root_image, img_path);
	char before[IMAGE_ID_HEX + 1], after[IMAGE_ID_HEX + 1];
	struct err e = { 0 };
	cr_assert_eq(image_sha256_file(img_path, before, &e), 0, "%s", e.msg);

	struct run_result r;
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", IMG, "--", "sh", "-c",
		"python3 -c 'print(6*7)' && echo mine > /etc/clone-write && cat /etc/clone-write",
		NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "42\nmine\n");
	cr_assert(strstr(r.err, RESTORED), "not restored from the image's template: %s", r.err);
	harness_result_free(&r);

	/* The next clone starts from the template again, not from the last one. */
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", IMG, "--", "sh", "-c",
		"if [ -e /etc/clone-write ]; then echo kept; else echo gone; fi", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "gone\n");
	cr_assert(strstr(r.err, RESTORED), "not restored from the image's template: %s", r.err);
	harness_result_free(&r);

	cr_assert_eq(image_sha256_file(img_path, after, &e), 0, "%s", e.msg);
	cr_assert_str_eq(before, after, "the clones changed the image file");
}

/* A copy of the image that differs in byte 0 (the boot sector, which ext4
 * leaves alone, so it still mounts). */
static void simg_copy_changed(const char *to)
{
	int in = open(img_path, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(in >= 0 && out >= 0, "copying the image: %s", strerror(errno));
	static char buf[1 << 20];
	ssize_t n;
	int first = 1;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (first)
			buf[0] ^= 0x5a;
		first = 0;
		cr_assert_eq(write(out, buf, (size_t)n), n);
	}
	cr_assert_eq(n, 0);
	close(in);
	cr_assert_eq(close(out), 0);
}

Test(snapshot_image, a_template_of_another_image_is_never_used)
{
	struct vm_template_shape shape = { .root_image = img_path };
	struct vm_template t, other;
	snap_template_get(&shape, &t);

	char copy[IMAGE_PATH_MAX + 32];
	snprintf(copy, sizeof(copy), "%s/build/test-cache/snapshot-image/changed.ext4", harness_root());
	simg_copy_changed(copy);
	struct vm_template_shape shape2 = { .root_image = copy };
	struct err e = { 0 };
	cr_assert_eq(vm_template_key(&shape2, &other, &e), 0, "%s", e.msg);
	cr_assert_str_neq(other.key, t.key, "another image's bytes, the same template key");
	cr_assert_eq(vm_template_open(&shape2, &other, &e), -ENOENT, "%s", e.msg);
	err_clear(&e);
	/* And an image VM's key is not the initramfs shape's. */
	struct vm_template_shape plain = { 0 };
	struct vm_template p;
	cr_assert_eq(vm_template_key(&plain, &p, &e), 0, "%s", e.msg);
	cr_assert_str_neq(p.key, t.key);

	struct run_result r;
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", copy, "--", "python3", "-c",
		"print(6*7)", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "42\n");
	cr_assert_null(strstr(r.err, RESTORED), "restored from another image's template: %s", r.err);
	harness_result_free(&r);
	unlink(copy);
}
