/* The workspace subsystem: how a host directory goes into a run's VM and how the
 * VM's changes come back, shown, approved and applied, and later undone.
 *
 *   copy-in:  workspace_pack_*     host dir -> tar stream (+ a manifest of hashes)
 *   copy-out: workspace_unpack_*   the guest's tar stream -> a private staging dir
 *   changes:  workspace_changes_*  manifest vs staging -> a change set, conflicts
 *   card:     workspace_card_*     the diff card (text for a terminal, JSON)
 *   apply:    workspace_apply      the approved subset, all or nothing
 *   undo:     workspace_undo       put the originals back
 *
 * Everything here is SYNCHRONOUS and does blocking file work. Called from a
 * libuv loop it must run on the thread pool (uv_queue_work): the agent does one
 * workspace_pack_read per work item and writes the chunk with
 * vm_exec_write_stdin in the after-work callback, which gives backpressure for
 * free; copy-out is parsed from an fd (a pipe the loop fills, or a spool file)
 * or a memory buffer in one work item. No function keeps global state, so
 * different runs may use the subsystem on different threads at once; one
 * object is never used by two threads at a time.
 *
 * Trust: the tar stream from the guest is hostile. Unpacking never writes
 * outside the staging directory, never through a symlink, never at a path with
 * `..`, and stops at caps. Host writes at apply are confined beneath an fd of
 * the workspace root (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
 *
 * Paths in manifests and change sets are relative ("src/a.c"): no leading '/',
 * no "." or ".." components, no empty components. Modes are permission bits
 * only (& 0777): setuid, setgid and sticky bits never travel. */
#ifndef IRONCLAW_WORKSPACE_WORKSPACE_H
#define IRONCLAW_WORKSPACE_WORKSPACE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define WORKSPACE_SHA256_LEN 32
#define WORKSPACE_PATH_MAX 1024           /* bytes of a relative path */
#define WORKSPACE_DEPTH_MAX 64            /* components of a relative path */
#define WORKSPACE_DEFAULT_MAX_BYTES (1024ull << 20)  /* copy-in and copy-out */
#define WORKSPACE_DEFAULT_MAX_FILES 100000u
#define WORKSPACE_EXCLUDES_MAX 64

enum workspace_type {
	WORKSPACE_NONE = 0,
	WORKSPACE_FILE,
	WORKSPACE_DIR,
	WORKSPACE_SYMLINK,
};

/* One entry of a tree. */
struct workspace_entry {
	char *path;                 /* owned */
	enum workspace_type type;
	unsigned mode;              /* & 0777 */
	uint64_t size;              /* files: bytes; symlinks: target length */
	uint8_t sha256[WORKSPACE_SHA256_LEN]; /* files only */
	char *target;               /* symlinks only, owned */
	/* Copy-out manifests only: the file arrived with the bytes and mode of the
	 * copy-in entry for its path, so no staging copy was written (nothing ever
	 * reads one: an unchanged entry is no change). */
	int unchanged;
};

/* A tree's entries sorted by path (bytewise), unique. */
struct workspace_manifest {
	struct workspace_entry *v;  /* owned */
	size_t n, cap;
	uint64_t bytes;             /* sum of file sizes */
};

void workspace_manifest_free(struct workspace_manifest *m);
/* Binary search; borrowed pointer or NULL. */
const struct workspace_entry *workspace_manifest_find(const struct workspace_manifest *m,
						      const char *path);
/* 0 when path is a valid relative path (see above), else -EINVAL. */
int workspace_path_check(const char *path, size_t len);
/* Lowercase hex of a SHA-256 (out: 65 bytes). */
void workspace_hex(const uint8_t sha[WORKSPACE_SHA256_LEN], char out[65]);

/* ---- copy-in (pack.c) ---- */

struct workspace_limits {
	uint64_t max_bytes;         /* 0: WORKSPACE_DEFAULT_MAX_BYTES (sum of file sizes) */
	size_t max_files;           /* 0: WORKSPACE_DEFAULT_MAX_FILES (entries of any type) */
};

/* Globs for --exclude (borrowed). A glob without '/' matches any path
 * component ("node_modules", "*.o"); a glob with '/' matches the whole
 * relative path (fnmatch FNM_PATHNAME, e.g. "build/tmp" or "docs/?.md"). An
 * excluded directory excludes its subtree; a trailing "/" matches directories only. */
struct workspace_pack_options {
	struct workspace_limits limits;
	const char *const *excludes;
	size_t n_excludes;
};

struct workspace_pack;

/* Scans root (never following a symlink: a symlink is packed as a symlink,
 * whatever it points to; fifos, sockets and devices are skipped and counted)
 * and checks the caps before any byte is streamed: above one, fails with one
 * line saying by how much, and a hint. Returns an owned handle in *out. */
int workspace_pack_open(const char *root, const struct workspace_pack_options *o,
			struct workspace_pack **out, struct err *e);
/* Writes up to cap bytes of the tar stream into buf (cap >= 512). Returns the
 * byte count, 0 once the stream is complete, or -errno (a file changed or
 * vanished while being read: -EAGAIN, "changed during copy-in"). */
long workspace_pack_read(struct workspace_pack *p, uint8_t *buf, size_t cap, struct err *e);
/* The manifest of what was streamed (hashes of the bytes actually sent);
 * complete once workspace_pack_read returned 0. Borrowed; take it with
 * workspace_pack_take_manifest to keep it after workspace_pack_free. */
const struct workspace_manifest *workspace_pack_manifest(const struct workspace_pack *p);
void workspace_pack_take_manifest(struct workspace_pack *p, struct workspace_manifest *out);
/* Entries skipped because they were not files, dirs or symlinks. */
size_t workspace_pack_skipped(const struct workspace_pack *p);
void workspace_pack_free(struct workspace_pack *p);

/* ---- copy-out (unpack.c) ---- */

/* Reads the next bytes of the stream into buf; returns a count, 0 at EOF or -errno. */
typedef long (*workspace_read_fn)(void *ctx, uint8_t *buf, size_t cap);

/* Unpacks a tar stream into staging, a directory this call creates (mode
 * 0700; it must not exist). Only regular files, directories, symlinks and
 * hardlinks to a file earlier in the same stream are accepted; the staging
 * copies are 0600/0700 whatever the archive says (the archive's modes go into
 * *out). Refused, with nothing written outside staging: absolute paths, `..`,
 * paths through a symlink, duplicates, devices, fifos, paths over
 * WORKSPACE_PATH_MAX or WORKSPACE_DEPTH_MAX, more than max_files entries, more
 * than max_bytes of file data (checked against each header before any data is
 * written). On failure *out is empty and staging may hold a partial tree (the
 * caller removes it with workspace_remove_tree). */
int workspace_unpack(workspace_read_fn read, void *ctx, const char *staging,
		     const struct workspace_limits *lim, struct workspace_manifest *out, struct err *e);
/* The same, against before (the copy-in manifest, borrowed; NULL: none): a
 * regular file of at most WORKSPACE_UNCHANGED_MAX bytes whose size, mode and
 * SHA-256 equal before's entry for its path is recorded in *out with
 * `unchanged` set and NOT written to staging (creating thousands of staging
 * files is what copy-out's host side spends its time on). Larger files, and
 * any difference, are written as without before. Every refusal above stays:
 * a guest can only make a file count as unchanged by sending the same bytes. */
#define WORKSPACE_UNCHANGED_MAX (1u << 20)
int workspace_unpack_against(workspace_read_fn read, void *ctx, const char *staging,
			     const struct workspace_limits *lim,
			     const struct workspace_manifest *before,
			     struct workspace_manifest *out, struct err *e);
int workspace_unpack_fd(int fd, const char *staging, const struct workspace_limits *lim,
			struct workspace_manifest *out, struct err *e);
int workspace_unpack_mem(const void *data, size_t len, const char *staging,
			 const struct workspace_limits *lim, struct workspace_manifest *out,
			 struct err *e);
/* Removes a directory tree without following symlinks (rm -rf of staging). */
int workspace_remove_tree(const char *path);

/* ---- changes (changes.c) and the diff card (card.c) ---- */

#define WORKSPACE_CHANGE_CONTENT 1u  /* file bytes differ */
#define WORKSPACE_CHANGE_MODE    2u
#define WORKSPACE_CHANGE_TARGET  4u  /* symlink target */
#define WORKSPACE_CHANGE_TYPE    8u  /* file <-> symlink <-> dir */

enum workspace_change_kind {
	WORKSPACE_CREATED = 'A',
	WORKSPACE_MODIFIED = 'M',
	WORKSPACE_DELETED = 'D',
};

struct workspace_change {
	const char *path;                    /* borrowed from a manifest */
	enum workspace_change_kind kind;
	unsigned what;                       /* WORKSPACE_CHANGE_* */
	const struct workspace_entry *old;   /* copy-in manifest; NULL when created */
	const struct workspace_entry *new_;  /* staging manifest; NULL when deleted */
	/* The host's file is not what was copied in (or, for a created path,
	 * something is there now): never overwritten. */
	int conflict;
	char conflict_why[160];
	/* Card data (filled by workspace_changes_compute). */
	int binary;                          /* old or new side is not text */
	long added, deleted;                 /* diff line counts (text) */
	char *diff;                          /* owned unified diff, NULL if none */
};

struct workspace_changes {
	struct workspace_change *v;          /* owned, sorted by path */
	size_t n;
	long added, deleted;
	size_t n_conflicts;
	uint8_t effect[WORKSPACE_SHA256_LEN];/* workspace_changes_hash over all */
	/* borrowed, must outlive the change set */
	const char *root, *staging;
	const struct workspace_manifest *before, *after;
};

/* Compares before (copy-in) with after (staging), checks every change against
 * the host tree under root (conflicts), builds diffs for the card. root,
 * staging, before and after are borrowed. */
int workspace_changes_compute(const char *root, const struct workspace_manifest *before,
			      const char *staging, const struct workspace_manifest *after,
			      struct workspace_changes *out, struct err *e);
/* Re-checks conflicts against the host now (done again by apply). Returns the
 * number of conflicts. */
size_t workspace_changes_recheck(struct workspace_changes *c);
/* SHA-256 over a canonical form of the selected changes (selected: one flag per
 * change, NULL: all): paths, kinds, both sides' type, mode, hash, target. The
 * approval is tied to this hash. */
void workspace_changes_hash(const struct workspace_changes *c, const unsigned char *selected,
			    uint8_t out[WORKSPACE_SHA256_LEN]);
void workspace_changes_free(struct workspace_changes *c);

/* "3 files changed, +12 -4" (or "no changes"). */
void workspace_card_summary(const struct workspace_changes *c, char *buf, size_t cap);
/* The card for a terminal: summary, per-file list (with an index for per-file
 * approval), conflicts, then each change's body. Returns an owned string. */
char *workspace_card_text(const struct workspace_changes *c);
/* The card as JSON (for --approver, --json and the run log); returns owned:
 * {"summary","files":N,"added","deleted","conflicts","effect_sha256",
 *  "changes":[{"path","status":"created|modified|deleted","what":[...],
 *              "old":{...},"new":{...},"binary","added","deleted","conflict",
 *              "diff"}]} */
json_t *workspace_card_json(const struct workspace_changes *c);

/* ---- apply (apply.c) and undo (undo.c) ---- */

/* For tests: called before each host write step; a non-zero return fails the
 * step with that value (a negative errno) and the apply rolls back. */
typedef int (*workspace_fault_fn)(const char *path, unsigned step, void *ctx);

struct workspace_apply_options {
	const unsigned char *selected;  /* one flag per change; NULL: all */
	/* Where the originals are kept for undo (the run's dir; created 0700 if
	 * missing; NULL: no undo data, still all or nothing). */
	const char *undo_dir;
	workspace_fault_fn fault;
	void *fault_ctx;
};

/* Applies the selected changes to the host under c->root, all or nothing:
 * conflicts are re-checked first (-EBUSY, nothing written, the paths in e);
 * then each file goes in atomically (temp file in its directory, fsync,
 * rename, directory fsync) with its mode; a replaced file keeps its owner, a
 * new one gets its directory's; every host path is resolved beneath root
 * without symlinks. If a step fails, everything written so far is put back
 * and the error returned. Returns the number of changes applied. */
int workspace_apply(struct workspace_changes *c, const struct workspace_apply_options *o,
		    struct err *e);

struct workspace_undo_report {
	size_t restored;
	size_t refused;                 /* changed since the apply: left alone */
	char refused_paths[1024];       /* "a.txt, b/c" (truncated) */
};

/* Puts back what the apply recorded in undo_dir did, newest first. A path
 * whose host state is not what the apply left is refused (left alone, listed
 * in the report) and stays recorded, so a later undo can retry it. Returns 0
 * when everything was restored, -EBUSY when some paths were refused, -ENOENT
 * when there is nothing to undo, or another -errno. */
int workspace_undo(const char *undo_dir, struct workspace_undo_report *r, struct err *e);

#endif
