/* The daemon's images, as the API process reaches them (priv.h): the image
 * store (Debian userlands) and the guest image (kernel and initramfs, found
 * by vm_image_find: usually the checkout's build/image).
 *
 * Images are root's (`ironclaw image build` as root): the store's own
 * directories are 0700 and usually sit under a 0700 home, while the files in
 * ids/<id>/ are 0644 (the VMM's uid reads its root disk through a bind). The
 * API process must look images up and read them (the superblock check, the
 * template key's hash), and the parent must bind them into a VMM's jail.
 *
 * - Before the fork (priv_images_prepare, root): the store, ids/ and names/
 *   get the API gid as their group with search (g+x) and nothing more: the
 *   API uid can open a path it names, not list the store, and cannot write in
 *   it. The real path of the store is remembered (both processes keep it).
 * - Before the drop (priv_images_open), the child opens the store O_PATH;
 *   after it (priv_images_link), IRONCLAW_IMAGES becomes /proc/self/fd/N, so
 *   the home above the store is never walked (a process may always use its
 *   own /proc/self/fd). Paths the API process builds start with that view.
 * - A SPAWN carries real paths: priv_images_host_path turns the view back
 *   into the store's real path. The parent cannot check those as the API uid
 *   (the home is in the way), so priv_images_bind_ok accepts exactly one more
 *   kind of read-only bind: <store>/ids/<64 hex>/rootfs.ext4, a regular file,
 *   no symlink on the way (the API uid cannot plant one: it may not write in
 *   the store).
 * - The guest image is the same story without the group change (its files
 *   and directory are world-readable; only the directories above may not be
 *   searchable): a view in IRONCLAW_IMAGE_DIR, and read-only binds of the
 *   regular files directly in it. */
#include "serve/priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "vm/image.h"

static char images_real[PATH_MAX];   /* the store's real path; "" when unknown */
static char images_view[64];         /* "/proc/self/fd/N" in the API process */
static char guest_real[PATH_MAX];    /* the guest image's directory; "" when none */
static char guest_view[64];
static int guest_fd = -1;

static int images_share_dir(const char *path, struct err *e)
{
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "the image store's %s is not a directory", path);
	if ((st.st_gid != PRIV_API_UID && lchown(path, (uid_t)-1, PRIV_API_UID) < 0) ||
	    chmod(path, (st.st_mode & 07777 & ~(mode_t)0060) | 0010) < 0)
		return err_set(e, -errno, "letting the API uid search %s: %s", path, strerror(errno));
	return 0;
}

int priv_images_prepare(struct err *e)
{
	char store[IMAGE_PATH_MAX], sub[IMAGE_PATH_MAX + 16];
	int rc = image_store_dir(store, sizeof(store), e);   /* creates it when missing */
	if (rc < 0)
		return err_wrap(e, "the daemon's image store");
	if (!realpath(store, images_real))
		return err_set(e, -errno, "the image store %s: %s", store, strerror(errno));
	if ((rc = images_share_dir(images_real, e)) < 0)
		return rc;
	const char *kids[] = { "ids", "names" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", images_real, kids[i]);
		if (mkdir(sub, 0700) < 0 && errno != EEXIST)
			return err_set(e, -errno, "creating %s: %s", sub, strerror(errno));
		if ((rc = images_share_dir(sub, e)) < 0)
			return rc;
	}
	/* No guest image is no error here: the first VM says what is missing. */
	struct vm_image g;
	struct err quiet = { 0 };
	if (vm_image_find(&g, &quiet) == 0) {
		char *slash = strrchr(g.kernel, '/');
		if (slash && (size_t)(slash - g.kernel) < sizeof(guest_real))
			snprintf(guest_real, sizeof(guest_real), "%.*s", (int)(slash - g.kernel), g.kernel);
	}
	return 0;
}

int priv_images_open(int *fd, struct err *e)
{
	*fd = open(images_real, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return err_set(e, -errno, "opening the image store %s: %s", images_real, strerror(errno));
	if (guest_real[0] &&
	    (guest_fd = open(guest_real, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return err_set(e, -errno, "opening the guest image %s: %s", guest_real, strerror(errno));
	return 0;
}

void priv_images_link(int fd)
{
	snprintf(images_view, sizeof(images_view), "/proc/self/fd/%d", fd);
	setenv("IRONCLAW_IMAGES", images_view, 1);
	if (guest_fd >= 0) {
		snprintf(guest_view, sizeof(guest_view), "/proc/self/fd/%d", guest_fd);
		setenv("IRONCLAW_IMAGE_DIR", guest_view, 1);
	}
}

/* path under view, as the same path under real; NULL if it is not. */
static const char *images_unview(const char *path, const char *view, const char *real, char *buf,
				 size_t cap, int *fit)
{
	size_t n = strlen(view);
	if (!n || strncmp(path, view, n) || path[n] != '/')
		return NULL;
	*fit = (size_t)snprintf(buf, cap, "%s%s", real, path + n) < cap;
	return buf;
}

const char *priv_images_host_path(const char *path, char *buf, size_t cap)
{
	int fit = 1;
	const char *r = images_unview(path, images_view, images_real, buf, cap, &fit);
	if (!r)
		r = images_unview(path, guest_view, guest_real, buf, cap, &fit);
	return !fit ? NULL : r ? r : path;
}

/* A regular file directly in the guest image's directory. */
static int images_guest_file(const char *host)
{
	size_t n = strlen(guest_real);
	struct stat st;
	return n && !strncmp(host, guest_real, n) && host[n] == '/' && host[n + 1] &&
	       !strchr(host + n + 1, '/') && lstat(host, &st) == 0 && S_ISREG(st.st_mode);
}

int priv_images_bind_ok(const char *host)
{
	if (images_guest_file(host))
		return 1;
	size_t n = strlen(images_real);
	if (!n || strncmp(host, images_real, n) || strncmp(host + n, "/ids/", 5))
		return 0;
	const char *id = host + n + 5;
	for (int i = 0; i < IMAGE_ID_HEX; i++)
		if (!id[i] || !strchr("0123456789abcdef", id[i]))
			return 0;
	if (strcmp(id + IMAGE_ID_HEX, "/rootfs.ext4"))
		return 0;
	/* Root's own walk, no symlink followed at any step below the store. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", (int)(id + IMAGE_ID_HEX - host), host);
	struct stat st;
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && lstat(host, &st) == 0 &&
	       S_ISREG(st.st_mode);
}
