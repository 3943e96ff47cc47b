/* Guest images: real Debian userlands that a VM boots from instead of the busybox
 * initramfs (docs/images.md).
 *
 * An image is one ext4 file, built from Debian packages by mmdebstrap (in its
 * unshare mode: maintainer scripts run as root only inside a user namespace)
 * and packed with `mkfs.ext4 -d`, or imported from an OCI layout / `docker
 * save` archive with umoci and skopeo. The VM gets it as a read-only virtio-blk
 * disk; the guest puts a throwaway overlay on top (src/guest/boot.c).
 *
 * Images are content-addressed: the id is a SHA-256 over every input (suite,
 * package set, the versions apt resolved, the guest agent and the overlay
 * module injected). The store (image_store_dir) holds ids/<id>/rootfs.ext4
 * beside ids/<id>/meta.json, and names/<NAME> is a link to ids/<id>; building
 * the same inputs again only relinks the name.
 *
 * Long work (mmdebstrap, mkfs.ext4, skopeo, umoci) runs as child processes
 * watched from the caller's libuv loop; nothing here blocks a loop callback
 * beyond small metadata files. */
#ifndef IRONCLAW_IMAGE_IMAGE_H
#define IRONCLAW_IMAGE_IMAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"

#define IMAGE_NAME_MAX 64
#define IMAGE_PACKAGES_MAX 128
#define IMAGE_ID_HEX 64
#define IMAGE_PATH_MAX 4096
#define IMAGE_DEFAULT_SUITE "bookworm"
/* The apt sources an image is built from when the caller names none: the
 * host's own (Debian 12 writes them in deb822 form here). */
#define IMAGE_DEFAULT_SOURCES "/etc/apt/sources.list.d/debian.sources"
/* The development image's packages (`ironclaw image build dev`). */
#define IMAGE_DEV_PACKAGES "python3,git,make,gcc,libc6-dev,curl,ca-certificates"

struct image_build_spec {
	const char *name;                       /* borrowed */
	const char *suite;                      /* NULL: IMAGE_DEFAULT_SUITE */
	const char *sources;                    /* NULL: IMAGE_DEFAULT_SOURCES, else an apt sources file */
	const char *packages[IMAGE_PACKAGES_MAX];
	size_t n_packages;
	unsigned size_mib;                      /* 0: the root's size plus a quarter */
	int progress;                           /* phase lines on stderr */
};

/* What `image inspect` shows; meta is owned (json_decref it, or image_info_free). */
struct image_info {
	char name[IMAGE_NAME_MAX + 1];
	char id[IMAGE_ID_HEX + 1];
	char path[IMAGE_PATH_MAX];              /* the ext4 file */
	uint64_t bytes;
	json_t *meta;
	int reused;                             /* the build found the id in the cache */
};
void image_info_free(struct image_info *info);
/* info as JSON, for `image ls` and `--json` output: its meta with name, id,
 * path and bytes added. Returns owned. */
json_t *image_info_json(const struct image_info *info);

/* ---- store.c ---- */
/* $IRONCLAW_IMAGES, else $XDG_CACHE_HOME/ironclaw/images, else
 * ~/.cache/ironclaw/images. Created (0700) when missing. */
int image_store_dir(char *out, size_t len, struct err *e);
/* NAME: [a-z0-9][a-z0-9._-]* up to IMAGE_NAME_MAX. */
int image_name_valid(const char *name);
/* Fills info for NAME (or for a path to an ext4 file, when ref has a '/'),
 * after image_check_file. Errors say how to build the image. */
int image_lookup(const char *ref, struct image_info *info, struct err *e);
/* Returns an owned array of the image objects (meta plus name, path, bytes). */
int image_list(json_t **out, struct err *e);
/* Removes NAME; the image file goes too when no other name uses its id. */
int image_remove(const char *name, struct err *e);
/* Moves a finished build (dir holds rootfs.ext4) to ids/<id>, writes meta.json
 * (meta borrowed) and points names/<name> at it; fills info. */
int image_store_publish(const char *tmp_dir, const char *name, const char *id, json_t *meta,
			struct image_info *info, struct err *e);
/* Points names/<name> at an id already in the store; fills info. 0 when the id
 * is there, -ENOENT when not (then build it). */
int image_store_reuse(const char *name, const char *id, struct image_info *info, struct err *e);
/* keys/<key> links a resolve-time key (the id computed from apt's simulation)
 * to the id of what the build really installed: the simulation and the real
 * run can pick different builds of a package (seen here: libssl3 ~deb12t2 vs
 * ~deb12u2), and a rebuild must still find the image. */
int image_store_key_get(const char *key, char id[IMAGE_ID_HEX + 1]);
int image_store_key_set(const char *key, const char *id, struct err *e);
/* A fresh working directory inside the store for a build (owned path in out). */
int image_store_tmpdir(char *out, size_t len, struct err *e);
/* Removes a working directory and what is in it. Blocking, but small by
 * then: the helper processes remove their own large trees (an unpacked OCI
 * bundle) before they exit, so only a few files are left here. */
void image_store_rmtree(const char *dir);

/* ---- check.c ---- */
/* Refuses a file that is not an ext4 filesystem, or shorter than its own
 * superblock says (a truncated copy): the VM would fail later, less clearly. */
int image_check_file(const char *path, struct err *e);
/* The same on a superblock already read (1024 bytes from offset 1024). */
int image_check_superblock(const unsigned char *sb, size_t len, uint64_t file_bytes,
			   struct err *e);

/* ---- id.c ---- */
/* SHA-256 of a file, as hex. */
int image_sha256_file(const char *path, char hex[IMAGE_ID_HEX + 1], struct err *e);
/* SHA-256 of a string, as hex. */
void image_sha256_text(const char *text, size_t len, char hex[IMAGE_ID_HEX + 1]);
/* The inputs every image gets besides its packages: the guest agent and the
 * overlay module for the image kernel; paths and hashes. */
struct image_inject {
	char guest[IMAGE_PATH_MAX];
	char overlay[IMAGE_PATH_MAX];
	char guest_sha[IMAGE_ID_HEX + 1];
	char overlay_sha[IMAGE_ID_HEX + 1];
};
int image_inject_find(struct image_inject *in, struct err *e);

/* ---- build.c / import.c ---- */
typedef void (*image_done_cb)(void *ctx, const struct image_info *info, const struct err *e);
/* Resolves, (re)uses or builds, and publishes; done once (info borrowed for
 * the call). Returns 0 or -errno (then done is never called). */
int image_build_start(uv_loop_t *loop, const struct image_build_spec *s, image_done_cb done,
		      void *ctx, struct err *e);
/* Imports an OCI image layout (a directory, optionally DIR:TAG) or a `docker
 * save` archive (a file) under NAME. */
int image_import_start(uv_loop_t *loop, const char *name, const char *path, int progress,
		       image_done_cb done, void *ctx, struct err *e);

/* ---- proc.c: one helper process on the loop ---- */
struct image_proc;
/* One line of the child's stderr or stdout (without the newline). */
typedef void (*image_proc_line_cb)(void *ctx, const char *line, size_t len);
/* The child ended: status is its exit code, or 128+signal, or -errno when it
 * could not start; tail holds its last output lines (borrowed). */
typedef void (*image_proc_exit_cb)(void *ctx, int status, const char *tail);
/* argv[0] is looked up in PATH; env entries are added to ours (may be NULL). */
int image_proc_start(uv_loop_t *loop, char *const argv[], char *const env[], image_proc_line_cb line,
		     image_proc_exit_cb done, void *ctx, struct image_proc **out, struct err *e);

#endif
