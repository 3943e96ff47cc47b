/* VM templates: a guest booted once per shape, its whole state saved, and every
 * later VM of that shape restored from it instead of booted (docs/snapshots.md).
 *
 * A template is keyed by a content hash of everything the saved state depends
 * on: the kernel and initramfs bytes (the initramfs holds the guest agent), the
 * VMM binary's bytes, the root image's bytes for an image VM (vm_options.
 * root_image: the guest's page cache and mounts of it are in the saved state),
 * the VMM command line this ironclaw builds for the shape (cpus, memory,
 * accelerator, the image disk; with jail paths, so it is the same for every
 * VM), and a format number. Any change gives another key, so a template made from an
 * older agent, image or QEMU is never found, let alone used. Templates live
 * under the cache directory ($XDG_CACHE_HOME/ironclaw/templates, else
 * ~/.cache/ironclaw/templates, the accelerator cache's neighbour):
 *
 *   <key>/manifest.json   what it was made from, the state's size and SHA-256
 *   <key>/state           the VMM's saved state: QEMU's migration stream (a
 *                         file), or Firecracker's snapshot (a directory with
 *                         vmstate and mem); the manifest's size and SHA-256
 *                         cover every file in it
 *
 * A clone never writes its template: the host opens the state read-only and
 * hands the VMM only that descriptor (snapshot_qemu.h), so nothing of the
 * cache directory is visible in the jail at all. Before a restore the state is
 * checked against its manifest (size, then SHA-256); a truncated or corrupt
 * template is an error naming the template and how to remove it, and the caller
 * boots cold.
 *
 * The blocking parts (hashing, directory work) are plain functions for the CLI
 * and run on the libuv thread pool for loop users (vm_template_find/_build). */
#ifndef IRONCLAW_VM_TEMPLATE_H
#define IRONCLAW_VM_TEMPLATE_H

#include <stdint.h>
#include <uv.h>

#include "core/err.h"

/* 2: the guest's free memory is zeroed before the save (template_build.c). */
#define VM_TEMPLATE_FORMAT 2
#define VM_TEMPLATE_KEY_LEN 64
#define VM_TEMPLATE_PATH_MAX 4400
/* `snapshot ls` shows this many characters of a key; rm takes any prefix. */
#define VM_TEMPLATE_SHORT 12

/* The shape a template is for. NULL kernel/initrd: the default image; 0 cpus or
 * memory: the VM defaults (vm.h). root_image: an ext4 image (src/image) the VM
 * boots from under a tmpfs overlay, as vm_options.root_image; NULL: none. A
 * VM with a scratch disk (vm_options.disk_mib) has no template: its fresh disk
 * would not match the filesystem the saved guest made on the template's. */
struct vm_template_shape {
	const char *kernel, *initrd;
	unsigned cpus, memory_mib;
	const char *root_image;
	const char *backend;   /* the backend's name (vm_backend_ops.name); NULL: "qemu" */
};

struct vm_template {
	char key[VM_TEMPLATE_KEY_LEN + 1];
	char dir[VM_TEMPLATE_PATH_MAX];
	char state[VM_TEMPLATE_PATH_MAX + 16];   /* pass as vm_options.restore_from */
	char kernel[VM_TEMPLATE_PATH_MAX], initrd[VM_TEMPLATE_PATH_MAX];
	char root_image[VM_TEMPLATE_PATH_MAX];   /* "" when none */
	char backend[16];                   /* the backend that saved it ("qemu", "firecracker") */
	unsigned cpus, memory_mib;
	uint64_t state_bytes;
	long long created;                  /* Unix time */
	double save_ms;                     /* how long the save took */
	int stale;                          /* (list) its inputs changed: prune removes it */
};

/* The templates directory (not created). */
int vm_template_root(char *out, size_t len, struct err *e);
/* Blocking: resolves the shape (default image, defaults) into t and computes
 * its key, dir and state path. Hashes are memoised by (path, inode, size,
 * mtime) in the templates directory, so an unchanged 50 MB kernel is hashed
 * once. */
int vm_template_key(const struct vm_template_shape *s, struct vm_template *t, struct err *e);
/* Blocking: the template for the shape, checked against its manifest. 0: t is
 * usable; -ENOENT: none for this shape (quietly); anything else: it exists but
 * is unusable, e says why and how to remove it. */
int vm_template_open(const struct vm_template_shape *s, struct vm_template *t, struct err *e);

/* Loop users: vm_template_open on the thread pool. t is NULL with e set (e->code
 * -ENOENT when there is simply none). t and e are valid during the call. */
typedef void (*vm_template_cb)(void *ctx, const struct vm_template *t, const struct err *e);
int vm_template_find(uv_loop_t *loop, const struct vm_template_shape *s, vm_template_cb cb,
		     void *ctx, struct err *e);
/* Boots a VM of the shape, waits for the guest to be ready, saves its state,
 * destroys it and stores the template (atomically: a half-made one is never
 * found). Replaces an unusable template with the same key. */
int vm_template_build(uv_loop_t *loop, const struct vm_template_shape *s, vm_template_cb cb,
		      void *ctx, struct err *e);

/* Blocking housekeeping for `ironclaw snapshot`. list fills at most max (n is
 * the total found); remove takes a key or a unique prefix of one (at least 4
 * characters); prune removes stale templates and leftovers of interrupted
 * builds, counting them in *removed. */
int vm_template_list(struct vm_template *out, size_t max, size_t *n, struct err *e);
int vm_template_remove(const char *key_prefix, char *removed_key, size_t len, struct err *e);
int vm_template_prune(unsigned *removed, struct err *e);

#endif
