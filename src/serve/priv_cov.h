/* The API process's coverage counters in a coverage build (priv_cov.c); no-ops
 * in every other build. */
#ifndef IRONCLAW_SERVE_PRIV_COV_H
#define IRONCLAW_SERVE_PRIV_COV_H

/* Parent, before the fork: a directory the API uid may write. */
int priv_cov_prepare(void);
/* API process, after the fork: write the counters there (GCOV_PREFIX). */
void priv_cov_child(void);
/* Parent, after the API process exited: merge them into the build's, remove
 * the directory. Blocks (gcov-tool). */
void priv_cov_merge(void);

#endif
