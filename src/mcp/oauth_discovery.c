/* Who may issue a token for an MCP server, in the order the MCP authorization
 * spec (2025-11-25) gives:
 *
 * 1. Protected resource metadata (RFC 9728): the URL in the challenge's
 *    resource_metadata, else /.well-known/oauth-protected-resource/<path>,
 *    then /.well-known/oauth-protected-resource at the server's origin. Its
 *    "resource" must be the server itself (same origin, a path prefix on a
 *    segment boundary): metadata naming another resource would have us ask
 *    for, and hand over, a token for something else. That resource, exactly
 *    as published, is what we send as RFC 8707 `resource`.
 * 2. Authorization server metadata for its first authorization server: for an
 *    issuer with a path, /.well-known/oauth-authorization-server/<path>, then
 *    /.well-known/openid-configuration/<path>, then
 *    <path>/.well-known/openid-configuration; without a path the first two
 *    at the root. The document's issuer must be that issuer, byte for byte
 *    (RFC 8414 §3.3): otherwise its endpoints are an attacker's.
 * 3. A server with no protected resource metadata is a 2025-03-26 one: its
 *    origin is the authorization server (its metadata's issuer must be of that
 *    origin; that revision allowed a path), and when that has no metadata
 *    either its endpoints are /authorize, /token and /register there. */
#include "mcp/oauth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { DS_PRM = 1, DS_AS };

/* dst = a b c, or "" when it does not fit (then no request is made for it). */
static void join3(char *dst, size_t dn, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	if (la + lb + lc >= dn) {
		dst[0] = '\0';
		return;
	}
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb);
	memcpy(dst + la + lb, c, lc + 1);
}

static void disc_next(struct oauth_discovery *d);

static void disc_finish(struct oauth_discovery *d, int rc, const struct err *e)
{
	d->stage = 0;
	d->cb(d->opaque, rc, e);
}

static int resource_matches(const char *resource, const char *server_url)
{
	char ro[OAUTH_URL_MAX], rp[OAUTH_URL_MAX], so[OAUTH_URL_MAX], sp[OAUTH_URL_MAX];
	if (oauth_url_split(resource, ro, sizeof(ro), rp, sizeof(rp)) < 0 ||
	    oauth_url_split(server_url, so, sizeof(so), sp, sizeof(sp)) < 0 || strcmp(ro, so))
		return 0;
	size_t n = strlen(rp);
	while (n > 0 && rp[n - 1] == '/')
		n--;
	return !strncmp(rp, sp, n) && (sp[n] == '\0' || sp[n] == '/');
}

static int as_urls(struct oauth_discovery *d, const char *issuer)
{
	char o[OAUTH_URL_MAX], p[OAUTH_URL_MAX];
	if (oauth_url_split(issuer, o, sizeof(o), p, sizeof(p)) < 0)
		return -EINVAL;
	d->nurls = 0;
	d->at = 0;
	if (p[0]) {
		join3(d->urls[d->nurls++], OAUTH_URL_MAX, o, "/.well-known/oauth-authorization-server",
		      p);
		join3(d->urls[d->nurls++], OAUTH_URL_MAX, o, "/.well-known/openid-configuration", p);
		join3(d->urls[d->nurls++], OAUTH_URL_MAX, o, p, "/.well-known/openid-configuration");
	} else {
		join3(d->urls[d->nurls++], OAUTH_URL_MAX, o, "/.well-known/oauth-authorization-server",
		      "");
		join3(d->urls[d->nurls++], OAUTH_URL_MAX, o, "/.well-known/openid-configuration", "");
	}
	return 0;
}

/* No authorization server metadata for a 2025-03-26 server: its defaults. */
static void disc_legacy_endpoints(struct oauth_discovery *d)
{
	char o[OAUTH_URL_MAX], p[OAUTH_URL_MAX];
	struct oauth_asmeta *as = &d->as;
	memset(as, 0, sizeof(*as));
	oauth_url_split(d->server_url, o, sizeof(o), p, sizeof(p));
	snprintf(as->issuer, sizeof(as->issuer), "%s", o);
	join3(as->authorization_endpoint, sizeof(as->authorization_endpoint), o, "/authorize", "");
	join3(as->token_endpoint, sizeof(as->token_endpoint), o, "/token", "");
	join3(as->registration_endpoint, sizeof(as->registration_endpoint), o, "/register", "");
	as->auth_methods = OAUTH_AUTH_NONE | OAUTH_AUTH_BASIC | OAUTH_AUTH_POST;
	as->pkce_s256 = 1;
}

static void disc_start_as(struct oauth_discovery *d)
{
	struct err e = { 0 };
	const char *issuer = d->has_prm ? d->prm.as : d->as.issuer;
	d->stage = DS_AS;
	if (as_urls(d, issuer) < 0) {
		err_set(&e, -EINVAL, "the authorization server '%.200s' is not a URL", issuer);
		disc_finish(d, e.code, &e);
		return;
	}
	disc_next(d);
}

static void on_doc(void *opaque, long status, const char *body, size_t len,
		   const struct err *he)
{
	struct oauth_discovery *d = opaque;
	struct err e = { 0 };
	const char *url = d->urls[d->at];
	d->at++;
	if (d->stage == DS_PRM) {
		if (status == 200 && oauth_parse_prm(body, len, &d->prm, &e) == 0) {
			if (!resource_matches(d->prm.resource, d->server_url)) {
				err_set(&e, -EPERM, "the protected resource metadata at %.200s is for "
					"'%.200s', not for this server (%.200s); refusing to authorize",
					url, d->prm.resource, d->server_url);
				disc_finish(d, e.code, &e);
				return;
			}
			d->has_prm = 1;
			snprintf(d->resource, sizeof(d->resource), "%s", d->prm.resource);
			disc_start_as(d);
			return;
		}
		if (d->at < d->nurls) {
			disc_next(d);
			return;
		}
		if (d->nurls == 1) {
			/* The server named its metadata and it is not there: no guessing. */
			err_set(&e, -ENOENT, "the server's protected resource metadata (%.200s) "
				"could not be read: %s", url, e.code ? e.msg : he->code ? he->msg :
				"no usable document");
			disc_finish(d, e.code, &e);
			return;
		}
		/* No PRM: a 2025-03-26 server, its origin is the authorization server. */
		char o[OAUTH_URL_MAX], p[OAUTH_URL_MAX];
		oauth_url_split(d->server_url, o, sizeof(o), p, sizeof(p));
		snprintf(d->as.issuer, sizeof(d->as.issuer), "%s", o);
		snprintf(d->resource, sizeof(d->resource), "%s", d->server_url);
		disc_start_as(d);
		return;
	}
	/* DS_AS */
	const char *issuer = d->has_prm ? d->prm.as : d->as.issuer;
	char want[OAUTH_URL_MAX];
	snprintf(want, sizeof(want), "%s", issuer);
	if (status == 200) {
		if (oauth_parse_as_metadata(body, len, &d->as, &e) < 0) {
			err_wrap(&e, "%.200s", url);
			disc_finish(d, e.code, &e);
			return;
		}
		/* A 2025-03-26 server (no PRM) serves this from its own origin, and that
		 * revision let the issuer carry a path of its own there: the same
		 * origin is required instead, and the document's issuer is the one the
		 * redirect's iss is compared with. */
		char io[OAUTH_URL_MAX], ip[OAUTH_URL_MAX];
		int same = d->has_prm ? !strcmp(d->as.issuer, want) :
			oauth_url_split(d->as.issuer, io, sizeof(io), ip, sizeof(ip)) == 0 &&
			!strcmp(io, want);
		if (!same) {
			err_set(&e, -EPERM, "the authorization server metadata at %.200s names issuer "
				"'%.200s', not '%.200s'; refusing to use it (RFC 8414 §3.3)", url,
				d->as.issuer, want);
			disc_finish(d, e.code, &e);
			return;
		}
		disc_finish(d, 0, NULL);
		return;
	}
	if (d->at < d->nurls) {
		disc_next(d);
		return;
	}
	if (!d->has_prm) {
		disc_legacy_endpoints(d);
		disc_finish(d, 0, NULL);
		return;
	}
	err_set(&e, -ENOENT, "no authorization server metadata for '%.200s' (tried %s and %d "
		"more; last: %s)", want, d->urls[0], d->nurls - 1,
		he->code ? he->msg : "not found");
	disc_finish(d, e.code, &e);
}

static void disc_next(struct oauth_discovery *d)
{
	struct err e = { 0 };
	int rc = oauth_http_fetch(d->http, d->urls[d->at], NULL, 0, NULL, on_doc, d, &e);
	if (rc < 0)
		disc_finish(d, rc, &e);
}

int oauth_discover(struct oauth_discovery *d, struct oauth_http *h, const char *server_url,
		   const char *resource_metadata, mcp_oauth_cb cb, void *opaque, struct err *e)
{
	char o[OAUTH_URL_MAX], p[OAUTH_URL_MAX];
	memset(d, 0, sizeof(*d));
	d->http = h;
	d->cb = cb;
	d->opaque = opaque;
	snprintf(d->server_url, sizeof(d->server_url), "%s", server_url);
	if (oauth_url_split(server_url, o, sizeof(o), p, sizeof(p)) < 0)
		return err_set(e, -EINVAL, "'%.200s' is not a URL", server_url);
	if (resource_metadata && *resource_metadata) {
		if (!oauth_url_allowed(resource_metadata))
			return err_set(e, -EPERM, "the server's resource_metadata URL is not https");
		snprintf(d->urls[d->nurls++], OAUTH_URL_MAX, "%s", resource_metadata);
	} else {
		if (p[0])
			join3(d->urls[d->nurls++], OAUTH_URL_MAX, o,
			      "/.well-known/oauth-protected-resource", p);
		join3(d->urls[d->nurls++], OAUTH_URL_MAX, o, "/.well-known/oauth-protected-resource",
		      "");
	}
	d->stage = DS_PRM;
	int rc = oauth_http_fetch(h, d->urls[0], NULL, 0, NULL, on_doc, d, e);
	if (rc < 0)
		d->stage = 0;
	return rc;
}
