/* `ironclaw image import NAME PATH`: an OCI image layout (DIR or DIR:TAG) or a
 * `docker save` archive becomes an ext4 image. skopeo turns an archive into an
 * OCI layout, umoci unpacks the layers (whiteouts, opaque directories and hard
 * links applied by umoci, not by code of ours), then the guest agent and the
 * overlay module are injected and `mkfs.ext4 -d` packs the root, as for a
 * build. Everything runs as one child shell script on the loop.
 *
 * The id hashes the layout's index.json (it names the manifest digests, which
 * name every layer's digest), the tag and the injected files. */
#include "image/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/io.h"

static const char import_script[] =
	"set -e\n"
	"src=$1 tmp=$2\n"
	/* The unpacked tree can be large: it goes here, in the child, whatever
	 * happens, not in a loop callback of the parent. */
	"trap 'rm -rf \"$tmp/bundle\" \"$tmp/oci\"' EXIT\n"
	"if [ -f \"$src\" ]; then\n"
	"  echo 'I: ironclaw: converting the docker archive with skopeo'\n"
	"  skopeo copy -q \"docker-archive:$src\" \"oci:$tmp/oci:latest\"\n"
	"  ref=$tmp/oci:latest\n"
	"else\n"
	"  case $src in *:*) ref=$src ;; *) ref=$src:latest ;; esac\n"
	"fi\n"
	"cp \"${ref%:*}/index.json\" \"$tmp/index.json\"\n"
	"echo \"I: ironclaw: unpacking ${ref##*/} with umoci\"\n"
	"umoci unpack --image \"$ref\" \"$tmp/bundle\" >/dev/null\n"
	"r=$tmp/bundle/rootfs\n"
	"mkdir -p \"$r/usr/lib/ironclaw\" \"$r/proc\" \"$r/sys\" \"$r/dev\" \"$r/tmp\" \"$r/run\"\n"
	"cp \"$IRONCLAW_HOOK_GUEST\" \"$r/usr/lib/ironclaw/ironclaw-guest\"\n"
	"cp \"$IRONCLAW_HOOK_OVERLAY\" \"$r/usr/lib/ironclaw/overlay.ko\"\n"
	"s=$(du -sm \"$r\" | cut -f1)\n"
	"size=$((s + s / 4 + 64))\n"
	"echo \"I: ironclaw: packing $s MiB into a $size MiB ext4 image\"\n"
	"mkfs.ext4 -q -F -L ironclaw -d \"$r\" \"$tmp/rootfs.ext4\" \"${size}M\"\n";

struct image_import {
	uv_loop_t *loop;
	image_done_cb done;
	void *ctx;
	int progress;
	char name[IMAGE_NAME_MAX + 1];
	char src[IMAGE_PATH_MAX];
	char tmp[IMAGE_PATH_MAX];
	struct image_inject inject;
	uint64_t t0;
};

static void import_finish(struct image_import *im, const struct image_info *info, const struct err *e)
{
	if (im->tmp[0])
		image_store_rmtree(im->tmp);
	im->done(im->ctx, info, e);
	free(im);
}

static void import_on_line(void *ctx, const char *line, size_t len)
{
	struct image_import *im = ctx;
	(void)len;
	if (!im->progress || strncmp(line, "I: ironclaw: ", 13))
		return;
	uv_update_time(im->loop);
	fprintf(stderr, "image %s: [%5.1f s] %s\n", im->name, (double)(uv_now(im->loop) - im->t0) / 1000.0,
		line + 13);
}

static void import_on_exit(void *ctx, int status, const char *tail)
{
	struct image_import *im = ctx;
	struct err e = { 0 };
	struct image_info info;
	char path[IMAGE_PATH_MAX + 32], id[IMAGE_ID_HEX + 1];
	char *index = NULL;
	size_t len = 0;
	if (status != 0) {
		size_t tl = strlen(tail);
		const char *last = tl > 500 ? tail + tl - 500 : tail;
		err_set(&e, -EIO, "importing %s failed (hint: PATH is an OCI layout directory, DIR:TAG, or a `docker save` tar): %s",
			im->src, last);
		import_finish(im, NULL, &e);
		return;
	}
	snprintf(path, sizeof(path), "%s/index.json", im->tmp);
	if (io_read_file(path, 1u << 20, &index, &len) < 0) {
		err_set(&e, -EIO, "the import left no index.json");
		import_finish(im, NULL, &e);
		return;
	}
	unlink(path);
	char *text = NULL;
	if (asprintf(&text, "ironclaw-image-v1\nsource=oci\nref=%s\nguest=%s\noverlay=%s\nindex:\n%.*s",
		     strrchr(im->src, ':') ? strrchr(im->src, ':') : ":latest", im->inject.guest_sha,
		     im->inject.overlay_sha, (int)len, index) < 0)
		text = NULL;
	free(index);
	image_sha256_text(text ? text : "", text ? strlen(text) : 0, id);
	free(text);
	char created[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *meta = json_pack("{s:s,s:s,s:s,s:s,s:s}", "source", "oci", "reference", im->src, "created",
				 created, "guest_sha256", im->inject.guest_sha, "overlay_sha256",
				 im->inject.overlay_sha);
	snprintf(path, sizeof(path), "%s/rootfs.ext4", im->tmp);
	int rc = image_check_file(path, &e);
	if (rc == 0)
		rc = image_store_publish(im->tmp, im->name, id, meta, &info, &e);
	json_decref(meta);
	if (rc < 0) {
		import_finish(im, NULL, &e);
		return;
	}
	im->tmp[0] = '\0';
	import_finish(im, &info, NULL);
	image_info_free(&info);
}

int image_import_start(uv_loop_t *loop, const char *name, const char *path, int progress,
		       image_done_cb done, void *ctx, struct err *e)
{
	int rc;
	struct stat st;
	char dir[IMAGE_PATH_MAX];
	if (!image_name_valid(name))
		return err_set(e, -EINVAL, "'%s' is not an image name", name);
	snprintf(dir, sizeof(dir), "%s", path);
	char *colon = strrchr(dir, ':');
	if (colon && stat(dir, &st) < 0)
		*colon = '\0';
	if (stat(dir, &st) < 0)
		return err_set(e, -errno, "cannot import %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		char index[IMAGE_PATH_MAX + 16];
		snprintf(index, sizeof(index), "%s/index.json", dir);
		if (access(index, R_OK) < 0)
			return err_set(e, -EINVAL, "%s has no index.json: not an OCI image layout (hint: `skopeo copy docker-daemon:IMG oci:DIR:TAG` makes one)",
				       dir);
	}
	struct image_import *im = calloc(1, sizeof(*im));
	if (!im)
		return err_set(e, -ENOMEM, "out of memory");
	im->loop = loop;
	im->done = done;
	im->ctx = ctx;
	im->progress = progress;
	snprintf(im->name, sizeof(im->name), "%s", name);
	if (!realpath(dir, im->src)) {
		free(im);
		return err_set(e, -errno, "cannot resolve %s", dir);
	}
	if (colon && strlen(im->src) + strlen(path + (colon - dir)) < sizeof(im->src))
		strcat(im->src, path + (colon - dir));
	if ((rc = image_inject_find(&im->inject, e)) < 0 ||
	    (rc = image_store_tmpdir(im->tmp, sizeof(im->tmp), e)) < 0) {
		free(im);
		return rc;
	}
	uv_update_time(loop);
	im->t0 = uv_now(loop);
	char env_guest[IMAGE_PATH_MAX + 32], env_overlay[IMAGE_PATH_MAX + 32];
	snprintf(env_guest, sizeof(env_guest), "IRONCLAW_HOOK_GUEST=%s", im->inject.guest);
	snprintf(env_overlay, sizeof(env_overlay), "IRONCLAW_HOOK_OVERLAY=%s", im->inject.overlay);
	char *env[] = { env_guest, env_overlay, NULL };
	char *argv[] = { "sh", "-c", (char *)import_script, "import", im->src, im->tmp, NULL };
	if ((rc = image_proc_start(loop, argv, env, import_on_line, import_on_exit, im, NULL, e)) < 0) {
		image_store_rmtree(im->tmp);
		free(im);
		return rc;
	}
	return 0;
}
