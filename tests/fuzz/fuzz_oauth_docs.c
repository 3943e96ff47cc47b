/* libFuzzer target: every reader of what an OAuth server sends (oauth_parse.c):
 * the first byte picks WWW-Authenticate, protected resource metadata,
 * authorization server metadata, a registration answer or a token answer (with
 * an HTTP status from the second byte). Invariants: no crash, every field
 * NUL-terminated within its size, a token accepted only when header-safe. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *p = (const char *)data + 2;
	size_t n = size - 2;
	struct err e = { 0 };
	switch (data[0] % 5) {
	case 0: {
		struct oauth_challenge c;
		if (oauth_parse_www_authenticate(p, n, &c) == 0 &&
		    (strlen(c.scope) >= sizeof(c.scope) || strlen(c.error) >= sizeof(c.error)))
			abort();
		break;
	}
	case 1: {
		struct oauth_prm m;
		if (oauth_parse_prm(p, n, &m, &e) == 0 && !oauth_url_allowed(m.as))
			abort();
		break;
	}
	case 2: {
		struct oauth_asmeta *m = malloc(sizeof(*m));
		if (m && oauth_parse_as_metadata(p, n, m, &e) == 0 &&
		    (!oauth_url_allowed(m->token_endpoint) ||
		     !oauth_url_allowed(m->authorization_endpoint)))
			abort();
		free(m);
		break;
	}
	case 3: {
		struct oauth_registration r;
		if (oauth_parse_registration(p, n, &r, &e) == 0 && !oauth_header_safe(r.client_id))
			abort();
		break;
	}
	default: {
		struct oauth_token_response *t = malloc(sizeof(*t));
		long status = data[1] < 128 ? 200 : 400;
		if (t && oauth_parse_token_response(p, n, status, t, &e) == 0 && status == 200 &&
		    !oauth_header_safe(t->access_token))
			abort();
		free(t);
		break;
	}
	}
	return 0;
}
