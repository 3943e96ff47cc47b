/* Guest images end to end: real VMs boot the small test image (minbase +
 * python3-minimal + git, built once per CI run by `make image-test` into
 * build/images, content-addressed, so a second run only re-resolves) from a
 * read-only virtio-blk disk under a throwaway overlay. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "image/image.h"
#include "lib/harness.h"

#define IMG "ci-small"
#define IMG_PACKAGES "python3-minimal,git"
#define BUDGET_MS 180000
#define BUILD_BUDGET_MS (15 * 60 * 1000)

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

/* The image from `make image-test`, or built here (the same command, so the
 * same id) when a test binary runs on its own. */
static void image_setup(void)
{
	char store[IMAGE_PATH_MAX];
	snprintf(store, sizeof(store), "%s/build/images", harness_root());
	setenv("IRONCLAW_IMAGES", store, 1);
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

TestSuite(image, .init = image_setup, .timeout = 900);

static void exec_img(struct run_result *r, char *const *args)
{
	char *argv[40] = { "exec", "--image", IMG };
	size_t n = 3;
	for (size_t i = 0; args[i] && n < 39; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	run_cli(r, BUDGET_MS, argv);
}

Test(image, python3_prints)
{
	struct run_result r;
	exec_img(&r, (char *[]){ "--", "python3", "-c", "print(6*7)", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "42\n");
	harness_result_free(&r);
}

Test(image, git_init_and_commit)
{
	struct run_result r;
	exec_img(&r, (char *[]){ "--", "sh", "-c",
		"set -e; mkdir /tmp/repo; cd /tmp/repo; git init -q; echo hi >f; git add f;"
		"git -c user.name=t -c user.email=t@example.org commit -qm first; git log --format=%s", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "first\n");
	harness_result_free(&r);
}

/* Writes everywhere it can (every directory of the root, deletions of image
 * files, the raw disk itself); a second VM sees none of it, and the image
 * file's hash is unchanged. */
Test(image, writes_vanish_and_the_image_is_unchanged)
{
	char before[IMAGE_ID_HEX + 1], after[IMAGE_ID_HEX + 1];
	struct err e = { 0 };
	cr_assert_eq(image_sha256_file(img_path, before, &e), 0, "%s", e.msg);
	struct run_result r;
	exec_img(&r, (char *[]){ "--", "sh", "-c",
		"for d in / /etc /usr /usr/bin /usr/lib /var /var/lib/dpkg /root /home /opt /srv /workspace /usr/lib/ironclaw; do"
		"  echo scribble >\"$d/ironclaw-probe\" || exit 10; done;"
		"rm -rf /usr/share/perl* /usr/lib/python3* /etc/passwd || exit 11;"
		"echo hacked >/usr/bin/git || exit 12;"
		"dd if=/dev/zero of=/big bs=1M count=20 2>/dev/null || exit 13;"
		"sync;"
		/* The disk itself: refused by the read-only device. */
		"if dd if=/dev/zero of=/dev/vda bs=4096 count=16 conv=notrunc 2>/dev/null; then echo raw-write-succeeded; fi;"
		"blockdev --setrw /dev/vda 2>/dev/null; dd if=/dev/zero of=/dev/vda bs=4096 count=16 oflag=direct 2>/dev/null && echo raw-write2-succeeded;"
		"cat /ironclaw-probe", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "scribble\n", "stdout: %s", r.out);
	harness_result_free(&r);

	exec_img(&r, (char *[]){ "--", "sh", "-c",
		"ls /ironclaw-probe /etc/ironclaw-probe /usr/bin/ironclaw-probe 2>/dev/null; test -s /etc/passwd && echo passwd-ok;"
		"python3 -c 'print(1)'; git --version | cut -d' ' -f1", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "passwd-ok\n1\ngit\n");
	harness_result_free(&r);
	cr_assert_eq(image_sha256_file(img_path, after, &e), 0, "%s", e.msg);
	cr_assert_str_eq(after, before, "the image file changed");
}

/* Two VMs on one image at the same time: each sees only its own writes. */
Test(image, two_vms_do_not_see_each_others_writes)
{
	char out_a[200], err_a[256], out_b[200], err_b[256];
	snprintf(out_a, sizeof(out_a), "/tmp/ironclaw-test-image-a.%d", getpid());
	snprintf(err_a, sizeof(err_a), "%s.err", out_a);
	snprintf(out_b, sizeof(out_b), "/tmp/ironclaw-test-image-b.%d", getpid());
	snprintf(err_b, sizeof(err_b), "%s.err", out_b);
	/* Each writes its mark, waits long enough for the other to have written
	 * too (both VMs are seen running at once below), then looks. */
	char *a[] = { (char *)harness_ironclaw(), "exec", "--image", IMG, "--", "sh", "-c",
		      "echo a >/mark-a; echo a >/shared; sleep 12; ls / | grep -c '^mark-'; cat /shared", NULL };
	char *b[] = { (char *)harness_ironclaw(), "exec", "--image", IMG, "--", "sh", "-c",
		      "echo b >/mark-b; echo b >/shared; sleep 12; ls / | grep -c '^mark-'; cat /shared", NULL };
	pid_t pa = harness_spawn(a, out_a, err_a);
	pid_t pb = harness_spawn(b, out_b, err_b);
	cr_assert(pa > 0 && pb > 0);
	pid_t qa = harness_await_process("qemu-system-x86_64", pa, 60000);
	pid_t qb = harness_await_process("qemu-system-x86_64", pb, 60000);
	cr_assert(qa > 0 && qb > 0, "both VMs should run at once");
	cr_assert_eq(kill(qa, 0), 0, "VM a ended before VM b started");
	int sa = harness_wait(pa, BUDGET_MS, NULL), sb = harness_wait(pb, BUDGET_MS, NULL);
	cr_assert(sa >= 0 && sb >= 0);
	char *ta = NULL, *tb = NULL;
	FILE *f = fopen(out_a, "r");
	size_t n = 0;
	cr_assert(f);
	cr_assert_geq(getdelim(&ta, &n, 0, f), 0);
	fclose(f);
	f = fopen(out_b, "r");
	n = 0;
	cr_assert(f);
	cr_assert_geq(getdelim(&tb, &n, 0, f), 0);
	fclose(f);
	cr_assert_str_eq(ta, "1\na\n", "VM a saw: %s", ta);
	cr_assert_str_eq(tb, "1\nb\n", "VM b saw: %s", tb);
	free(ta);
	free(tb);
	unlink(out_a);
	unlink(err_a);
	unlink(out_b);
	unlink(err_b);
}

/* A full scratch layer: ENOSPC in the guest, which goes on working; the
 * scratch file (sparse, never larger than --disk) goes with the VM. Host free
 * space is not compared: other VMs on this machine move it more than this. */
Test(image, enospc_on_a_full_scratch_disk_leaves_the_host_fine)
{
	struct run_result r;
	exec_img(&r, (char *[]){ "--disk", "48", "--", "sh", "-c",
		"dd if=/dev/zero of=/fill bs=1M count=200 2>&1 | grep -o 'No space left on device'; echo still-alive; python3 -c 'print(2)'", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "No space left on device\nstill-alive\n2\n");
	harness_result_free(&r);
	/* Other engineers' VMs come and go in /run/ironclaw: look for ours only. */
	char *find[] = { "/usr/bin/find", "/run/ironclaw", "-name", "scratch.img", NULL };
	cr_assert_eq(harness_run(find, NULL, 0, 30000, &r), 0);
	cr_assert_str_eq(r.out, "", "a scratch disk was left behind: %s", r.out);
	harness_result_free(&r);
}

Test(image, enospc_on_the_tmpfs_layer_is_bounded_by_vm_memory)
{
	struct run_result r;
	exec_img(&r, (char *[]){ "--memory", "192", "--", "sh", "-c",
		"dd if=/dev/zero of=/fill bs=1M count=300 2>&1 | grep -o 'No space left on device'; rm /fill; echo ok", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "No space left on device\nok\n");
	harness_result_free(&r);
}

Test(image, a_missing_image_fails_with_a_hint)
{
	struct run_result r;
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", "no-such-image", "--", "true", NULL });
	cr_assert_eq(r.exit_code, 125);
	cr_assert(strstr(r.err, "no image named 'no-such-image'") && strstr(r.err, "image build"), "%s", r.err);
	harness_result_free(&r);
}

static void write_file(const char *path, const void *p, size_t n, off_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	if (size)
		cr_assert_eq(ftruncate(fd, size), 0);
	close(fd);
}

Test(image, corrupt_and_truncated_images_fail_clearly)
{
	char path[128];
	snprintf(path, sizeof(path), "/tmp/ironclaw-test-corrupt.%d.ext4", getpid());
	static char junk[65536];
	memset(junk, 'x', sizeof(junk));
	write_file(path, junk, sizeof(junk), 64 << 20);
	struct run_result r;
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", path, "--", "true", NULL });
	cr_assert_eq(r.exit_code, 125);
	cr_assert(strstr(r.err, "not an ext4 filesystem"), "%s", r.err);
	harness_result_free(&r);

	/* The real image's first 64 KiB (its superblock) in a file half its size. */
	char head[65536];
	int fd = open(img_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
	struct stat st;
	fstat(fd, &st);
	close(fd);
	write_file(path, head, sizeof(head), st.st_size / 2);
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", path, "--", "true", NULL });
	cr_assert_eq(r.exit_code, 125);
	cr_assert(strstr(r.err, "truncated"), "%s", r.err);
	harness_result_free(&r);
	unlink(path);
}

/* A sound ext4 file that is no ironclaw image (no overlay module inside): the
 * guest says why on its console and powers off; the host quotes it, at once. */
Test(image, an_image_the_guest_cannot_boot_fails_fast_with_the_guest_reason)
{
	char dir[128], path[160];
	snprintf(dir, sizeof(dir), "/tmp/ironclaw-test-empty.%d", getpid());
	snprintf(path, sizeof(path), "%s.ext4", dir);
	mkdir(dir, 0755);
	char *mk[] = { "/usr/sbin/mkfs.ext4", "-q", "-F", "-d", dir, path, "16M", NULL };
	struct run_result r;
	cr_assert_eq(harness_run(mk, NULL, 0, 60000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	harness_result_free(&r);
	run_cli(&r, BUDGET_MS, (char *[]){ "exec", "--image", path, "--", "true", NULL });
	cr_assert_eq(r.exit_code, 125);
	cr_assert(strstr(r.err, "overlay.ko"), "%s", r.err);
	cr_assert_lt(r.elapsed_ms, 30000, "took %.0f ms: it waited for a timeout", r.elapsed_ms);
	harness_result_free(&r);
	unlink(path);
	rmdir(dir);
}

Test(image, inspect_ls_json)
{
	struct run_result r;
	run_cli(&r, BUDGET_MS, (char *[]){ "image", "inspect", IMG, "--json", NULL });
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	json_error_t je;
	json_t *o = json_loads(r.out, 0, &je);
	cr_assert(json_is_object(o), "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(o, "path")), img_path);
	cr_assert_eq(strlen(json_string_value(json_object_get(o, "id"))), 64);
	cr_assert_geq(json_array_size(json_object_get(o, "resolved")), 50);
	json_decref(o);
	harness_result_free(&r);
	run_cli(&r, BUDGET_MS, (char *[]){ "image", "ls", NULL });
	cr_assert_eq(r.exit_code, 0, "%s", r.err);
	cr_assert(strstr(r.out, IMG " ") && strstr(r.out, "git,python3-minimal"), "%s", r.out);
	harness_result_free(&r);
}

/* The VMM's RLIMIT_FSIZE (256 MiB by default, for its serial log) is raised
 * to the scratch disk's size: writes past 256 MiB of it reach the disk. */
Test(image, a_scratch_disk_larger_than_256_mib_is_usable)
{
	struct run_result r;
	exec_img(&r, (char *[]){ "--disk", "400", "--", "sh", "-c",
		"dd if=/dev/zero of=/big bs=1M count=300 conv=fsync 2>/dev/null && echo wrote; stat -c %s /big;"
		"echo 3 >/proc/sys/vm/drop_caches; dd if=/big of=/dev/null bs=1M 2>/dev/null && echo read-back", NULL });
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "wrote\n314572800\nread-back\n", "%s", r.out);
	harness_result_free(&r);
}
