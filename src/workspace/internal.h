/* Helpers shared by the workspace subsystem's files (not for other subsystems:
 * they use workspace.h). */
#ifndef IRONCLAW_WORKSPACE_INTERNAL_H
#define IRONCLAW_WORKSPACE_INTERNAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "workspace/workspace.h"

/* Appends an entry (path and target copied). Returns 0 or -ENOMEM. */
int ws_manifest_add(struct workspace_manifest *m, const char *path, enum workspace_type type,
		    unsigned mode, uint64_t size, const uint8_t *sha, const char *target);
/* Sorts by path; -EEXIST if a path appears twice. */
int ws_manifest_sort(struct workspace_manifest *m);

/* Opens the directory that holds rel (its parent) beneath rootfd without
 * following any symlink and without "..", O_RDONLY|O_DIRECTORY; *name points
 * into rel at the last component. -ELOOP/-EXDEV when a component is a symlink
 * or escapes, -ENOENT/-ENOTDIR as usual. */
int ws_open_parent(int rootfd, const char *rel, const char **name);
/* Opens rel itself beneath rootfd (flags for the last step; O_NOFOLLOW is
 * always added). */
int ws_open_beneath(int rootfd, const char *rel, int flags, unsigned mode);
/* Like ws_open_parent, but creates missing parent directories (mode 0700)
 * first; used on the private staging tree only. */
int ws_open_parent_mkdir(int rootfd, const char *rel, const char **name);

/* SHA-256 of src from its current offset to EOF, copying the bytes to dst on
 * the way unless dst is -1 (hash only); size (may be NULL) gets the count.
 * One read of the bytes serves both: apply and undo hash what they copy. */
int ws_sha256_copy(int src, int dst, uint8_t out[WORKSPACE_SHA256_LEN], uint64_t *size);

/* What is at name in dirfd now (lstat), hashed if a file: for conflict checks
 * and undo. type WORKSPACE_NONE when nothing is there. */
struct ws_state {
	enum workspace_type type;
	unsigned mode;
	uint64_t size;
	uint8_t sha256[WORKSPACE_SHA256_LEN];
	char target[WORKSPACE_PATH_MAX + 1];
	uid_t uid;
	gid_t gid;
};
int ws_state_at(int dirfd, const char *name, struct ws_state *s);
/* Same, for rel beneath rootfd (a missing parent reads as WORKSPACE_NONE). */
int ws_state_beneath(int rootfd, const char *rel, struct ws_state *s);
/* 1 when the state is the entry (type, mode, hash or target), else 0. */
int ws_state_is(const struct ws_state *s, const struct workspace_entry *en);

/* One host step done by apply, as undo needs it: what was at path before
 * (its bytes, for a file, copied to backup N of the journal's dir) and what
 * apply left there. Undo checks the host still shows `after`, then puts
 * `before` back. */
struct ws_jent {
	char *path;                  /* owned */
	struct ws_state before, after;
	long backup;                 /* index of the backup file, -1: none */
};

struct ws_journal {
	struct ws_jent *v;
	size_t n, cap;
	char dir[4096];              /* holds files/<N> */
};

/* Restores one entry: -EBUSY when the host no longer shows j->after. */
int ws_journal_restore(int rootfd, const struct ws_journal *jn, const struct ws_jent *j);
/* 1 when a and b are the same type, mode, and hash or target. */
int ws_state_same(const struct ws_state *a, const struct ws_state *b);
/* undo.json in jn->dir (atomically), and its reading back. */
int ws_journal_save(const struct ws_journal *jn, const char *root, struct err *e);
int ws_journal_load(struct ws_journal *jn, const char *dir, char *root, size_t root_cap,
		    struct err *e);
void ws_journal_free(struct ws_journal *jn);

/* Fills ch's card data (binary, added, deleted, diff): old content from the
 * host (only when it still matches the copy-in hash), new from staging. */
int ws_card_diff(struct workspace_changes *c, struct workspace_change *ch, int rootfd, int stagefd);

#endif
