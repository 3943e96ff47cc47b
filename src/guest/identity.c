/* vm.identity: what makes a VM restored from a template its own machine.
 *
 * Every clone of a template resumes with the template's memory: the same
 * kernel RNG state, the same clock reading from when it was saved, the same
 * hostname. The host sends, once, right after the restore: fresh entropy
 * (mixed in with RNDADDENTROPY and credited, then RNDRESEEDCRNG so the next
 * /dev/urandom read already uses it, not only the one after the kernel's own
 * reseed interval), the wall-clock time (clock_settime), the hostname and the
 * VM id (kept in /run/ironclaw/vm-id for programs in the guest).
 *
 * The params are hostile like everything from the channel: a strict schema,
 * the entropy between 32 and 512 bytes, names limited to hostname characters. */
#include "guest/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/io.h"
#include "proto/rpc.h"

#define IDENTITY_ENTROPY_MIN 32
#define IDENTITY_ENTROPY_MAX 512
#define IDENTITY_NAME_MAX 63
#define IDENTITY_ID_FILE "/run/ironclaw/vm-id"

static int identity_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > IDENTITY_NAME_MAX || s[0] == '-')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* Mixes bytes into the input pool, credited, and reseeds the CRNG from it. */
static int identity_add_entropy(const uint8_t *data, size_t len, char *why, size_t n)
{
	struct {
		struct rand_pool_info info;
		uint8_t buf[IDENTITY_ENTROPY_MAX];
	} p;
	memset(&p, 0, sizeof(p));
	p.info.entropy_count = (int)(len * 8);
	p.info.buf_size = (int)len;
	memcpy(p.buf, data, len);
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	int rc = 0;
	if (fd < 0) {
		snprintf(why, n, "opening /dev/urandom: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(fd, RNDADDENTROPY, &p.info) < 0) {
		rc = -errno;
		snprintf(why, n, "RNDADDENTROPY: %s", strerror(errno));
	} else if (ioctl(fd, RNDRESEEDCRNG) < 0) {
		rc = -errno;
		snprintf(why, n, "RNDRESEEDCRNG: %s", strerror(errno));
	}
	close(fd);
	explicit_bzero(&p, sizeof(p));
	return rc;
}

static int identity_write_id(const char *id, size_t len, char *why, size_t n)
{
	mkdir("/run/ironclaw", 0755);
	int fd = open(IDENTITY_ID_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || io_write_all(fd, id, len) < 0 || io_write_all(fd, "\n", 1) < 0) {
		snprintf(why, n, "writing %s: %s", IDENTITY_ID_FILE, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	if (rename(IDENTITY_ID_FILE ".tmp", IDENTITY_ID_FILE) < 0) {
		snprintf(why, n, "renaming %s: %s", IDENTITY_ID_FILE, strerror(errno));
		return -errno;
	}
	return 0;
}

int guest_identity(struct guest *g, json_int_t id, json_t *params)
{
	static const char *const allowed[] = { "data", "time_s", "time_ns", "hostname", "vm_id", NULL };
	char why[256] = "";
	uint8_t *data = NULL;
	size_t len = 0, hlen = 0, idlen = 0;
	json_int_t sec = 0, nsec = 0;
	const char *host = NULL, *vm_id = NULL;
	if (proto_param_only(params, allowed, why, sizeof(why)) < 0 ||
	    proto_param_data(params, IDENTITY_ENTROPY_MAX, &data, &len, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "time_s", 1, 0, INT64_MAX / 2, &sec, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "time_ns", 1, 0, 999999999, &nsec, why, sizeof(why)) < 0 ||
	    proto_param_str(params, "hostname", 1, &host, &hlen, why, sizeof(why)) < 0 ||
	    proto_param_str(params, "vm_id", 1, &vm_id, &idlen, why, sizeof(why)) < 0) {
		free(data);
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	}
	if (len < IDENTITY_ENTROPY_MIN) {
		free(data);
		return guest_reply_error(g, id, RPC_INVALID_PARAMS,
					 "data: at least %d bytes of entropy, got %zu",
					 IDENTITY_ENTROPY_MIN, len);
	}
	if (!identity_name_ok(host, hlen) || !identity_name_ok(vm_id, idlen)) {
		free(data);
		return guest_reply_error(g, id, RPC_INVALID_PARAMS,
					 "hostname and vm_id: 1-%d of [a-z0-9-], not starting with '-'",
					 IDENTITY_NAME_MAX);
	}
	if (getpid() != 1) {
		/* On a host (--channel-fd, the tests) this would reseed the host's
		 * RNG and set its clock and hostname: only the VM's init does it. */
		free(data);
		return guest_reply_error(g, id, -32000, "vm.identity is only for the agent as the VM's init");
	}
	int rc = identity_add_entropy(data, len, why, sizeof(why));
	explicit_bzero(data, len);
	free(data);
	if (rc < 0)
		return guest_reply_error(g, id, -32000, "%s", why);
	struct timespec ts = { .tv_sec = (time_t)sec, .tv_nsec = (long)nsec };
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return guest_reply_error(g, id, -32000, "clock_settime: %s", strerror(errno));
	if (sethostname(host, hlen) < 0)
		return guest_reply_error(g, id, -32000, "sethostname: %s", strerror(errno));
	if (identity_write_id(vm_id, idlen, why, sizeof(why)) < 0)
		return guest_reply_error(g, id, -32000, "%s", why);
	return guest_reply(g, id, json_pack("{s:i,s:s%,s:s%}", "entropy_bytes", (int)len,
					    "hostname", host, hlen, "vm_id", vm_id, idlen));
}
