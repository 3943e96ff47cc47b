/* Field checks: see params.h. The cap on base64 data is applied to the encoded
 * length before the decoded buffer is allocated. */
#include "proto/params.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"

static int proto_param_fail(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int proto_param_fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int proto_param_only(json_t *params, const char *const *allowed, char *why, size_t n)
{
	const char *key;
	json_t *v;
	if (!params)
		return 0;
	if (!json_is_object(params))
		return proto_param_fail(why, n, "params must be an object");
	json_object_foreach(params, key, v) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, key))
				ok = 1;
		if (!ok)
			return proto_param_fail(why, n, "unknown field \"%.64s\"", key);
	}
	return 0;
}

int proto_param_int(json_t *params, const char *key, int required, json_int_t lo,
		     json_int_t hi, json_int_t *out, char *why, size_t n)
{
	json_t *v = params ? json_object_get(params, key) : NULL;
	if (!v) {
		if (required)
			return proto_param_fail(why, n, "missing \"%s\"", key);
		return 0;
	}
	if (!json_is_integer(v))
		return proto_param_fail(why, n, "\"%s\" must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return proto_param_fail(why, n, "\"%s\" must be between %lld and %lld", key,
					 (long long)lo, (long long)hi);
	*out = x;
	return 0;
}

int proto_param_bool(json_t *params, const char *key, int *out, char *why, size_t n)
{
	json_t *v = params ? json_object_get(params, key) : NULL;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return proto_param_fail(why, n, "\"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

int proto_param_str(json_t *params, const char *key, int required, const char **out,
		     size_t *len, char *why, size_t n)
{
	json_t *v = params ? json_object_get(params, key) : NULL;
	if (!v) {
		if (required)
			return proto_param_fail(why, n, "missing \"%s\"", key);
		return 0;
	}
	if (!json_is_string(v))
		return proto_param_fail(why, n, "\"%s\" must be a string", key);
	const char *s = json_string_value(v);
	size_t l = json_string_length(v);
	if (strlen(s) != l)
		return proto_param_fail(why, n, "\"%s\" contains a NUL byte", key);
	*out = s;
	if (len)
		*len = l;
	return 0;
}

int proto_param_data(json_t *params, size_t max, uint8_t **out, size_t *len,
		      char *why, size_t n)
{
	const char *s = NULL;
	size_t sl = 0;
	int rc = proto_param_str(params, "data", 1, &s, &sl, why, n);
	if (rc < 0)
		return rc;
	if (sl % 4)
		return proto_param_fail(why, n, "\"data\" is not padded base64 (length %zu)", sl);
	/* Cap on the encoded size, before allocating the decoded one. */
	if (sl / 4 * 3 > max + 2)
		return proto_param_fail(why, n, "\"data\" holds more than %zu bytes", max);
	*out = NULL;
	*len = 0;
	if (sl == 0)
		return 0;
	uint8_t *d = malloc(sl / 4 * 3);
	if (!d)
		return proto_param_fail(why, n, "out of memory for %zu bytes of data", sl / 4 * 3);
	long dl = b64_decode(s, sl, d);
	if (dl < 0 || (size_t)dl > max) {
		free(d);
		return proto_param_fail(why, n, dl < 0 ? "\"data\" is not valid base64"
						       : "\"data\" holds more than the allowed bytes");
	}
	*out = d;
	*len = (size_t)dl;
	return 0;
}
