/* The image store on disk (see image.h for the layout): names are links to
 * content-addressed ids, so two names built from the same inputs share one
 * file, and publishing a build is a rename plus a link swap (atomic: a VM
 * starting meanwhile sees the old image or the new one, never half of one). */
#include "image/image.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"

#define IMAGE_META_MAX (1u << 20)

void image_info_free(struct image_info *info)
{
	if (info) {
		json_decref(info->meta);
		info->meta = NULL;
	}
}

json_t *image_info_json(const struct image_info *info)
{
	json_t *o = json_deep_copy(info->meta);
	if (!o)
		o = json_object();
	json_object_set_new(o, "name", json_string(info->name));
	json_object_set_new(o, "id", json_string(info->id));
	json_object_set_new(o, "path", json_string(info->path));
	json_object_set_new(o, "bytes", json_integer((json_int_t)info->bytes));
	return o;
}

int image_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > IMAGE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			 (i > 0 && (c == '.' || c == '_' || c == '-'));
		if (!ok)
			return 0;
	}
	return 1;
}

static int image_mkdir(const char *path, struct err *e)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_set(e, -errno, "cannot create %s: %s", path, strerror(errno));
	return 0;
}

int image_store_dir(char *out, size_t len, struct err *e)
{
	const char *env = getenv("IRONCLAW_IMAGES");
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n, rc;
	char sub[IMAGE_PATH_MAX + 16];
	if (env && *env)
		n = snprintf(out, len, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(out, len, "%s/ironclaw/images", xdg);
	else
		n = snprintf(out, len, "%s/.cache/ironclaw/images", home && *home ? home : "/root");
	if (n < 0 || (size_t)n >= len || (size_t)n > IMAGE_PATH_MAX - 128)
		return err_set(e, -ENAMETOOLONG, "image store path too long");
	if (!env || !*env) {
		/* Make the parents of the default location (~/.cache/ironclaw). */
		char parent[IMAGE_PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", out);
		for (char *p = parent + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			mkdir(parent, 0755);
			*p = '/';
		}
	}
	if ((rc = image_mkdir(out, e)) < 0)
		return rc;
	snprintf(sub, sizeof(sub), "%s/ids", out);
	if ((rc = image_mkdir(sub, e)) < 0)
		return rc;
	snprintf(sub, sizeof(sub), "%s/names", out);
	return image_mkdir(sub, e);
}

/* Reads ids/<id>/meta.json and fills info (path, bytes, meta). */
static int image_load_id(const char *store, const char *id, struct image_info *info, struct err *e)
{
	char meta_path[IMAGE_PATH_MAX + 200];
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	snprintf(info->id, sizeof(info->id), "%s", id);
	snprintf(info->path, sizeof(info->path), "%s/ids/%s/rootfs.ext4", store, id);
	snprintf(meta_path, sizeof(meta_path), "%s/ids/%s/meta.json", store, id);
	if (stat(info->path, &st) < 0)
		return err_set(e, -errno, "image file %s: %s", info->path, strerror(errno));
	info->bytes = (uint64_t)st.st_size;
	int rc = io_read_file(meta_path, IMAGE_META_MAX, &text, &len);
	if (rc < 0)
		return err_set(e, rc, "cannot read %s: %s", meta_path, strerror(-rc));
	json_error_t je;
	info->meta = json_loadb(text, len, 0, &je);
	free(text);
	if (!json_is_object(info->meta)) {
		json_decref(info->meta);
		info->meta = NULL;
		return err_set(e, -EINVAL, "%s is not a JSON object (line %d: %s)", meta_path, je.line, je.text);
	}
	return 0;
}

/* names/<name> -> "../ids/<id>": the id, checked to be hex. */
static int image_name_id(const char *store, const char *name, char id[IMAGE_ID_HEX + 1])
{
	char link[IMAGE_PATH_MAX + 200], target[256];
	snprintf(link, sizeof(link), "%s/names/%s", store, name);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	const char *slash = strrchr(target, '/');
	const char *hex = slash ? slash + 1 : target;
	if (strlen(hex) != IMAGE_ID_HEX || strspn(hex, "0123456789abcdef") != IMAGE_ID_HEX)
		return -EINVAL;
	memcpy(id, hex, IMAGE_ID_HEX + 1);
	return 0;
}

int image_lookup(const char *ref, struct image_info *info, struct err *e)
{
	char store[IMAGE_PATH_MAX];
	char id[IMAGE_ID_HEX + 1];
	int rc;
	memset(info, 0, sizeof(*info));
	if (strchr(ref, '/')) {
		/* A path to an image file: used as is, with no metadata. */
		struct stat st;
		if (!realpath(ref, info->path))
			return err_set(e, -errno, "image %s: %s", ref, strerror(errno));
		if ((rc = image_check_file(info->path, e)) < 0)
			return rc;
		if (stat(info->path, &st) == 0)
			info->bytes = (uint64_t)st.st_size;
		snprintf(info->name, sizeof(info->name), "(file)");
		return 0;
	}
	if (!image_name_valid(ref))
		return err_set(e, -EINVAL, "'%s' is not an image name (hint: names are lower-case letters, digits, '.', '_', '-')",
			       ref);
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	if ((rc = image_name_id(store, ref, id)) < 0) {
		if (rc == -ENOENT && !strcmp(ref, "dev"))
			return err_set(e, rc, "no image named 'dev' (hint: build it with `ironclaw image build dev` or `make image-dev`)");
		return err_set(e, rc, "no image named '%s' in %s (hint: `ironclaw image ls` lists them; `ironclaw image build %s --packages ...` makes one)",
			       ref, store, ref);
	}
	snprintf(info->name, sizeof(info->name), "%s", ref);
	if ((rc = image_load_id(store, id, info, e)) < 0) {
		image_info_free(info);
		return err_wrap(e, "image '%s' (hint: `ironclaw image rm %s` and build it again)", ref, ref);
	}
	if ((rc = image_check_file(info->path, e)) < 0) {
		image_info_free(info);
		return rc;
	}
	return 0;
}

int image_list(json_t **out, struct err *e)
{
	char store[IMAGE_PATH_MAX], dir[IMAGE_PATH_MAX + 16];
	int rc;
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	snprintf(dir, sizeof(dir), "%s/names", store);
	DIR *d = opendir(dir);
	if (!d)
		return err_set(e, -errno, "cannot list %s: %s", dir, strerror(errno));
	json_t *arr = json_array();
	struct dirent *de;
	while ((de = readdir(d))) {
		struct image_info info = { 0 };
		char id[IMAGE_ID_HEX + 1];
		if (!image_name_valid(de->d_name) || image_name_id(store, de->d_name, id) < 0)
			continue;
		if ((size_t)snprintf(info.name, sizeof(info.name), "%s", de->d_name) >= sizeof(info.name))
			continue;
		if (image_load_id(store, id, &info, NULL) == 0)
			json_array_append_new(arr, image_info_json(&info));
		image_info_free(&info);
	}
	closedir(d);
	*out = arr;
	return 0;
}

/* Whether any name still links to id. */
static int image_id_used(const char *store, const char *id)
{
	char dir[IMAGE_PATH_MAX + 16], other[IMAGE_ID_HEX + 1];
	snprintf(dir, sizeof(dir), "%s/names", store);
	DIR *d = opendir(dir);
	struct dirent *de;
	int used = 0;
	while (d && (de = readdir(d)))
		if (image_name_valid(de->d_name) && image_name_id(store, de->d_name, other) == 0 &&
		    !strcmp(other, id))
			used = 1;
	if (d)
		closedir(d);
	return used;
}

void image_store_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char p[IMAGE_PATH_MAX + 300];
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			image_store_rmtree(p);
		else
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

int image_remove(const char *name, struct err *e)
{
	char store[IMAGE_PATH_MAX], link[IMAGE_PATH_MAX + 200], dir[IMAGE_PATH_MAX + 200];
	char id[IMAGE_ID_HEX + 1];
	int rc;
	if (!image_name_valid(name))
		return err_set(e, -EINVAL, "'%s' is not an image name", name);
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	if ((rc = image_name_id(store, name, id)) < 0)
		return err_set(e, rc, "no image named '%s' (hint: `ironclaw image ls` lists them)", name);
	snprintf(link, sizeof(link), "%s/names/%s", store, name);
	if (unlink(link) < 0)
		return err_set(e, -errno, "removing %s: %s", link, strerror(errno));
	/* A VM running from the file keeps its open descriptor: removing the
	 * name and the file never disturbs it. */
	if (!image_id_used(store, id)) {
		snprintf(dir, sizeof(dir), "%s/ids/%s", store, id);
		image_store_rmtree(dir);
	}
	return 0;
}

/* sub/<name> -> ../ids/<id>, replaced atomically. */
static int image_link_in(const char *store, const char *sub, const char *name, const char *id,
			 struct err *e)
{
	char link[IMAGE_PATH_MAX + 200], tmp[IMAGE_PATH_MAX + 240], target[IMAGE_ID_HEX + 16];
	snprintf(link, sizeof(link), "%s/%s/%s", store, sub, name);
	snprintf(tmp, sizeof(tmp), "%s/%s/.%s.%ld", store, sub, name, (long)getpid());
	snprintf(target, sizeof(target), "../ids/%s", id);
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
		int rc = -errno;
		unlink(tmp);
		return err_set(e, rc, "cannot name image %s: %s", name, strerror(-rc));
	}
	return 0;
}

static int image_link_name(const char *store, const char *name, const char *id, struct err *e)
{
	return image_link_in(store, "names", name, id, e);
}

int image_store_key_get(const char *key, char id[IMAGE_ID_HEX + 1])
{
	char store[IMAGE_PATH_MAX], name[IMAGE_ID_HEX + 16];
	if (image_store_dir(store, sizeof(store), NULL) < 0)
		return -ENOENT;
	snprintf(name, sizeof(name), "../keys/%s", key);
	/* image_name_id reads names/<x>: point it at keys/ through "..". */
	return image_name_id(store, name, id);
}

int image_store_key_set(const char *key, const char *id, struct err *e)
{
	char store[IMAGE_PATH_MAX], dir[IMAGE_PATH_MAX + 16], name[IMAGE_ID_HEX + 8];
	int rc;
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	snprintf(dir, sizeof(dir), "%s/keys", store);
	if ((rc = image_mkdir(dir, e)) < 0)
		return rc;
	snprintf(name, sizeof(name), "%s", key);
	return image_link_in(store, "keys", name, id, e);
}

int image_store_reuse(const char *name, const char *id, struct image_info *info, struct err *e)
{
	char store[IMAGE_PATH_MAX];
	int rc;
	memset(info, 0, sizeof(*info));
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	struct err quiet = { 0 };
	if (image_load_id(store, id, info, &quiet) < 0 || image_check_file(info->path, &quiet) < 0) {
		image_info_free(info);
		return -ENOENT;
	}
	snprintf(info->name, sizeof(info->name), "%s", name);
	info->reused = 1;
	return image_link_name(store, name, id, e);
}

int image_store_tmpdir(char *out, size_t len, struct err *e)
{
	char store[IMAGE_PATH_MAX];
	int rc;
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	if ((size_t)snprintf(out, len, "%s/tmp-XXXXXX", store) >= len)
		return err_set(e, -ENAMETOOLONG, "image store path too long");
	if (!mkdtemp(out))
		return err_set(e, -errno, "cannot create a build directory in %s: %s", store, strerror(errno));
	return 0;
}

int image_store_publish(const char *tmp_dir, const char *name, const char *id, json_t *meta,
			struct image_info *info, struct err *e)
{
	char store[IMAGE_PATH_MAX], dst[IMAGE_PATH_MAX + 200], meta_path[IMAGE_PATH_MAX + 300];
	int rc;
	memset(info, 0, sizeof(*info));
	if ((rc = image_store_dir(store, sizeof(store), e)) < 0)
		return rc;
	snprintf(meta_path, sizeof(meta_path), "%s/meta.json", tmp_dir);
	char *text = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return err_set(e, -ENOMEM, "out of memory");
	rc = io_write_file(meta_path, text, strlen(text), 0644);
	free(text);
	if (rc < 0)
		return err_set(e, rc, "writing %s: %s", meta_path, strerror(-rc));
	chmod(tmp_dir, 0755);
	snprintf(dst, sizeof(dst), "%s/ids/%s", store, id);
	if (rename(tmp_dir, dst) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			return err_set(e, -errno, "cannot move the image to %s: %s", dst, strerror(errno));
		/* Another build of the same inputs got there first: same content. */
		image_store_rmtree(tmp_dir);
	}
	if ((rc = image_link_name(store, name, id, e)) < 0)
		return rc;
	snprintf(info->name, sizeof(info->name), "%s", name);
	return image_load_id(store, id, info, e);
}
