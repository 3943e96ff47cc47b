/* Who we are to an authorization server, in the MCP spec's order of
 * preference: a client registered beforehand (config "oauth": {"clientId",
 * "clientSecretEnv"}), else a client ID metadata document URL when the server
 * supports them and one is configured ("clientMetadataUrl"; IronClaw hosts
 * none of its own), else RFC 7591 dynamic registration. A registration
 * belongs to the issuer that granted it: a different authorization server
 * always gets a new one (credentials are never carried across servers).
 *
 * The token endpoint's client authentication follows what the server
 * supports: none for a public client, else client_secret_basic, else
 * client_secret_post (as the registration answer may also prescribe).
 * oauth_client_post sends the token and revocation requests so authenticated,
 * and wipes what they carried. */
#include "mcp/mcp.h"
#include "mcp/oauth.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"

static unsigned pick_method(unsigned supported, int has_secret)
{
	if (!has_secret)
		return OAUTH_AUTH_NONE;
	if (supported & OAUTH_AUTH_BASIC)
		return OAUTH_AUTH_BASIC;
	if (supported & OAUTH_AUTH_POST)
		return OAUTH_AUTH_POST;
	return OAUTH_AUTH_NONE;
}

static const char *method_name(unsigned m)
{
	return m == OAUTH_AUTH_BASIC ? "client_secret_basic" :
		m == OAUTH_AUTH_POST ? "client_secret_post" : "none";
}

static void on_registered(void *opaque, long status, const char *body, size_t len,
			  const struct err *he)
{
	struct oauth_client *c = opaque;
	struct err e = { 0 };
	struct oauth_registration reg;
	int rc;
	if (status != 200 && status != 201) {
		rc = err_set(&e, -EACCES, "client registration at the authorization server failed: "
			     "%s%s", he->code ? he->msg : "HTTP ", he->code ? "" : "error");
		if (!he->code)
			snprintf(e.msg, sizeof(e.msg), "client registration at the authorization "
				 "server failed: HTTP %ld (hint: if it does not allow dynamic "
				 "registration, register a client there and configure \"oauth\": "
				 "{\"clientId\": ..., \"clientSecretEnv\": ...})", status);
	} else if ((rc = oauth_parse_registration(body, len, &reg, &e)) == 0) {
		snprintf(c->client_id, sizeof(c->client_id), "%s", reg.client_id);
		snprintf(c->client_secret, sizeof(c->client_secret), "%s", reg.client_secret);
		if (reg.auth_method)
			c->auth_method = reg.auth_method;
		else if (!reg.client_secret[0])
			c->auth_method = OAUTH_AUTH_NONE;
		if (c->auth_method != OAUTH_AUTH_NONE && !c->client_secret[0])
			rc = err_set(&e, -EBADMSG, "client registration: the server asked for %s "
				     "but issued no client_secret", method_name(c->auth_method));
		memset(&reg, 0, sizeof(reg));
	}
	c->cb(c->opaque, rc, rc < 0 ? &e : NULL);
}

int oauth_client_obtain(struct oauth_client *c, struct oauth_http *h,
			const struct mcp_server_config *cfg, const struct oauth_asmeta *as,
			const char *redirect_uri, const char *scope, mcp_oauth_cb cb,
			void *opaque, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->cb = cb;
	c->opaque = opaque;
	snprintf(c->issuer, sizeof(c->issuer), "%s", as->issuer);
	if (cfg->oauth_client_id) {
		if (!oauth_header_safe(cfg->oauth_client_id) ||
		    strlen(cfg->oauth_client_id) >= sizeof(c->client_id))
			return err_set(e, -EINVAL, "\"oauth\".\"clientId\" has a space, control or "
				       "non-ASCII character");
		snprintf(c->client_id, sizeof(c->client_id), "%s", cfg->oauth_client_id);
		if (cfg->oauth_client_secret)
			snprintf(c->client_secret, sizeof(c->client_secret), "%s",
				 cfg->oauth_client_secret);
		c->auth_method = pick_method(as->auth_methods, c->client_secret[0] != 0);
		return 1;   /* nothing to wait for */
	}
	if (as->cimd && cfg->oauth_metadata_url) {
		snprintf(c->client_id, sizeof(c->client_id), "%s", cfg->oauth_metadata_url);
		c->auth_method = OAUTH_AUTH_NONE;
		return 1;
	}
	if (!as->registration_endpoint[0])
		return err_set(e, -ENOTSUP, "the authorization server %.200s offers no dynamic "
			       "client registration (hint: register a client there and configure "
			       "\"oauth\": {\"clientId\": ..., \"clientSecretEnv\": ...})",
			       as->issuer);
	/* Ask for a public client when allowed (no secret to keep), else a secret. */
	c->auth_method = as->auth_methods & OAUTH_AUTH_NONE ? OAUTH_AUTH_NONE :
		as->auth_methods & OAUTH_AUTH_BASIC ? OAUTH_AUTH_BASIC : OAUTH_AUTH_POST;
	json_t *req = json_pack("{s:s, s:[s], s:[s,s], s:[s], s:s, s:s}",
				"client_name", "IronClaw", "redirect_uris", redirect_uri,
				"grant_types", "authorization_code", "refresh_token",
				"response_types", "code",
				"token_endpoint_auth_method", method_name(c->auth_method),
				"application_type", "native");
	if (req && scope && *scope)
		json_object_set_new(req, "scope", json_string(scope));
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return err_set(e, -ENOMEM, "out of memory");
	int rc = oauth_http_fetch(h, as->registration_endpoint, body, 1, NULL, on_registered, c, e);
	free(body);
	return rc;
}

int oauth_client_auth(const struct oauth_client *c, struct buf *form, char *authz, size_t an)
{
	int rc = 0;
	authz[0] = '\0';
	if (c->auth_method == OAUTH_AUTH_BASIC) {
		/* RFC 6749 §2.3.1: both parts form-encoded, then base64. */
		struct buf raw;
		buf_init(&raw, 2048);
		rc = oauth_form_add(&raw, c->client_id, c->client_secret);
		if (rc == 0) {
			/* oauth_form_add wrote "id=secret": the separator must be ':'. */
			char *eq = memchr(raw.data, '=', raw.len);
			*eq = ':';
			if (b64_encoded_len(raw.len) + 7 > an)
				rc = -E2BIG;
			else {
				memcpy(authz, "Basic ", 6);
				b64_encode(raw.data, raw.len, authz + 6);
			}
		}
		if (raw.data)
			memset(raw.data, 0, raw.len);
		buf_free(&raw);
		return rc;
	}
	rc = oauth_form_add(form, "client_id", c->client_id);
	if (rc == 0 && c->auth_method == OAUTH_AUTH_POST)
		rc = oauth_form_add(form, "client_secret", c->client_secret);
	return rc;
}

void oauth_client_from_store(struct oauth_client *c, const struct oauth_store *s)
{
	snprintf(c->client_id, sizeof(c->client_id), "%s", s->client_id);
	snprintf(c->client_secret, sizeof(c->client_secret), "%s", s->client_secret);
	c->auth_method = s->auth_method ? s->auth_method : OAUTH_AUTH_NONE;
}

int oauth_client_post(struct oauth_http *h, const struct oauth_client *c, const char *url,
		      struct buf *form, int rc, const char *what, oauth_http_cb cb, void *opaque,
		      struct err *e)
{
	char authz[1200] = "";
	if (rc == 0)
		rc = oauth_client_auth(c, form, authz, sizeof(authz));
	if (rc == 0)
		rc = oauth_http_fetch(h, url, (const char *)form->data, 0, authz[0] ? authz : NULL,
				      cb, opaque, e);
	else
		err_set(e, rc, "cannot build the %s request", what);
	memset(authz, 0, sizeof(authz));
	if (form->data)
		memset(form->data, 0, form->len);
	buf_free(form);
	return rc;
}
