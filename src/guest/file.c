/* file.put and file.get: move bytes in and out of the guest's filesystem, at
 * most GUEST_FILE_MAX per call so that a reply always fits one frame. Paths are
 * absolute; file.put creates missing parent directories (0755), which is what
 * copying a workspace tree in needs. Inside the VM there is nothing to protect
 * from the host, so no path is off limits; on the host (--channel-fd, tests)
 * the agent runs with the caller's own rights. */
#include "guest/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/b64.h"
#include "core/io.h"
#include "proto/rpc.h"

static int guest_file_path(json_t *params, const char **path, char *why, size_t n)
{
	size_t len = 0;
	int rc = proto_param_str(params, "path", 1, path, &len, why, n);
	if (rc < 0)
		return rc;
	if ((*path)[0] != '/' || len >= PATH_MAX) {
		snprintf(why, n, "\"path\" must be an absolute path shorter than %d bytes", PATH_MAX);
		return -EINVAL;
	}
	return 0;
}

/* mkdir -p of path's parent. */
static int guest_file_mkparents(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

int guest_file_put(struct guest *g, json_int_t id, json_t *params)
{
	static const char *const allowed[] = { "path", "data", "mode", "append", NULL };
	const char *path = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	json_int_t mode = 0644;
	int append = 0, fd = -1, rc;
	char why[256];
	struct stat st;

	if (proto_param_only(params, allowed, why, sizeof(why)) < 0 ||
	    guest_file_path(params, &path, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "mode", 0, 0, 07777, &mode, why, sizeof(why)) < 0 ||
	    proto_param_bool(params, "append", &append, why, sizeof(why)) < 0 ||
	    proto_param_data(params, GUEST_FILE_MAX, &data, &len, why, sizeof(why)) < 0) {
		rc = guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
		goto out;
	}
	if ((rc = guest_file_mkparents(path)) < 0) {
		rc = guest_reply_error(g, id, -32000, "creating the parents of %.200s: %s", path,
				       strerror(-rc));
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC),
		  (mode_t)mode);
	/* An explicit mode wins over umask and over the mode of an existing file. */
	if (fd < 0 || (rc = io_write_all(fd, data, len)) < 0 ||
	    (json_object_get(params, "mode") && fchmod(fd, (mode_t)mode) < 0) || fstat(fd, &st) < 0) {
		rc = guest_reply_error(g, id, -32000, "writing %.200s: %s", path,
				       strerror(fd < 0 || rc == 0 ? errno : -rc));
		goto out;
	}
	rc = guest_reply(g, id, json_pack("{s:I}", "size", (json_int_t)st.st_size));
out:
	if (fd >= 0)
		close(fd);
	free(data);
	return rc;
}

int guest_file_get(struct guest *g, json_int_t id, json_t *params)
{
	static const char *const allowed[] = { "path", "offset", "length", NULL };
	const char *path = NULL;
	json_int_t offset = 0, length = GUEST_FILE_MAX;
	uint8_t *data = NULL;
	char *enc = NULL;
	size_t got = 0;
	int fd = -1, rc;
	char why[256];
	struct stat st;

	if (proto_param_only(params, allowed, why, sizeof(why)) < 0 ||
	    guest_file_path(params, &path, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "offset", 0, 0, INT64_MAX - GUEST_FILE_MAX, &offset, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "length", 0, 0, GUEST_FILE_MAX, &length, why, sizeof(why)) < 0) {
		rc = guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = guest_reply_error(g, id, -32000, "opening %.200s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = guest_reply_error(g, id, -32000, "%.200s is not a regular file", path);
		goto out;
	}
	/* Size the buffers by what the file holds, not by the 8 MiB cap. A size
	 * of 0 may be a lie (/proc files): then the full length is allowed. */
	if (st.st_size > 0)
		length = offset >= st.st_size ? 0
			 : (st.st_size - offset < length ? st.st_size - offset : length);
	data = malloc(length ? (size_t)length : 1);
	enc = malloc(b64_encoded_len((size_t)length) + 1);
	if (!data || !enc) {
		rc = guest_reply_error(g, id, -32000, "out of memory for %lld bytes", (long long)length);
		goto out;
	}
	while (got < (size_t)length) {
		ssize_t r = pread(fd, data + got, (size_t)length - got, (off_t)offset + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = guest_reply_error(g, id, -32000, "reading %.200s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	b64_encode(data, got, enc);
	rc = guest_reply(g, id, json_pack("{s:s,s:I,s:b}", "data", enc, "size", (json_int_t)st.st_size,
					  "eof", (json_int_t)offset + (json_int_t)got >= st.st_size));
out:
	if (fd >= 0)
		close(fd);
	free(data);
	free(enc);
	return rc;
}
