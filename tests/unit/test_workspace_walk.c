/* The component walk in workspace/util.c: the fallback that stands in for
 * openat2 on kernels before 5.6, and the staging tree's creating open.
 *
 * The fallback never runs on a kernel with openat2, so the test takes openat2
 * away: a seccomp filter makes it fail with ENOSYS, as an old kernel does.
 * Criterion runs each test in a process of its own, so the filter ends with
 * the test. Through the walk, real paths must still open and a symlink
 * anywhere on the way must still be refused. */
#include "test_workspace_fixture.h"

#include <linux/openat2.h>
#include <seccomp.h>
#include <sys/syscall.h>

#include "workspace/internal.h"

static void take_openat2_away(int rootfd)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	cr_assert(f);
	cr_assert_eq(seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0), 0);
	cr_assert_eq(seccomp_load(f), 0);
	seccomp_release(f);
	struct open_how how = { .flags = O_RDONLY };
	cr_assert(syscall(SYS_openat2, rootfd, ".", &how, sizeof(how)) < 0 && errno == ENOSYS,
		  "openat2 is still there: the fallback would not run");
}

static char *read_fd(int fd)
{
	static char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

Test(workspace_walk, without_openat2_paths_open_and_symlinks_on_the_way_are_refused)
{
	char *root = fx_tmpdir();
	fx_mkdir(root, "a", 0755);
	fx_mkdir(root, "a/b", 0755);
	fx_put(root, "a/b/f", "inside\n");
	fx_symlink(root, "link", "a");        /* a directory reached through a link */
	fx_symlink(root, "a/b/lf", "f");      /* a link as the last component */
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(rootfd >= 0);
	take_openat2_away(rootfd);

	int fd = ws_open_beneath(rootfd, "a/b/f", O_RDONLY, 0);
	cr_assert(fd >= 0, "a real path did not open: %s", strerror(-fd));
	cr_assert_str_eq(read_fd(fd), "inside\n");
	fd = ws_open_beneath(rootfd, "f", O_RDONLY, 0);
	cr_assert_eq(fd, -ENOENT, "a name with no '/' opens in the root itself");

	fd = ws_open_beneath(rootfd, "link/b/f", O_RDONLY, 0);
	cr_assert(fd < 0, "the walk followed a symlinked directory");
	cr_assert(fd == -ELOOP || fd == -ENOTDIR, "got %s", strerror(-fd));
	cr_assert_eq(ws_open_beneath(rootfd, "a/b/lf", O_RDONLY, 0), -ELOOP,
		     "the walk followed a symlink as the last component");

	const char *name = NULL;
	int pfd = ws_open_parent(rootfd, "a/b/f", &name);
	cr_assert(pfd >= 0 && !strcmp(name, "f"));
	cr_assert_str_eq(read_fd(openat(pfd, name, O_RDONLY)), "inside\n");
	close(pfd);
	close(rootfd);
	workspace_remove_tree(root);
	free(root);
}

Test(workspace_walk, the_creating_open_makes_parents_and_refuses_symlinks_on_the_way)
{
	char *root = fx_tmpdir();
	fx_mkdir(root, "a", 0755);
	fx_symlink(root, "link", "a");
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(rootfd >= 0);

	const char *name = NULL;
	int pfd = ws_open_parent_mkdir(rootfd, "x/y/z", &name);
	cr_assert(pfd >= 0, "%s", strerror(-pfd));
	cr_assert_str_eq(name, "z");
	char p[4200];
	struct stat made, got;
	snprintf(p, sizeof(p), "%s/x/y", root);
	cr_assert(stat(p, &made) == 0, "x/y was not made");
	cr_assert_eq(made.st_mode & 0777, 0700);
	cr_assert(fstat(pfd, &got) == 0 && got.st_ino == made.st_ino, "not the fd of x/y");
	close(pfd);

	pfd = ws_open_parent_mkdir(rootfd, "top", &name);
	cr_assert(pfd >= 0 && pfd != rootfd && !strcmp(name, "top"), "no '/': a copy of the root");
	close(pfd);

	pfd = ws_open_parent_mkdir(rootfd, "link/q/r", &name);
	cr_assert(pfd < 0, "the creating open went through a symlink");
	cr_assert(!fx_exists(root, "a/q"), "a directory was made beyond the link");
	close(rootfd);
	workspace_remove_tree(root);
	free(root);
}
