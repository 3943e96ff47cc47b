/* PATCH /v1/sandboxes/{id}: a client's keep-alive. The body is a SandboxPatch
 * ({"ttl_s": N}, docs/api.yaml); the sandbox's expiry becomes now + N,
 * capped at the daemon's --max-ttl, and the answer is the sandbox as GET shows
 * it (ttl_s and expires_at, so a client sees the cap it got).
 *
 * Why a reset and not a fixed long TTL: a client that dies without its
 * DELETE (SIGKILL, a lost machine) then leaves a sandbox that goes within
 * one short TTL, while a live client renews it for as long as it works.
 * The body is hostile like every other: parsed with a length, unknown fields
 * refused, ttl_s a whole number in range, else a 400 naming the field. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "serve/internal.h"

int serve_patch_sandbox(struct serve_sandbox *sb, const char *p, size_t n, char *field,
			struct err *e)
{
	json_error_t je;
	json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	int rc = -EINVAL;
	field[0] = '\0';
	if (!j) {
		err_set(e, -EINVAL, "the body is not valid JSON: %s at line %d column %d", je.text,
			je.line, je.column);
		return rc;
	}
	const char *k;
	json_t *v;
	if (!json_is_object(j)) {
		err_set(e, -EINVAL, "the body must be a JSON object: {\"ttl_s\": N}");
		goto out;
	}
	json_object_foreach(j, k, v) {
		if (strcmp(k, "ttl_s")) {
			snprintf(field, SERVE_FIELD_MAX, "%.63s", k);
			err_set(e, -EINVAL, "unknown field '%.64s' (a PATCH takes ttl_s)", k);
			goto out;
		}
	}
	v = json_object_get(j, "ttl_s");
	snprintf(field, SERVE_FIELD_MAX, "%s", "ttl_s");
	if (!v) {
		err_set(e, -EINVAL, "'ttl_s' is required: the seconds from now the sandbox may live");
		goto out;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > SERVE_TTL_MAX_S) {
		err_set(e, -EINVAL, "'ttl_s' must be a whole number from 1 to %d (the daemon caps it "
			"at its --max-ttl)", SERVE_TTL_MAX_S);
		goto out;
	}
	field[0] = '\0';
	serve_sandbox_renew(sb, (unsigned)json_integer_value(v));
	rc = 0;
out:
	json_decref(j);
	return rc;
}
