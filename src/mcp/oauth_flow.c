/* One server's OAuth state and the flows that renew it (struct mcp_oauth).
 *
 * A request that needs a token waits here (mcp_oauth_need); every request
 * waiting at once shares one flow, and each is told to send again, or why
 * not, when it ends. What a flow does depends on what we have:
 *
 * - the store not read yet: read it (thread pool), then decide again;
 * - a token other than the one the server refused: just send again;
 * - a refresh token: the refresh_token grant (on expiry, or on a 401);
 * - otherwise, or on 403 insufficient_scope (step-up, asking for the union of
 *   what we had and what is challenged): the authorization code flow with
 *   PKCE S256, a random state, RFC 8707 resource and the RFC 9207 iss check,
 *   through the user's browser and a loopback redirect. Only when the caller
 *   allows it (cfg->oauth_interactive: the CLI); an agent run fails instead
 *   with the `ironclaw mcp login` hint, never waiting on a browser.
 *
 * The browser is $IRONCLAW_BROWSER (a command; the URL is appended) when set,
 * xdg-open when there is a display, and in every case the URL is printed, so
 * a headless session can open it elsewhere. A flow that gets no redirect in
 * $IRONCLAW_OAUTH_TIMEOUT_MS (default 300000) fails. Tokens never appear in a
 * log line or an error message. */
#include "mcp/mcp.h"
#include "mcp/oauth.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

#define OAUTH_EXPIRY_SKEW_S 30
#define OAUTH_FLOW_TIMEOUT_MS 300000L
#define BROWSER_ARGS_MAX 16

enum job { JOB_NONE, JOB_LOAD, JOB_REFRESH, JOB_FULL };

struct waiter {
	mcp_oauth_cb cb;
	void *opaque;
	struct waiter *next;
};

struct mcp_oauth {
	uv_loop_t *loop;
	const struct mcp_server_config *cfg;
	char *path;
	struct oauth_store st;
	int loaded;
	enum job job;
	struct waiter *waiters;
	/* the challenge that started the job */
	long status;
	struct oauth_challenge ch;
	char sent[OAUTH_TOKEN_MAX];
	int has_sent;
	int refresh_tried;
	/* the authorization code flow */
	struct oauth_http *http;
	struct oauth_discovery disc;
	struct oauth_client client;
	struct oauth_loopback *lb;
	char redirect[64];
	char state[44], verifier[44];
	char scope[OAUTH_SCOPE_MAX];        /* asked for in this flow */
	char scope_had[OAUTH_SCOPE_MAX];    /* asked for before (step-up union) */
	uv_timer_t kick, deadline;
	uv_process_t *browser;              /* running, or NULL */
	/* a finished job's verdict, delivered from the kick timer */
	int result_rc;
	struct err result;
	int handles;                        /* timers, http, loopback, browser, file jobs */
	int closing;
	void (*done)(void *opaque);
	void *done_opaque;
};

static void job_eval(struct mcp_oauth *o);
static void flow_full(struct mcp_oauth *o);

/* ---- PKCE, state ---- */

static void b64url(const unsigned char *in, size_t n, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			(i + 2 < n ? in[i + 2] : 0);
		out[o++] = al[v >> 18 & 63];
		out[o++] = al[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = al[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = al[v & 63];
	}
	out[o] = '\0';
}

int oauth_random_b64url(char out[44])
{
	unsigned char r[32];
	if (RAND_bytes(r, sizeof(r)) != 1)
		return -EIO;
	b64url(r, sizeof(r), out);
	memset(r, 0, sizeof(r));
	return 0;
}

int oauth_pkce_challenge(const char *verifier, char out[44])
{
	unsigned char md[32];
	unsigned int ml = 0;
	if (EVP_Digest(verifier, strlen(verifier), md, &ml, EVP_sha256(), NULL) != 1 || ml != 32)
		return -EIO;
	b64url(md, 32, out);
	return 0;
}

/* ---- bookkeeping ---- */

static void oauth_maybe_free(struct mcp_oauth *o)
{
	if (!o->closing || o->handles > 0)
		return;
	void (*done)(void *) = o->done;
	void *op = o->done_opaque;
	memset(&o->st, 0, sizeof(o->st));
	memset(&o->client, 0, sizeof(o->client));
	free(o->path);
	free(o);
	if (done)
		done(op);
}

static void handle_closed(uv_handle_t *h)
{
	struct mcp_oauth *o = h->data;
	o->handles--;
	oauth_maybe_free(o);
}

static void lb_closed(void *opaque)
{
	struct mcp_oauth *o = opaque;
	o->handles--;
	oauth_maybe_free(o);
}

static void on_kick(uv_timer_t *t)
{
	struct mcp_oauth *o = t->data;
	struct waiter *w = o->waiters;
	o->waiters = NULL;
	int rc = o->result_rc;
	struct err e = o->result;
	while (w && !o->closing) {
		struct waiter *next = w->next;
		w->cb(w->opaque, rc, rc < 0 ? &e : NULL);
		free(w);
		w = next;
	}
	while (w) {
		struct waiter *next = w->next;
		free(w);
		w = next;
	}
}

/* Ends the job: every waiter hears rc on the next loop turn. */
static void job_finish(struct mcp_oauth *o, int rc, const struct err *e)
{
	o->job = JOB_NONE;
	o->result_rc = rc;
	err_clear(&o->result);
	if (rc < 0)
		o->result = *e;
	if (o->lb) {
		oauth_loopback_close(o->lb, lb_closed, o);
		o->lb = NULL;
	}
	uv_timer_stop(&o->deadline);
	memset(o->verifier, 0, sizeof(o->verifier));
	if (!o->closing)
		uv_timer_start(&o->kick, on_kick, 0, 0);
}

static int token_expired(const struct mcp_oauth *o)
{
	return o->st.expires_at > 0 && (long long)time(NULL) >= o->st.expires_at;
}

/* When to treat a token as expired: a little before the server does (clock
 * skew, the request's flight), but never so early that a short-lived token is
 * born expired and refreshed before every request. 0: no expiry given. */
static long long expiry_of(long long expires_in)
{
	if (expires_in < 0)
		return 0;
	long long skew = expires_in / 4 < OAUTH_EXPIRY_SKEW_S ? expires_in / 4 : OAUTH_EXPIRY_SKEW_S;
	return (long long)time(NULL) + expires_in - skew;
}

static const char *srv_name(const struct mcp_oauth *o)
{
	return o->cfg->name && strcmp(o->cfg->name, "url") ? o->cfg->name : "NAME";
}

static void on_saved(void *opaque, int rc, const struct err *e)
{
	struct mcp_oauth *o = opaque;
	o->handles--;
	if (rc < 0 && !o->closing)
		log_warn("mcp: server '%s': the tokens work but could not be stored: %s",
			 srv_name(o), e->msg);
	oauth_maybe_free(o);
}

static void store_save(struct mcp_oauth *o)
{
	if (!o->path)
		return;
	if (oauth_tokens_save(o->loop, o->path, &o->st, on_saved, o) == 0)
		o->handles++;
}

/* ---- refresh ---- */

static void on_refreshed(void *opaque, long status, const char *body, size_t len,
			 const struct err *he)
{
	struct mcp_oauth *o = opaque;
	struct err e = { 0 };
	struct oauth_token_response *t = calloc(1, sizeof(*t));
	int rc;
	if (!t) {
		err_set(&e, -ENOMEM, "out of memory");
		job_finish(o, e.code, &e);
		return;
	}
	if (!status) {
		rc = err_set(&e, he->code, "refreshing the token: %s", he->msg);
	} else if ((rc = oauth_parse_token_response(body, len, status, t, &e)) < 0) {
		err_wrap(&e, "refreshing the token (HTTP %ld)", status);
	} else if (t->error[0]) {
		/* invalid_grant: revoked or expired. The refresh token is worthless now. */
		int revoked = !strcmp(t->error, "invalid_grant");
		memset(o->st.refresh_token, 0, sizeof(o->st.refresh_token));
		memset(o->st.access_token, 0, sizeof(o->st.access_token));
		store_save(o);
		if (revoked && o->cfg->oauth_interactive) {
			free(t);
			flow_full(o);
			return;
		}
		rc = err_set(&e, -EACCES, "server '%s': the authorization server refused the "
			     "refresh token (%s%s%.160s%s) (hint: run `ironclaw mcp login --server %s`)",
			     srv_name(o), t->error, revoked ? ": revoked or expired" : "",
			     t->error_description[0] ? "; " : "", t->error_description, srv_name(o));
	} else {
		snprintf(o->st.access_token, sizeof(o->st.access_token), "%s", t->access_token);
		if (t->refresh_token[0])   /* rotated */
			snprintf(o->st.refresh_token, sizeof(o->st.refresh_token), "%s",
				 t->refresh_token);
		if (t->scope[0])
			snprintf(o->st.scope, sizeof(o->st.scope), "%s", t->scope);
		o->st.expires_at = expiry_of(t->expires_in);
		log_info("mcp: server '%s': access token refreshed", srv_name(o));
		store_save(o);
		rc = 0;
	}
	memset(t, 0, sizeof(*t));
	free(t);
	job_finish(o, rc, &e);
}

static void flow_refresh(struct mcp_oauth *o)
{
	struct err e = { 0 };
	struct buf form;
	struct oauth_client c = { 0 };
	o->job = JOB_REFRESH;
	o->refresh_tried = 1;
	oauth_client_from_store(&c, &o->st);
	buf_init(&form, 3 * OAUTH_TOKEN_MAX + 4096);
	int rc = oauth_form_add(&form, "grant_type", "refresh_token");
	if (rc == 0)
		rc = oauth_form_add(&form, "refresh_token", o->st.refresh_token);
	if (rc == 0 && o->st.audience[0])
		rc = oauth_form_add(&form, "resource", o->st.audience);
	rc = oauth_client_post(o->http, &c, o->st.token_endpoint, &form, rc, "refresh",
			       on_refreshed, o, &e);
	memset(&c, 0, sizeof(c));
	if (rc < 0)
		job_finish(o, rc, &e);
}

/* ---- the authorization code flow ---- */

static void flow_fail(struct mcp_oauth *o, const struct err *e)
{
	oauth_http_abort(o->http);
	job_finish(o, e->code ? e->code : -EACCES, e);
}

static void on_token(void *opaque, long status, const char *body, size_t len,
		     const struct err *he)
{
	struct mcp_oauth *o = opaque;
	struct err e = { 0 };
	struct oauth_token_response *t = calloc(1, sizeof(*t));
	int rc;
	if (!t) {
		err_set(&e, -ENOMEM, "out of memory");
		flow_fail(o, &e);
		return;
	}
	if (!status) {
		rc = err_set(&e, he->code, "the token request failed: %s", he->msg);
	} else if ((rc = oauth_parse_token_response(body, len, status, t, &e)) < 0) {
		err_wrap(&e, "the token endpoint (HTTP %ld)", status);
	} else if (t->error[0]) {
		rc = err_set(&e, -EACCES, "the authorization server refused the code: %s%s%.160s",
			     t->error, t->error_description[0] ? ": " : "", t->error_description);
	} else {
		struct oauth_store *s = &o->st;
		memset(s, 0, sizeof(*s));
		snprintf(s->resource, sizeof(s->resource), "%s", o->cfg->url);
		snprintf(s->audience, sizeof(s->audience), "%s", o->disc.resource);
		snprintf(s->issuer, sizeof(s->issuer), "%s", o->disc.as.issuer);
		snprintf(s->token_endpoint, sizeof(s->token_endpoint), "%s",
			 o->disc.as.token_endpoint);
		snprintf(s->client_id, sizeof(s->client_id), "%s", o->client.client_id);
		snprintf(s->client_secret, sizeof(s->client_secret), "%s", o->client.client_secret);
		s->auth_method = o->client.auth_method;
		snprintf(s->access_token, sizeof(s->access_token), "%s", t->access_token);
		snprintf(s->refresh_token, sizeof(s->refresh_token), "%s", t->refresh_token);
		snprintf(s->scope, sizeof(s->scope), "%s", t->scope[0] ? t->scope : o->scope);
		s->expires_at = expiry_of(t->expires_in);
		snprintf(o->scope_had, sizeof(o->scope_had), "%s", o->scope);
		log_info("mcp: server '%s': authorized by %s", srv_name(o), s->issuer);
		store_save(o);
		rc = 0;
	}
	memset(t, 0, sizeof(*t));
	free(t);
	if (rc < 0)
		flow_fail(o, &e);
	else
		job_finish(o, 0, NULL);
}

static void on_callback(void *opaque, const struct oauth_callback *cb)
{
	struct mcp_oauth *o = opaque;
	struct err e = { 0 };
	const struct oauth_asmeta *as = &o->disc.as;
	if (o->job != JOB_FULL)
		return;
	uv_timer_stop(&o->deadline);
	if (cb->error[0]) {
		err_set(&e, -EACCES, "authorization was not granted: %.60s%s%.160s", cb->error,
			cb->error_description[0] ? ": " : "", cb->error_description);
		flow_fail(o, &e);
		return;
	}
	if (strcmp(cb->state, o->state)) {
		err_set(&e, -EACCES, "the authorization response's state does not match ours "
			"(a forged or stale redirect); nothing was exchanged");
		flow_fail(o, &e);
		return;
	}
	/* RFC 9207: a present iss must be the issuer, compared as a plain string;
	 * an absent one is an error when the server promised to send it. */
	if (cb->has_iss ? strcmp(cb->iss, as->issuer) != 0 : as->iss_supported) {
		err_set(&e, -EACCES, "the authorization response %s (RFC 9207: possible mix-up "
			"attack); nothing was exchanged", cb->has_iss ?
			"names a different issuer" : "lacks the issuer the server promised");
		flow_fail(o, &e);
		return;
	}
	if (!cb->code[0]) {
		err_set(&e, -EACCES, "the authorization response has no code");
		flow_fail(o, &e);
		return;
	}
	struct buf form;
	buf_init(&form, 3 * OAUTH_TOKEN_MAX + 4096);
	int rc = oauth_form_add(&form, "grant_type", "authorization_code");
	if (rc == 0)
		rc = oauth_form_add(&form, "code", cb->code);
	if (rc == 0)
		rc = oauth_form_add(&form, "redirect_uri", o->redirect);
	if (rc == 0)
		rc = oauth_form_add(&form, "code_verifier", o->verifier);
	if (rc == 0)
		rc = oauth_form_add(&form, "resource", o->disc.resource);
	rc = oauth_client_post(o->http, &o->client, as->token_endpoint, &form, rc, "token",
			       on_token, o, &e);
	if (rc < 0)
		flow_fail(o, &e);
}

static void on_deadline(uv_timer_t *t)
{
	struct mcp_oauth *o = t->data;
	struct err e = { 0 };
	err_set(&e, -ETIMEDOUT, "no authorization arrived from the browser in time (hint: "
		"open the printed URL, or run `ironclaw mcp login --server %s` again)",
		srv_name(o));
	flow_fail(o, &e);
}

static void browser_closed(uv_handle_t *h)
{
	struct mcp_oauth *o = h->data;
	free(h);
	o->handles--;
	oauth_maybe_free(o);
}

static void on_browser_exit(uv_process_t *p, int64_t status, int sig)
{
	struct mcp_oauth *o = p->data;
	if (status || sig)
		log_debug("mcp: the browser command exited with status %lld", (long long)status);
	if (o->browser == p)
		o->browser = NULL;
	uv_close((uv_handle_t *)p, browser_closed);
}

static void browser_open(struct mcp_oauth *o, const char *url)
{
	char *argv[BROWSER_ARGS_MAX + 2];
	char cmd[1024];
	int n = 0;
	const char *b = getenv("IRONCLAW_BROWSER");
	if (b && *b) {
		snprintf(cmd, sizeof(cmd), "%s", b);
		for (char *tok = strtok(cmd, " \t"); tok && n < BROWSER_ARGS_MAX;
		     tok = strtok(NULL, " \t"))
			argv[n++] = tok;
	} else if (getenv("DISPLAY") || getenv("WAYLAND_DISPLAY")) {
		argv[n++] = "xdg-open";
	}
	if (n == 0 || o->browser)
		return;
	argv[n++] = (char *)url;
	argv[n] = NULL;
	uv_stdio_container_t io[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_IGNORE },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t po = {
		.exit_cb = on_browser_exit, .file = argv[0], .args = argv,
		.stdio_count = 3, .stdio = io,
	};
	uv_process_t *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->data = o;
	int rc = uv_spawn(o->loop, p, &po);
	o->handles++;
	if (rc < 0) {
		log_warn("mcp: cannot start the browser '%s': %s", argv[0], uv_strerror(rc));
		uv_close((uv_handle_t *)p, browser_closed);
		return;
	}
	o->browser = p;
}

static void scope_add(char *dst, size_t dn, const char *scopes)
{
	char tmp[OAUTH_SCOPE_MAX];
	snprintf(tmp, sizeof(tmp), "%s", scopes);
	for (char *t = strtok(tmp, " "); t; t = strtok(NULL, " ")) {
		size_t tl = strlen(t);
		int have = 0;
		for (const char *p = dst; (p = strstr(p, t)); p += tl)
			if ((p == dst || p[-1] == ' ') && (p[tl] == ' ' || p[tl] == '\0'))
				have = 1;
		if (!have && strlen(dst) + tl + 2 <= dn) {
			if (*dst)
				strcat(dst, " ");
			strcat(dst, t);
		}
	}
}

static void flow_authorize(struct mcp_oauth *o)
{
	struct err e = { 0 };
	char challenge[44];
	struct buf url;
	if (oauth_random_b64url(o->state) < 0 || oauth_random_b64url(o->verifier) < 0 ||
	    oauth_pkce_challenge(o->verifier, challenge) < 0) {
		err_set(&e, -EIO, "no randomness for PKCE (OpenSSL RAND_bytes failed)");
		flow_fail(o, &e);
		return;
	}
	const struct oauth_asmeta *as = &o->disc.as;
	buf_init(&url, 16384);
	struct buf q;
	buf_init(&q, 16384);
	int rc = oauth_form_add(&q, "response_type", "code");
	if (rc == 0)
		rc = oauth_form_add(&q, "client_id", o->client.client_id);
	if (rc == 0)
		rc = oauth_form_add(&q, "redirect_uri", o->redirect);
	if (rc == 0)
		rc = oauth_form_add(&q, "code_challenge", challenge);
	if (rc == 0)
		rc = oauth_form_add(&q, "code_challenge_method", "S256");
	if (rc == 0)
		rc = oauth_form_add(&q, "state", o->state);
	if (rc == 0)
		rc = oauth_form_add(&q, "resource", o->disc.resource);
	if (rc == 0 && o->scope[0])
		rc = oauth_form_add(&q, "scope", o->scope);
	if (rc == 0)
		rc = buf_printf(&url, "%s%c%s", as->authorization_endpoint,
				strchr(as->authorization_endpoint, '?') ? '&' : '?', (char *)q.data);
	buf_free(&q);
	if (rc < 0) {
		buf_free(&url);
		err_set(&e, rc, "the authorization URL is too long");
		flow_fail(o, &e);
		return;
	}
	fprintf(stderr, "ironclaw: MCP server '%s' needs your authorization. Open this URL in a "
		"browser:\n  %s\n", srv_name(o), (char *)url.data);
	browser_open(o, (char *)url.data);
	buf_free(&url);
	long ms = OAUTH_FLOW_TIMEOUT_MS;
	const char *t = getenv("IRONCLAW_OAUTH_TIMEOUT_MS");
	if (t && atol(t) > 0)
		ms = atol(t);
	uv_timer_start(&o->deadline, on_deadline, (uint64_t)ms, 0);
}

static void on_client(void *opaque, int rc, const struct err *e)
{
	struct mcp_oauth *o = opaque;
	if (rc < 0) {
		flow_fail(o, e);
		return;
	}
	flow_authorize(o);
}

static void on_discovered(void *opaque, int rc, const struct err *de)
{
	struct mcp_oauth *o = opaque;
	struct err e = { 0 };
	int port = 0;
	if (rc < 0) {
		flow_fail(o, de);
		return;
	}
	const struct oauth_asmeta *as = &o->disc.as;
	if (as->from_metadata && !as->pkce_s256) {
		err_set(&e, -ENOTSUP, "the authorization server %.200s does not support PKCE with "
			"S256; refusing to authorize without it", as->issuer);
		flow_fail(o, &e);
		return;
	}
	/* Scope: the challenge's, else what the resource lists, else none; on a
	 * step-up, together with what we asked for before. */
	o->scope[0] = '\0';
	if (o->status == 403)
		scope_add(o->scope, sizeof(o->scope), o->scope_had);
	if (o->ch.scope[0])
		scope_add(o->scope, sizeof(o->scope), o->ch.scope);
	else if (o->disc.has_prm && o->disc.prm.has_scopes)
		scope_add(o->scope, sizeof(o->scope), o->disc.prm.scopes);
	if (o->scope[0] && as->has_scopes && strstr(as->scopes, "offline_access")) {
		/* SEP-2207: ask for a refresh token where the server offers one. */
		char want[] = "offline_access";
		char tmp[OAUTH_SCOPE_MAX + 3];
		snprintf(tmp, sizeof(tmp), " %s ", as->scopes);
		if (strstr(tmp, " offline_access "))
			scope_add(o->scope, sizeof(o->scope), want);
	}
	if (oauth_loopback_start(o->loop, on_callback, o, &o->lb, &port, &e) < 0) {
		flow_fail(o, &e);
		return;
	}
	o->handles++;
	snprintf(o->redirect, sizeof(o->redirect), "http://127.0.0.1:%d/callback", port);
	rc = oauth_client_obtain(&o->client, o->http, o->cfg, as, o->redirect, o->scope,
				 on_client, o, &e);
	if (rc < 0)
		flow_fail(o, &e);
	else if (rc == 1)
		flow_authorize(o);
}

static void flow_full(struct mcp_oauth *o)
{
	struct err e = { 0 };
	o->job = JOB_FULL;
	if (!o->cfg->oauth_interactive) {
		err_set(&e, -EACCES, "server '%s' requires authorization (OAuth)%s%s (hint: run "
			"`ironclaw mcp login --server %s`)", srv_name(o),
			o->ch.scope[0] ? "; scope: " : "", o->ch.scope, srv_name(o));
		job_finish(o, e.code, &e);
		return;
	}
	if (oauth_discover(&o->disc, o->http, o->cfg->url, o->ch.resource_metadata,
			   on_discovered, o, &e) < 0)
		flow_fail(o, &e);
}

/* ---- deciding ---- */

static void on_loaded(void *opaque, int rc, const struct err *e)
{
	struct mcp_oauth *o = opaque;
	o->handles--;
	if (o->closing) {
		oauth_maybe_free(o);
		return;
	}
	o->loaded = 1;
	o->job = JOB_NONE;
	if (rc < 0 && rc != -ENOENT) {
		job_finish(o, rc, e);
		return;
	}
	/* Tokens recorded for another URL are never sent to this one. */
	if (rc == 0 && strcmp(o->st.resource, o->cfg->url)) {
		log_warn("mcp: server '%s': the stored tokens are for another URL; ignoring them",
			 srv_name(o));
		memset(&o->st, 0, sizeof(o->st));
	}
	if (o->cfg->oauth_login)
		memset(&o->st, 0, sizeof(o->st));
	job_eval(o);
}

static void job_eval(struct mcp_oauth *o)
{
	struct err e = { 0 };
	if (!o->loaded) {
		o->job = JOB_LOAD;
		if (!o->path || oauth_tokens_load(o->loop, o->path, &o->st, on_loaded, o) < 0) {
			o->loaded = 1;   /* no store: tokens live in memory only */
			o->job = JOB_NONE;
		} else {
			o->handles++;
			return;
		}
	}
	int have = o->st.access_token[0] != 0;
	int fresh = have && !token_expired(o);
	int refresh = o->st.refresh_token[0] && !o->refresh_tried && o->st.token_endpoint[0];
	if (o->status == 0) {
		if (have && !fresh && refresh)
			flow_refresh(o);
		else
			job_finish(o, 0, NULL);
		return;
	}
	if (o->status == 403) {
		if (strcmp(o->ch.error, "insufficient_scope")) {
			err_set(&e, -EACCES, "server '%s' refused the request (HTTP 403%s%s)",
				srv_name(o), o->ch.error[0] ? ": " : "", o->ch.error);
			job_finish(o, e.code, &e);
			return;
		}
		flow_full(o);
		return;
	}
	if (fresh && (!o->has_sent || strcmp(o->st.access_token, o->sent))) {
		job_finish(o, 0, NULL);   /* a newer token than the refused one */
		return;
	}
	if (refresh) {
		flow_refresh(o);
		return;
	}
	flow_full(o);
}

/* ---- API ---- */

int mcp_oauth_new(uv_loop_t *loop, const struct mcp_server_config *cfg, struct mcp_oauth **out,
		  struct err *e)
{
	struct mcp_oauth *o = calloc(1, sizeof(*o));
	if (!o)
		return err_set(e, -ENOMEM, "out of memory");
	o->loop = loop;
	o->cfg = cfg;
	o->path = oauth_tokens_path(cfg->name, cfg->url);
	int rc = oauth_http_new(loop, &o->http, e);
	if (rc < 0) {
		free(o->path);
		free(o);
		return rc;
	}
	uv_timer_init(loop, &o->kick);
	uv_timer_init(loop, &o->deadline);
	o->kick.data = o->deadline.data = o;
	o->handles = 3;   /* two timers and the http */
	*out = o;
	return 0;
}

const char *mcp_oauth_bearer(const struct mcp_oauth *o)
{
	return o->st.access_token[0] ? o->st.access_token : NULL;
}

int mcp_oauth_ready(const struct mcp_oauth *o)
{
	return o->loaded && o->job == JOB_NONE && !(o->st.access_token[0] && token_expired(o) &&
						    o->st.refresh_token[0]);
}

int mcp_oauth_need(struct mcp_oauth *o, long status, const char *www_auth, const char *sent,
		   mcp_oauth_cb cb, void *opaque, struct err *e)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return err_set(e, -ENOMEM, "out of memory");
	w->cb = cb;
	w->opaque = opaque;
	w->next = o->waiters;
	o->waiters = w;
	if (o->job != JOB_NONE)
		return 0;   /* it joins the flow under way */
	o->status = status;
	memset(&o->ch, 0, sizeof(o->ch));
	if (www_auth)
		oauth_parse_www_authenticate(www_auth, strlen(www_auth), &o->ch);
	o->has_sent = sent != NULL;
	snprintf(o->sent, sizeof(o->sent), "%s", sent ? sent : "");
	o->refresh_tried = 0;
	job_eval(o);
	return 0;
}

void mcp_oauth_forget(struct mcp_oauth *o, void *opaque)
{
	for (struct waiter **pp = &o->waiters; *pp;) {
		if ((*pp)->opaque == opaque) {
			struct waiter *w = *pp;
			*pp = w->next;
			free(w);
		} else {
			pp = &(*pp)->next;
		}
	}
}

static void http_closed(void *opaque)
{
	struct mcp_oauth *o = opaque;
	o->handles--;
	oauth_maybe_free(o);
}

void mcp_oauth_close(struct mcp_oauth *o, void (*done)(void *opaque), void *opaque)
{
	o->closing = 1;
	o->done = done;
	o->done_opaque = opaque;
	mcp_oauth_forget(o, NULL);
	while (o->waiters) {
		struct waiter *w = o->waiters;
		o->waiters = w->next;
		free(w);
	}
	if (o->lb) {
		oauth_loopback_close(o->lb, lb_closed, o);
		o->lb = NULL;
	}
	oauth_http_close(o->http, http_closed, o);
	uv_close((uv_handle_t *)&o->kick, handle_closed);
	uv_close((uv_handle_t *)&o->deadline, handle_closed);
	if (o->browser) {
		uv_close((uv_handle_t *)o->browser, browser_closed);
		o->browser = NULL;
	}
}
