/* A stand-in for Firecracker's `jailer` (tests/integration/test_fc_jailer.c),
 * started by the real launcher in the real jail, as root, under our
 * Firecracker-under-its-jailer seccomp policy, exactly as the real jailer
 * would be. It does what the jailer documents (docs/jailer.md in
 * Firecracker's source), with the same system calls where it can:
 *
 *   - accepts only the jailer's documented options (anything else is exit 2,
 *     as the real one's argument parser refuses it) and requires --id,
 *     --exec-file, --uid, --gid, --chroot-base-dir and --cgroup-version;
 *   - writes its argv, one argument a line, to <chroot-base>/jailer-argv;
 *   - makes <chroot-base>/<exec-file name>/<id>/root, copies the exec file
 *     in, joins --netns when given (by its path, before the chroot, as the
 *     jailer's code does), enters a new mount namespace, binds the chroot
 *     onto itself, pivot_roots into it, detaches the old root, chroot(".");
 *   - makes /dev/kvm and /dev/net/tun (mknod) and /, /dev, /dev/net, /run
 *     owned by --uid/--gid;
 *   - drops to --uid/--gid and execs /<exec-file name> --id <id>
 *     --start-time-us 0 --start-time-cpu-us 0 followed by what came after
 *     `--`.
 * Any failing step exits 3 with the step on stderr (which the launcher keeps). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void die(const char *step)
{
	fprintf(stderr, "fc-jailer-peer: %s: %s\n", step, strerror(errno));
	_exit(3);
}

static void mkdirs(const char *path)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			die(p);
		if (!c)
			return;
		*s = c;
	}
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (in < 0 || out < 0)
		die("opening the exec file or its copy");
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			die("copying the exec file");
	if (n < 0)
		die("reading the exec file");
	close(in);
	close(out);
}

int main(int argc, char **argv)
{
	static const char *const with_value[] = { "--id", "--exec-file", "--uid", "--gid", "--chroot-base-dir",
						  "--netns", "--cgroup-version", "--parent-cgroup", "--cgroup",
						  "--resource-limit", "--node", NULL };
	static const char *const flags[] = { "--daemonize", "--new-pid-ns", NULL };
	const char *id = NULL, *exec = NULL, *base = NULL, *netns = NULL, *cgv = NULL;
	long uid = -1, gid = -1;
	int extra = argc;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			extra = i + 1;
			break;
		}
		int known = 0;
		for (int k = 0; flags[k]; k++)
			known |= !strcmp(argv[i], flags[k]);
		if (known)
			continue;
		for (int k = 0; with_value[k]; k++)
			known |= !strcmp(argv[i], with_value[k]);
		if (!known || i + 1 >= argc) {
			fprintf(stderr, "fc-jailer-peer: unknown or incomplete option %s\n", argv[i]);
			return 2;
		}
		const char *v = argv[++i];
		if (!strcmp(argv[i - 1], "--id"))
			id = v;
		else if (!strcmp(argv[i - 1], "--exec-file"))
			exec = v;
		else if (!strcmp(argv[i - 1], "--chroot-base-dir"))
			base = v;
		else if (!strcmp(argv[i - 1], "--netns"))
			netns = v;
		else if (!strcmp(argv[i - 1], "--cgroup-version"))
			cgv = v;
		else if (!strcmp(argv[i - 1], "--uid"))
			uid = strtol(v, NULL, 10);
		else if (!strcmp(argv[i - 1], "--gid"))
			gid = strtol(v, NULL, 10);
	}
	if (!id || !exec || !base || !cgv || uid <= 0 || gid <= 0) {
		fprintf(stderr, "fc-jailer-peer: missing a required option\n");
		return 2;
	}
	char path[4200], root[4096], copy[8300];
	snprintf(path, sizeof(path), "%s/jailer-argv", base);
	FILE *f = fopen(path, "w");
	if (!f)
		die(path);
	for (int i = 0; i < argc; i++)
		fprintf(f, "%s\n", argv[i]);
	fclose(f);

	const char *name = strrchr(exec, '/') ? strrchr(exec, '/') + 1 : exec;
	snprintf(root, sizeof(root), "%s/%s/%s/root", base, name, id);
	mkdirs(root);
	snprintf(copy, sizeof(copy), "%s/%s", root, name);
	copy_file(exec, copy);
	/* As the jailer's code does it (env.rs run()): the netns by its host
	 * path, before the chroot. */
	if (netns) {
		int fd = open(netns, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET))
			die("joining --netns");
		close(fd);
	}

	if (unshare(CLONE_NEWNS))
		die("unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL))
		die("making / private");
	if (mount(root, root, NULL, MS_BIND, NULL))
		die("binding the chroot onto itself");
	if (chdir(root))
		die("chdir into the chroot");
	if (mkdir("old_root", 0700) && errno != EEXIST)
		die("old_root");
	if (syscall(SYS_pivot_root, ".", "old_root"))
		die("pivot_root");
	if (umount2("old_root", MNT_DETACH))
		die("detaching the old root");
	if (rmdir("old_root"))
		die("removing old_root");
	if (chroot("."))
		die("chroot");

	static const char *const folders[] = { "/dev", "/dev/net", "/run" };
	for (int i = 0; i < 3; i++)
		if (mkdir(folders[i], 0700) && errno != EEXIST)
			die(folders[i]);
	if (mknod("/dev/kvm", S_IFCHR | 0600, makedev(10, 232)) || mknod("/dev/net/tun", S_IFCHR | 0600, makedev(10, 200)))
		die("mknod");
	static const char *const owned[] = { "/", "/dev", "/dev/net", "/run", "/dev/kvm", "/dev/net/tun" };
	for (int i = 0; i < 6; i++)
		if (chown(owned[i], (uid_t)uid, (gid_t)gid))
			die(owned[i]);
	if (setgroups(0, NULL) || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) || setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid))
		die("dropping privileges");
	char *args[64];
	int n = 0;
	char exe[300];
	snprintf(exe, sizeof(exe), "/%s", name);
	args[n++] = exe;
	args[n++] = "--id";
	args[n++] = (char *)id;
	/* The real one also passes its timing (opaque numbers). */
	args[n++] = "--start-time-us";
	args[n++] = "0";
	args[n++] = "--start-time-cpu-us";
	args[n++] = "0";
	for (int i = extra; i < argc && n < 62; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	char *envp[] = { NULL };
	execve(exe, args, envp);
	die("exec");
}
