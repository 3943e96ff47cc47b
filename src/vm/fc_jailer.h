/* Firecracker's own jailer, when configured (`--jailer PATH`, or
 * IRONCLAW_FC_JAILER): the jail starts the jailer instead of Firecracker, and
 * the jailer starts Firecracker in a chroot of its own (see fc_jailer.c). */
#ifndef IRONCLAW_VM_FC_JAILER_H
#define IRONCLAW_VM_FC_JAILER_H

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "core/err.h"
#include "vm/backend.h"

/* The chroot base as the jailer sees it inside our jail: the VM directory,
 * bound at a /dev path so that the device nodes the jailer makes in its
 * chroot (/dev/kvm, /dev/net/tun) can be opened (the jail mounts every other
 * bind nodev). */
#define FC_JAILER_BASE "/dev/fc-jailer"

/* 0 with the jailer's path in out when one is configured; -ENOENT when none
 * is; another -errno (with e set) when the configured one is unusable. */
int fc_jailer_find(char *out, size_t n, struct err *e);

/* The host path of the chroot the jailer builds for this VM:
 * <vm dir>/<basename of fc_bin>/<id>/root. */
int fc_jailer_root(const char *vm_dir, const char *fc_bin, const char *id, char *out, size_t n);

/* The launch through the jailer: argv (its documented options, never
 * --daemonize, then `--` and Firecracker's own: --api-sock inside the chroot,
 * --seccomp-filter when filter is set, never --no-seccomp), binds (the
 * firecracker binary, the chroot base, the VM's netns file with a NIC), our
 * seccomp policy for Firecracker plus the jailer's setup, and the jail
 * leaving the privilege drop to the jailer. With a filter, the VM directory
 * is made now and the filter copied into the chroot: Firecracker reads it as
 * it starts. */
int fc_jailer_plan(const struct vm_backend_spec *spec, const char *jailer, const char *fc_bin,
		   const char *filter, struct vm_launch_plan *plan, struct err *e);

/* On the thread pool: the chroot's /run/vm (Firecracker's sockets, log and
 * metrics, owned by uid/gid) and the files Firecracker opens by path, hard
 * linked or else copied into the chroot's /vm: the kernel, the initramfs
 * and, for a restore, the snapshot's vmstate and mem (read-only to it). done
 * runs on the loop unless cancelled first. */
struct fc_jailer_place;
typedef void (*fc_jailer_place_cb)(void *ctx, const struct err *e);
int fc_jailer_place_start(uv_loop_t *loop, const char *root, uid_t uid, gid_t gid, const char *kernel,
			  const char *initrd, const char *snapshot_dir, fc_jailer_place_cb done, void *ctx,
			  struct fc_jailer_place **out, struct err *e);
/* No callback after this; the job finishes on the pool and frees itself. */
void fc_jailer_place_cancel(struct fc_jailer_place *p);

#endif
