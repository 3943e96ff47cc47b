/* The daemon's image store, as the API process reaches it (priv.h).
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
 *   the store). */
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

static char images_real[PATH_MAX];   /* the store's real path; "" when unknown */
static char images_view[64];         /* "/proc/self/fd/N" in the API process */

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
	return 0;
}

int priv_images_open(int *fd, struct err *e)
{
	*fd = open(images_real, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return err_set(e, -errno, "opening the image store %s: %s", images_real, strerror(errno));
	return 0;
}

void priv_images_link(int fd)
{
	snprintf(images_view, sizeof(images_view), "/proc/self/fd/%d", fd);
	setenv("IRONCLAW_IMAGES", images_view, 1);
}

const char *priv_images_host_path(const char *path, char *buf, size_t cap)
{
	size_t n = strlen(images_view);
	if (!n || strncmp(path, images_view, n) || path[n] != '/')
		return path;
	if ((size_t)snprintf(buf, cap, "%s%s", images_real, path + n) >= cap)
		return NULL;
	return buf;
}

int priv_images_bind_ok(const char *host)
{
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
