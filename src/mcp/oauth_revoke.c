/* Token revocation (RFC 7009) for `ironclaw mcp logout`.
 *
 * The token file says who issued the tokens but not where to revoke them, so
 * the authorization server is discovered again from the MCP server, exactly as
 * a login does (oauth_discover: RFC 9728, then RFC 8414 / OIDC). Tokens go
 * only to the issuer that issued them: a server that names another
 * authorization server now gets nothing. The refresh token is revoked first
 * (RFC 7009 says a server should then drop its access tokens too), then the
 * access token, each with token_type_hint and the client authentication the
 * login used. Any 200 is success (RFC 7009 §2.2: an unknown token is 200
 * too). Nothing of a token reaches an error message, and the copies here are
 * wiped before they are freed. */
#include "mcp/oauth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct revoke {
	struct oauth_http *http;
	struct oauth_discovery disc;
	struct oauth_store st;
	int step;                 /* 0: refresh token, 1: access token, 2: done */
	int rc;
	struct err e;
	mcp_oauth_cb cb;
	void *opaque;
};

static void revoke_closed(void *opaque)
{
	struct revoke *rv = opaque;
	rv->cb(rv->opaque, rv->rc, rv->rc < 0 ? &rv->e : NULL);
	memset(rv, 0, sizeof(*rv));
	free(rv);
}

static void revoke_finish(struct revoke *rv, int rc, const struct err *e)
{
	rv->rc = rc;
	if (rc < 0)
		rv->e = *e;
	oauth_http_close(rv->http, revoke_closed, rv);
}

static void revoke_next(struct revoke *rv);

static void on_revoked(void *opaque, long status, const char *body, size_t len,
		       const struct err *he)
{
	struct revoke *rv = opaque;
	struct err e = { 0 };
	(void)body;
	(void)len;
	if (status == 0) {
		err_set(&e, he && he->code ? he->code : -EIO, "revocation request failed: %s",
			he ? he->msg : "no answer");
		revoke_finish(rv, e.code, &e);
		return;
	}
	if (status != 200) {
		err_set(&e, -EPROTO, "the revocation endpoint %s answered HTTP %ld",
			rv->disc.as.revocation_endpoint, status);
		revoke_finish(rv, e.code, &e);
		return;
	}
	rv->step++;
	revoke_next(rv);
}

/* Revokes the token of the current step, or ends. */
static void revoke_next(struct revoke *rv)
{
	static const char *const hint[] = { "refresh_token", "access_token" };
	struct err e = { 0 };
	while (rv->step < 2 && !(rv->step == 0 ? rv->st.refresh_token : rv->st.access_token)[0])
		rv->step++;
	if (rv->step >= 2) {
		revoke_finish(rv, 0, NULL);
		return;
	}
	const char *tok = rv->step == 0 ? rv->st.refresh_token : rv->st.access_token;
	struct oauth_client c = { 0 };
	oauth_client_from_store(&c, &rv->st);
	struct buf form;
	buf_init(&form, 2 * OAUTH_TOKEN_MAX + 4096);
	int rc = oauth_form_add(&form, "token", tok);
	if (rc == 0)
		rc = oauth_form_add(&form, "token_type_hint", hint[rv->step]);
	rc = oauth_client_post(rv->http, &c, rv->disc.as.revocation_endpoint, &form, rc,
			       "revocation", on_revoked, rv, &e);
	memset(&c, 0, sizeof(c));
	if (rc < 0)
		revoke_finish(rv, rc, &e);
}

static void on_discovered(void *opaque, int rc, const struct err *de)
{
	struct revoke *rv = opaque;
	struct err e = { 0 };
	if (rc < 0) {
		err_set(&e, rc, "cannot find the authorization server again: %s", de->msg);
		revoke_finish(rv, rc, &e);
		return;
	}
	if (rv->st.issuer[0] && strcmp(rv->disc.as.issuer, rv->st.issuer)) {
		err_set(&e, -EXDEV, "the server now names the authorization server %s, not %s "
			"which issued the tokens; they are not sent there", rv->disc.as.issuer,
			rv->st.issuer);
		revoke_finish(rv, e.code, &e);
		return;
	}
	if (!rv->disc.as.revocation_endpoint[0]) {
		err_set(&e, -ENOTSUP, "the authorization server %s publishes no "
			"revocation_endpoint", rv->disc.as.issuer);
		revoke_finish(rv, e.code, &e);
		return;
	}
	revoke_next(rv);
}

int oauth_revoke(uv_loop_t *loop, const char *server_url, const struct oauth_store *s,
		 mcp_oauth_cb cb, void *opaque, struct err *e)
{
	struct revoke *rv = calloc(1, sizeof(*rv));
	if (!rv)
		return err_set(e, -ENOMEM, "out of memory");
	rv->st = *s;
	rv->cb = cb;
	rv->opaque = opaque;
	int rc = oauth_http_new(loop, &rv->http, e);
	if (rc < 0) {
		memset(rv, 0, sizeof(*rv));
		free(rv);
		return rc;
	}
	rc = oauth_discover(&rv->disc, rv->http, server_url, NULL, on_discovered, rv, e);
	if (rc < 0) {
		/* Nothing started: close the HTTP object, report nothing. */
		rv->cb = NULL;
		oauth_http_close(rv->http, NULL, NULL);
		memset(rv, 0, sizeof(*rv));
		free(rv);
	}
	return rc;
}
