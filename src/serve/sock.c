/* The daemon's Unix socket: made, bound and listened on here, then handed to
 * libmicrohttpd (MHD_OPTION_LISTEN_SOCKET). Access is the file's mode: 0600
 * owner root by default, 0660 with a group when `--group G` opens it to G's
 * members (as Docker's socket). The socket is bound under a umask that leaves
 * no moment at which it is wider than that. A socket file left by a daemon
 * that was killed is replaced; one that still answers means another daemon
 * serves there, and we refuse to start. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve/internal.h"

static int sock_parent(const char *path, struct err *e)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return err_set(e, -errno, "creating %s: %s", dir, strerror(errno));
	return 0;
}


int serve_sock_listen(const char *path, gid_t group, int *out, struct err *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd = -1, rc;
	if (strlen(path) >= sizeof(a.sun_path))
		return err_set(e, -ENAMETOOLONG, "socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if ((rc = sock_parent(path, e)) < 0)
		return rc;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(e, -EEXIST, "%s exists and is not a socket (hint: remove it, "
				       "or pass --socket PATH)", path);
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(probe);
			return err_set(e, -EADDRINUSE, "another daemon serves on %s (hint: stop it, "
				       "or pass --socket PATH)", path);
		}
		if (probe >= 0)
			close(probe);
		unlink(path); /* left by a daemon that was killed */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, -errno, "socket: %s", strerror(errno));
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (rc < 0) {
		rc = err_set(e, -errno, "binding %s: %s", path, strerror(errno));
		goto fail;
	}
	if (group != (gid_t)-1 && (chown(path, (uid_t)-1, group) < 0 || chmod(path, 0660) < 0)) {
		int er = errno;
		rc = err_set(e, -er, "giving %s to group %u: %s", a.sun_path, (unsigned)group,
			     strerror(er));
		unlink(path);
		goto fail;
	}
	if (listen(fd, 128) < 0) {
		rc = err_set(e, -errno, "listen on %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	*out = fd;
	return 0;
fail:
	close(fd);
	return rc;
}
