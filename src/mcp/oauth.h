/* OAuth 2.1 for Streamable HTTP servers, as the MCP authorization spec
 * describes it (internal to src/mcp; http.c is the only user outside the
 * oauth_*.c files).
 *
 * A server answers 401 (or 403 insufficient_scope) with WWW-Authenticate. The
 * transport hands that challenge to the server's struct mcp_oauth, which
 * finds out who may issue a token (oauth_discovery.c: RFC 9728 protected
 * resource metadata, RFC 8414 / OpenID authorization server metadata), who we
 * are to that server (oauth_client.c: a pre-registered client, a client ID
 * metadata document, or RFC 7591 registration), gets the user's consent
 * through a browser and a loopback redirect (oauth_flow.c, oauth_loopback.c:
 * authorization code + PKCE S256, state, RFC 8707 resource, RFC 9207 iss) and
 * keeps the tokens on disk, mode 0600 (oauth_tokens.c), refreshing them when
 * they expire or are refused. Every document and answer from those servers is
 * hostile: oauth_parse.c reads them strictly, with caps, before anything is
 * used. Tokens never reach a log line or an error message.
 *
 * Everything runs on the caller's loop; file work goes to libuv's thread pool. */
#ifndef IRONCLAW_MCP_OAUTH_H
#define IRONCLAW_MCP_OAUTH_H

#include <stddef.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"

struct mcp_server_config;

#define OAUTH_DOC_MAX (64 * 1024)   /* largest metadata or token response read */
#define OAUTH_URL_MAX 1024
#define OAUTH_TOKEN_MAX 4096
#define OAUTH_SCOPE_MAX 1024
#define OAUTH_ID_MAX 512
#define OAUTH_REQUEST_MAX 8192      /* loopback redirect: request head we read */
#define OAUTH_AUTH_ATTEMPTS_MAX 3   /* authorizations per request (step-up loops) */

/* ---- the per-server object (oauth_flow.c) ---- */

struct mcp_oauth;
typedef void (*mcp_oauth_cb)(void *opaque, int rc, const struct err *e);

/* Returns 0 and *out, or -errno with e. cfg is borrowed for o's lifetime. */
int mcp_oauth_new(uv_loop_t *loop, const struct mcp_server_config *cfg, struct mcp_oauth **out,
		  struct err *e);
/* The access token to send now (borrowed until the next callback), or NULL. */
const char *mcp_oauth_bearer(const struct mcp_oauth *o);
/* 1 when a request may go out now: the store is read and the token (if any)
 * has not expired. Otherwise call mcp_oauth_need() with status 0 first. */
int mcp_oauth_ready(const struct mcp_oauth *o);
/* Gets a usable token: status 0 (read the store, refresh an expired token),
 * 401 or 403 with the response's WWW-Authenticate (NULL when none) and the
 * token the refused request carried (NULL when none). cb fires later, never
 * inside; rc 0 means: send again. Returns 0 or -errno (e filled, no cb). */
int mcp_oauth_need(struct mcp_oauth *o, long status, const char *www_auth, const char *sent,
		   mcp_oauth_cb cb, void *opaque, struct err *e);
/* Drops the pending callbacks for opaque (its request went away). */
void mcp_oauth_forget(struct mcp_oauth *o, void *opaque);
/* Aborts any flow, closes every handle, frees o, then calls done (may be NULL). */
void mcp_oauth_close(struct mcp_oauth *o, void (*done)(void *opaque), void *opaque);

/* ---- parsers (oauth_parse.c): strict, capped, no allocation kept ---- */

enum oauth_auth_method {
	OAUTH_AUTH_NONE = 1,
	OAUTH_AUTH_BASIC = 2,
	OAUTH_AUTH_POST = 4,
};

struct oauth_challenge {
	int bearer;                          /* the Bearer scheme was offered */
	char error[64];
	char scope[OAUTH_SCOPE_MAX];
	char resource_metadata[OAUTH_URL_MAX];
};

struct oauth_prm {
	char resource[OAUTH_URL_MAX];
	char as[OAUTH_URL_MAX];              /* the first authorization server */
	char scopes[OAUTH_SCOPE_MAX];        /* scopes_supported, space-joined, or "" */
	int has_scopes;
};

struct oauth_asmeta {
	char issuer[OAUTH_URL_MAX];
	char authorization_endpoint[OAUTH_URL_MAX];
	char token_endpoint[OAUTH_URL_MAX];
	char registration_endpoint[OAUTH_URL_MAX];
	char revocation_endpoint[OAUTH_URL_MAX];   /* RFC 7009, or "" */
	char scopes[OAUTH_SCOPE_MAX];        /* scopes_supported, space-joined */
	int has_scopes;
	int pkce_s256;                       /* code_challenge_methods_supported has S256 */
	int iss_supported;                   /* authorization_response_iss_parameter_supported */
	int cimd;                            /* client_id_metadata_document_supported */
	unsigned auth_methods;               /* enum oauth_auth_method bits */
	int from_metadata;                   /* 0: the 2025-03-26 default endpoints */
};

struct oauth_registration {
	char client_id[OAUTH_ID_MAX];
	char client_secret[OAUTH_ID_MAX];
	unsigned auth_method;                /* 0 when the server did not say */
};

struct oauth_token_response {
	char access_token[OAUTH_TOKEN_MAX];
	char refresh_token[OAUTH_TOKEN_MAX];
	char scope[OAUTH_SCOPE_MAX];
	long long expires_in;                /* -1 when absent */
	char error[64];                      /* an OAuth error answer: its code */
	char error_description[256];
};

struct oauth_callback {
	char path[128];
	char code[OAUTH_TOKEN_MAX];
	char state[256];
	char iss[OAUTH_URL_MAX];
	int has_iss;
	char error[64];
	char error_description[256];
};

/* WWW-Authenticate (RFC 9110 challenges; the Bearer one's auth-params).
 * Returns 0, or -EINVAL when there is no Bearer challenge. */
int oauth_parse_www_authenticate(const char *p, size_t n, struct oauth_challenge *out);
/* Each returns 0 or -errno with e saying what is wrong with the document. */
int oauth_parse_prm(const char *p, size_t n, struct oauth_prm *out, struct err *e);
int oauth_parse_as_metadata(const char *p, size_t n, struct oauth_asmeta *out, struct err *e);
int oauth_parse_registration(const char *p, size_t n, struct oauth_registration *out,
			     struct err *e);
/* status is the HTTP status: a 4xx with an OAuth error body fills out->error and
 * returns 0; a 2xx must carry a Bearer access token. */
int oauth_parse_token_response(const char *p, size_t n, long status,
			       struct oauth_token_response *out, struct err *e);
/* The loopback redirect's request head. Returns 0 (complete), -EAGAIN (need
 * more bytes), or -EBADMSG / -E2BIG. */
int oauth_parse_callback(const char *p, size_t n, struct oauth_callback *out);
/* Appends key=value to an application/x-www-form-urlencoded body (or query),
 * with '&' when b is not empty. */
int oauth_form_add(struct buf *b, const char *key, const char *value);
/* 1 when url may carry OAuth traffic: https, or http to a loopback host. */
int oauth_url_allowed(const char *url);
/* Splits url into "scheme://host[:port]" and its path ("" for "/").
 * Returns 0 or -EINVAL. */
int oauth_url_split(const char *url, char *origin, size_t on, char *path, size_t pn);
/* 1 when a token or id is safe in a header (visible ASCII, no space). */
int oauth_header_safe(const char *s);

/* ---- PKCE and state (oauth_flow.c) ---- */

/* 43 characters of base64url from 32 random bytes (OpenSSL RAND_bytes). */
int oauth_random_b64url(char out[44]);
/* The S256 challenge of a verifier: base64url(SHA-256(verifier)), 43 chars. */
int oauth_pkce_challenge(const char *verifier, char out[44]);

/* ---- token store (oauth_tokens.c) ---- */

struct oauth_store {
	char resource[OAUTH_URL_MAX];        /* the server URL the tokens belong to */
	char audience[OAUTH_URL_MAX];        /* the RFC 8707 resource they were issued for */
	char issuer[OAUTH_URL_MAX];
	char token_endpoint[OAUTH_URL_MAX];
	char client_id[OAUTH_URL_MAX];       /* a client ID metadata URL fits */
	char client_secret[OAUTH_ID_MAX];
	unsigned auth_method;
	char access_token[OAUTH_TOKEN_MAX];
	char refresh_token[OAUTH_TOKEN_MAX];
	char scope[OAUTH_SCOPE_MAX];
	long long expires_at;                /* unix seconds, 0 when unknown */
};

/* The token file of a server: $XDG_CONFIG_HOME/ironclaw/oauth/NAME.json (or
 * ~/.config/...). A name that is not [A-Za-z0-9._-] is replaced by a hash of
 * the URL. Returns owned, or NULL. */
char *oauth_tokens_path(const char *name, const char *url);
/* Blocking forms (thread pool, CLI before any loop, tests). load: -ENOENT when
 * there is none; a file another user owns, or readable by others, is refused. */
int oauth_tokens_load_file(const char *path, struct oauth_store *s, struct err *e);
/* Writes a new file (O_EXCL, mode 0600) and renames it over the old one. */
int oauth_tokens_save_file(const char *path, const struct oauth_store *s, struct err *e);
int oauth_tokens_remove(const char *path, struct err *e);
/* The same on the thread pool: cb(opaque, rc, e) on the loop. load fills *s
 * only from the callback on. */
int oauth_tokens_load(uv_loop_t *loop, const char *path, struct oauth_store *s,
		      mcp_oauth_cb cb, void *opaque);
int oauth_tokens_save(uv_loop_t *loop, const char *path, const struct oauth_store *s,
		      mcp_oauth_cb cb, void *opaque);

/* ---- HTTP for OAuth documents (oauth_http.c) ---- */

struct oauth_http;
/* status 0 when the exchange failed (e says why); body is capped and borrowed. */
typedef void (*oauth_http_cb)(void *opaque, long status, const char *body, size_t len,
			      const struct err *e);
int oauth_http_new(uv_loop_t *loop, struct oauth_http **out, struct err *e);
/* GET (form NULL) or POST of an application/x-www-form-urlencoded or JSON
 * body (json set); authz: an Authorization header value or NULL. */
int oauth_http_fetch(struct oauth_http *h, const char *url, const char *form, int json,
		     const char *authz, oauth_http_cb cb, void *opaque, struct err *e);
void oauth_http_abort(struct oauth_http *h);
void oauth_http_close(struct oauth_http *h, void (*done)(void *opaque), void *opaque);

/* ---- discovery (oauth_discovery.c) ---- */

struct oauth_discovery {
	struct oauth_prm prm;
	int has_prm;
	struct oauth_asmeta as;
	char resource[OAUTH_URL_MAX];        /* what to send as RFC 8707 resource */
	/* internal */
	struct oauth_http *http;
	char server_url[OAUTH_URL_MAX];
	char urls[4][OAUTH_URL_MAX];
	int nurls, at;
	int stage;
	mcp_oauth_cb cb;
	void *opaque;
};

/* Finds the resource and its authorization server for server_url, starting
 * from the challenge's resource_metadata (may be ""). cb once. */
int oauth_discover(struct oauth_discovery *d, struct oauth_http *h, const char *server_url,
		   const char *resource_metadata, mcp_oauth_cb cb, void *opaque, struct err *e);

/* ---- revocation (oauth_revoke.c) ---- */

/* RFC 7009: finds server_url's authorization server again (oauth_discover)
 * and, when it is the one that issued s (same issuer) and publishes a
 * revocation_endpoint, revokes the refresh token, then the access token, with
 * the stored client authentication. cb(opaque, 0) when every revocation was
 * accepted; -ENOTSUP when there is no revocation_endpoint, -EXDEV when the
 * server names another authorization server now (the tokens are not sent
 * there), other -errno when the exchange failed. Tokens never reach e. s is
 * copied. Returns <0 (cb never fires) when it cannot start. */
int oauth_revoke(uv_loop_t *loop, const char *server_url, const struct oauth_store *s,
		 mcp_oauth_cb cb, void *opaque, struct err *e);

/* ---- the client identity (oauth_client.c) ---- */

struct oauth_client {
	char client_id[OAUTH_URL_MAX];
	char client_secret[OAUTH_ID_MAX];
	unsigned auth_method;
	char issuer[OAUTH_URL_MAX];          /* the server this identity belongs to */
	/* internal */
	mcp_oauth_cb cb;
	void *opaque;
};

/* Picks or obtains a client for as: the configured one, a client ID metadata
 * document URL when as supports them, else RFC 7591 registration with
 * redirect_uri. cb once. */
int oauth_client_obtain(struct oauth_client *c, struct oauth_http *h,
			const struct mcp_server_config *cfg, const struct oauth_asmeta *as,
			const char *redirect_uri, const char *scope, mcp_oauth_cb cb,
			void *opaque, struct err *e);
/* The token endpoint authentication to use with c: fills authz (a Basic
 * header value) or adds client_id / client_secret to form. */
int oauth_client_auth(const struct oauth_client *c, struct buf *form, char *authz, size_t an);
/* The client identity stored with tokens (for a refresh or a revocation); c
 * then holds the client secret: the caller wipes it. */
void oauth_client_from_store(struct oauth_client *c, const struct oauth_store *s);
/* Sends form, a token or revocation request, to url with c's authentication,
 * then wipes and frees form (it carries a code or a token) and the Basic
 * header. rc is how building form went: when it, or the authentication,
 * failed, nothing is sent and e says "cannot build the WHAT request". Returns
 * 0 (cb fires once) or what failed. */
int oauth_client_post(struct oauth_http *h, const struct oauth_client *c, const char *url,
		      struct buf *form, int rc, const char *what, oauth_http_cb cb, void *opaque,
		      struct err *e);

/* ---- loopback redirect listener (oauth_loopback.c) ---- */

struct oauth_loopback;
/* A request for /callback arrived (borrowed for the call). */
typedef void (*oauth_loopback_cb)(void *opaque, const struct oauth_callback *cb);
/* Listens on 127.0.0.1, an ephemeral port (*port). */
int oauth_loopback_start(uv_loop_t *loop, oauth_loopback_cb cb, void *opaque,
			 struct oauth_loopback **out, int *port, struct err *e);
/* Stops listening; handles close on the loop, then done (may be NULL). */
void oauth_loopback_close(struct oauth_loopback *l, void (*done)(void *opaque), void *opaque);

#endif
