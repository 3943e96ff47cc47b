/* Content addresses: SHA-256 (OpenSSL's EVP, no hand-written crypto) of files
 * and of the canonical text that lists an image's inputs, and the two files
 * every image gets injected: the guest agent (build/ironclaw-guest) and the
 * overlay module of the guest kernel (build/image/modules/overlay.ko; the
 * Debian cloud kernel builds ext4 in but overlayfs as a module, and only the
 * image-boot path needs it, so it lives in the image, not in the initramfs). */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/image.h"

static void image_hex(const unsigned char *md, unsigned n, char hex[IMAGE_ID_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (unsigned i = 0; i < n && i < IMAGE_ID_HEX / 2; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[IMAGE_ID_HEX] = '\0';
}

void image_sha256_text(const char *text, size_t len, char hex[IMAGE_ID_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_Digest(text, len, md, &n, EVP_sha256(), NULL);
	image_hex(md, n, hex);
}

int image_sha256_file(const char *path, char hex[IMAGE_ID_HEX + 1], struct err *e)
{
	int rc = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	static unsigned char chunk[1 << 16];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = err_set(e, -errno, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
		rc = err_set(e, -ENOMEM, "cannot start a SHA-256 digest");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(e, -errno, "reading %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(c, chunk, (size_t)r);
	}
	EVP_DigestFinal_ex(c, md, &n);
	image_hex(md, n, hex);
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(c);
	return rc;
}

/* The guest agent: $IRONCLAW_GUEST, else beside the ironclaw binary or one
 * level up (build/ironclaw-guest serves build/cov/ironclaw too). */
static int image_find_guest(char *out, size_t len)
{
	const char *env = getenv("IRONCLAW_GUEST");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK) == 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return 0;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	if ((size_t)snprintf(out, len, "%s/ironclaw-guest", exe) < len && access(out, R_OK) == 0)
		return 1;
	return (size_t)snprintf(out, len, "%s/../ironclaw-guest", exe) < len && access(out, R_OK) == 0;
}

int image_inject_find(struct image_inject *in, struct err *e)
{
	int rc;
	struct vm_image vi;
	memset(in, 0, sizeof(*in));
	if (!image_find_guest(in->guest, sizeof(in->guest)))
		return err_set(e, -ENOENT, "the guest agent ironclaw-guest was not found (hint: run `make`, or set IRONCLAW_GUEST)");
	if ((rc = vm_image_find(&vi, e)) < 0)
		return err_wrap(e, "finding the guest kernel the image is for");
	/* The kernel and its modules come from the same build (image/build.sh). */
	char *slash = strrchr(vi.kernel, '/');
	if (!slash)
		return err_set(e, -ENOENT, "odd kernel path %s", vi.kernel);
	*slash = '\0';
	if ((size_t)snprintf(in->overlay, sizeof(in->overlay), "%s/modules/overlay.ko", vi.kernel) >=
		    sizeof(in->overlay) ||
	    access(in->overlay, R_OK) < 0)
		return err_set(e, -ENOENT, "%s missing: the kernel's overlay module is needed to boot images (hint: run `make image`)",
			       in->overlay);
	char real[PATH_MAX];
	if (realpath(in->guest, real))
		snprintf(in->guest, sizeof(in->guest), "%s", real);
	if ((rc = image_sha256_file(in->guest, in->guest_sha, e)) < 0 ||
	    (rc = image_sha256_file(in->overlay, in->overlay_sha, e)) < 0)
		return rc;
	return 0;
}
