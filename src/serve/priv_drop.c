/* The API process gives up root (priv.h): done once, right after the fork,
 * before it reads a byte from anyone. Order matters: the bounding set can only
 * be emptied while CAP_SETPCAP is still held, groups and gids before the uid,
 * and no_new_privs last so nothing exec'ed (nothing is) could regain anything.
 * Each step is checked, and the result read back (uid 0 unreachable, no
 * effective or permitted capability): a half-dropped API process never runs.
 *
 * Files: the daemon's templates (the cache's ironclaw/templates) are made the
 * API uid's before the fork; the rest of the cache (root's accelerator verdict,
 * MCP tokens) stays root's, and the image store is searched, not owned
 * (priv_images.c). Since the cache usually sits under a 0700 home, the API
 * process reaches its part through descriptors opened before the drop:
 * XDG_CACHE_HOME becomes /proc/self/fd/N, a directory of its own
 * (<cache>/ironclaw/serve) whose ironclaw/templates is a symlink to
 * /proc/self/fd/M, the templates directory. A process may always use its own
 * /proc/self/fd, whoever owns what lies above. */
#include "serve/priv.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/log.h"

static int priv_cache_root(char *out, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n = xdg && *xdg ? snprintf(out, len, "%s", xdg)
			    : snprintf(out, len, "%s/.cache", home && *home ? home : "/tmp");
	return n < 0 || (size_t)n >= len - 64 ? -ENAMETOOLONG : 0;
}

static int priv_mkdirs(const char *path)
{
	char p[4200];
	if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

static int priv_chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(path, PRIV_API_UID, PRIV_API_UID) < 0 ? -1 : 0;
}

int priv_cache_prepare(struct err *e)
{
	char root[4096], p[4200];
	if (priv_cache_root(root, sizeof(root)) < 0)
		return err_set(e, -ENAMETOOLONG, "cache directory path too long");
	const char *sub[] = { "ironclaw/templates", "ironclaw/serve" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", root, sub[i]);
		int rc = priv_mkdirs(p);
		if (rc < 0)
			return err_set(e, rc, "creating %s: %s", p, strerror(-rc));
		/* No symlink is followed (FTW_PHYS, lchown): a name planted in the
		 * tree by the API uid cannot make root chown something else. */
		if (nftw(p, priv_chown_one, 16, FTW_PHYS) < 0)
			return err_set(e, -errno, "giving %s to the API uid %u: %s", p, PRIV_API_UID,
				       strerror(errno));
	}
	return 0;
}

/* Opens the two cache directories while still root (see the top). */
static int priv_cache_open(int *serve_fd, int *tpl_fd, struct err *e)
{
	char root[4096], p[4200];
	if (priv_cache_root(root, sizeof(root)) < 0)
		return err_set(e, -ENAMETOOLONG, "cache directory path too long");
	snprintf(p, sizeof(p), "%s/ironclaw/serve", root);
	*serve_fd = open(p, O_PATH | O_DIRECTORY | O_NOFOLLOW);
	snprintf(p, sizeof(p), "%s/ironclaw/templates", root);
	*tpl_fd = open(p, O_PATH | O_DIRECTORY | O_NOFOLLOW);
	if (*serve_fd < 0 || *tpl_fd < 0)
		return err_set(e, -errno, "opening %s: %s", p, strerror(errno));
	return 0;
}

static int priv_cache_link(int serve_fd, int tpl_fd, struct err *e)
{
	char target[64], env[64];
	if (mkdirat(serve_fd, "ironclaw", 0700) < 0 && errno != EEXIST)
		return err_set(e, -errno, "creating the API cache directory: %s", strerror(errno));
	snprintf(target, sizeof(target), "/proc/self/fd/%d", tpl_fd);
	unlinkat(serve_fd, "ironclaw/templates", 0);
	if (symlinkat(target, serve_fd, "ironclaw/templates") < 0)
		return err_set(e, -errno, "linking the templates for the API uid: %s", strerror(errno));
	snprintf(env, sizeof(env), "/proc/self/fd/%d", serve_fd);
	setenv("XDG_CACHE_HOME", env, 1);
	return 0;
}

static int priv_caps_clear(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return -EPERM;
	return 0;
}

int priv_drop(struct err *e)
{
	int serve_fd = -1, tpl_fd = -1, images_fd = -1, rc;
	const uid_t u = PRIV_API_UID;
	if ((rc = priv_cache_open(&serve_fd, &tpl_fd, e)) < 0 || (rc = priv_images_open(&images_fd, e)) < 0)
		return rc;
	/* The bounding set first: emptying it needs CAP_SETPCAP, which the
	 * uid change below takes away. */
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return err_set(e, -errno, "dropping capability %d from the bounding set: %s",
				       cap, strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return err_set(e, -errno, "clearing ambient capabilities: %s", strerror(errno));
	if (setgroups(0, NULL) < 0)
		return err_set(e, -errno, "setgroups: %s", strerror(errno));
	if (setresgid(u, u, u) < 0)
		return err_set(e, -errno, "setresgid(%u): %s", u, strerror(errno));
	if (setresuid(u, u, u) < 0)
		return err_set(e, -errno, "setresuid(%u): %s", u, strerror(errno));
	if ((rc = priv_caps_clear()) < 0)
		return err_set(e, rc, "capabilities left after the uid drop: %s", strerror(-rc));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_set(e, -errno, "no_new_privs: %s", strerror(errno));
	/* Read back: none of this may be undone. */
	uid_t r, ef, s;
	if (getresuid(&r, &ef, &s) < 0 || r != u || ef != u || s != u || setuid(0) == 0 ||
	    getgroups(0, NULL) != 0)
		return err_set(e, -EPERM, "the privilege drop did not hold");
	if ((rc = priv_cache_link(serve_fd, tpl_fd, e)) < 0)
		return rc;
	priv_images_link(images_fd);
	if ((rc = priv_seccomp_load(e)) < 0)
		return rc;
	log_info("serve: API process %d runs as uid %u, no capabilities, seccomp", (int)getpid(), u);
	return 0;
}
