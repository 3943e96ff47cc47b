/* QMP `quit`: see qmp.h. QMP is line-delimited JSON; we read whole lines and
 * look only at the keys we need. The peer is our own QEMU, but its replies are
 * still bounded and parsed, not trusted. */
#include "vm/qmp.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/io.h"

/* Reads one line (without the newline) before the deadline. */
static int qmp_read_line(int fd, char *line, size_t len, long deadline)
{
	size_t have = 0;
	while (have + 1 < len) {
		long left = deadline - (long)clock_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			return -ETIMEDOUT;
		ssize_t n = io_read(fd, line + have, 1);
		if (n <= 0)
			return n < 0 ? (int)n : -EPIPE;
		if (line[have] == '\n') {
			line[have] = '\0';
			return 0;
		}
		have++;
	}
	return -EMSGSIZE;
}

/* Sends a command and waits for its "return" (skipping async events). */
static int qmp_command(int fd, const char *cmd, long deadline)
{
	int rc = io_write_all(fd, cmd, strlen(cmd));
	if (rc < 0)
		return rc;
	char line[4096];
	for (;;) {
		rc = qmp_read_line(fd, line, sizeof(line), deadline);
		if (rc < 0)
			return rc;
		json_t *j = json_loads(line, 0, NULL);
		int is_return = j && json_object_get(j, "return");
		int is_error = j && json_object_get(j, "error");
		json_decref(j);
		if (is_return)
			return 0;
		if (is_error)
			return -EIO;
	}
}

int qmp_quit(const char *socket_path, int timeout_ms)
{
	long deadline = (long)clock_now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	char greeting[4096];
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	if (rc == 0)
		rc = qmp_read_line(fd, greeting, sizeof(greeting), deadline);
	if (rc == 0)
		rc = qmp_command(fd, "{\"execute\":\"qmp_capabilities\"}\n", deadline);
	if (rc == 0) {
		rc = qmp_command(fd, "{\"execute\":\"quit\"}\n", deadline);
		/* QEMU may close the socket before its reply reaches us. */
		if (rc == -EPIPE)
			rc = 0;
	}
	close(fd);
	return rc;
}
