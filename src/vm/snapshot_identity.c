/* vm.identity params and reply check: see snapshot.h. */
#include "vm/snapshot.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/b64.h"

json_t *vm_snapshot_identity_params(const char *vm_id, struct err *e)
{
	uint8_t rnd[VM_IDENTITY_ENTROPY];
	char b64[(VM_IDENTITY_ENTROPY + 2) / 3 * 4 + 1];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		err_set(e, -EIO, "getrandom for the clone's entropy: %s", strerror(errno));
		return NULL;
	}
	b64_encode(rnd, sizeof(rnd), b64);
	explicit_bzero(rnd, sizeof(rnd));
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_t *p = json_pack("{s:s,s:I,s:I,s:s,s:s}", "data", b64, "time_s", (json_int_t)now.tv_sec,
			      "time_ns", (json_int_t)now.tv_nsec, "hostname", vm_id, "vm_id", vm_id);
	explicit_bzero(b64, sizeof(b64));
	if (!p)
		err_set(e, -ENOMEM, "out of memory");
	return p;
}

int vm_snapshot_identity_check(json_t *result, struct err *e)
{
	json_t *n = json_object_get(result, "entropy_bytes");
	if (!json_is_integer(n) || json_integer_value(n) != VM_IDENTITY_ENTROPY)
		return err_set(e, -EPROTO,
			       "the restored guest did not confirm its fresh entropy (an image whose agent predates vm.identity? rebuild the template)");
	return 0;
}
