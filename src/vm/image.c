/* Default image lookup: see image.h. */
#include "vm/image.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dir + "/" + file into out; 0 if it did not fit. */
static int vm_image_join(char *out, size_t len, const char *dir, const char *file)
{
	size_t d = strlen(dir), f = strlen(file);
	if (d + 1 + f + 1 > len)
		return 0;
	memcpy(out, dir, d);
	out[d] = '/';
	memcpy(out + d + 1, file, f + 1);
	return 1;
}

static int vm_image_readable(char *out, size_t len, const char *dir, const char *file)
{
	return vm_image_join(out, len, dir, file) && access(out, R_OK) == 0;
}

/* Prefers the uncompressed vmlinux (booted through PVH): decompressing a
 * bzImage costs about a second under TCG. */
static int vm_image_try(struct vm_image *img, const char *dir_in)
{
	/* Canonical paths: the accelerator cache is keyed by them, and
	 * build/cov/../image must not look like a different image. */
	char dir[PATH_MAX];
	/* A descriptor view (/proc/self/fd/N, the daemon's API process:
	 * serve/priv_images.c) is canonical as it is; realpath would walk the
	 * directories above the real one, which that process may not search. */
	if (!strncmp(dir_in, "/proc/self/fd/", 14)) {
		if ((size_t)snprintf(dir, sizeof(dir), "%s", dir_in) >= sizeof(dir))
			return 0;
	} else if (!realpath(dir_in, dir)) {
		return 0;
	}
	if (!vm_image_readable(img->initrd, sizeof(img->initrd), dir, "initramfs.cpio"))
		return 0;
	return vm_image_readable(img->kernel, sizeof(img->kernel), dir, "vmlinux") ||
	       vm_image_readable(img->kernel, sizeof(img->kernel), dir, "vmlinuz");
}

int vm_image_find(struct vm_image *img, struct err *e)
{
	const char *env = getenv("IRONCLAW_IMAGE_DIR");
	if (env) {
		if (vm_image_try(img, env))
			return 0;
		return err_set(e, -ENOENT,
			       "no guest image in IRONCLAW_IMAGE_DIR=%s (hint: it needs vmlinux or vmlinuz, and initramfs.cpio; run `make image`)",
			       env);
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char dir[PATH_MAX + 16];
			snprintf(dir, sizeof(dir), "%s/image", exe);
			if (vm_image_try(img, dir))
				return 0;
			snprintf(dir, sizeof(dir), "%s/../image", exe);
			if (vm_image_try(img, dir))
				return 0;
		}
	}
	if (vm_image_try(img, "/usr/local/share/ironclaw/image"))
		return 0;
	return err_set(e, -ENOENT,
		       "no guest image found (hint: run `make image`, or set IRONCLAW_IMAGE_DIR)");
}
