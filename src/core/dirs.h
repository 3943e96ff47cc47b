/* Creating the directories a path needs (mkdir -p), for the state, log and
 * token files that live under per-user directories which may not exist yet.
 *
 * The caller owns the path buffer and its size limit (each caller has its own
 * cap and its own message for a path over it); this only walks it. */
#ifndef IRONCLAW_CORE_DIRS_H
#define IRONCLAW_CORE_DIRS_H

/* Creates, with mode, each missing directory named by a prefix of path that
 * ends just before a '/': "a/b/c" makes a and a/b, "a/b/c/" makes c as well.
 * An existing one (EEXIST) is fine. path is written to while it walks and is
 * whole again on success; on failure it is cut at the directory that could
 * not be made (for the message) and the return is -errno. */
int dirs_make_prefixes(char *path, unsigned mode);

#endif
