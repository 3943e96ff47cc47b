/* Strict readers for what OAuth servers send us: the WWW-Authenticate
 * challenge, protected resource metadata (RFC 9728), authorization server
 * metadata (RFC 8414 / OpenID discovery), a registration answer (RFC 7591), a
 * token answer, and the loopback redirect's request head.
 *
 * All of it comes from the network and is hostile. JSON is parsed by jansson
 * with duplicate keys refused, after a size cap; every value is type-checked
 * and must fit its fixed-size field (too long is an error, never a silent
 * cut); URLs must be https, or http to a loopback host; a token must be
 * visible ASCII, since it goes back into a header. WWW-Authenticate and the
 * request line are small hand-written parsers (no library in Debian parses
 * either on its own): they take a length, never a terminator, and are fuzzed
 * (tests/fuzz/fuzz_oauth_*.c). */
#include "mcp/oauth.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- small helpers ---- */

int oauth_header_safe(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int copy_str(char *dst, size_t dn, const char *src, size_t n)
{
	if (n >= dn)
		return -E2BIG;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

static int host_is_loopback(const char *host)
{
	return !strcasecmp(host, "localhost") || !strcmp(host, "127.0.0.1") ||
		!strcmp(host, "[::1]") || !strcmp(host, "::1");
}

int oauth_url_split(const char *url, char *origin, size_t on, char *path, size_t pn)
{
	int rc = -EINVAL;
	char *scheme = NULL, *host = NULL, *port = NULL, *p = NULL;
	CURLU *u = curl_url();
	if (!u || !url || strlen(url) >= OAUTH_URL_MAX)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK)
		goto out;
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	if (strcmp(scheme, "http") && strcmp(scheme, "https"))
		goto out;
	int n = snprintf(origin, on, "%s://%s%s%s", scheme, host, port ? ":" : "",
			 port ? port : "");
	if (n < 0 || (size_t)n >= on)
		goto out;
	if (!strcmp(p, "/"))
		p[0] = '\0';
	if (strlen(p) >= pn)
		goto out;
	strcpy(path, p);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

int oauth_url_allowed(const char *url)
{
	int ok = 0;
	char *scheme = NULL, *host = NULL;
	CURLU *u = curl_url();
	if (!u || !url || !*url || strlen(url) >= OAUTH_URL_MAX)
		goto out;
	for (const char *s = url; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	ok = !strcmp(scheme, "https") || (!strcmp(scheme, "http") && host_is_loopback(host));
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

int oauth_form_add(struct buf *b, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = b->len ? buf_append(b, "&", 1) : 0;
	const char *parts[2] = { key, value };
	for (int k = 0; k < 2 && rc == 0; k++) {
		for (const unsigned char *p = (const unsigned char *)parts[k]; *p && rc == 0; p++) {
			if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
			    *p == '~') {
				rc = buf_append(b, p, 1);
			} else {
				char enc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
				rc = buf_append(b, enc, 3);
			}
		}
		if (k == 0 && rc == 0)
			rc = buf_append(b, "=", 1);
	}
	return rc;
}

/* ---- WWW-Authenticate ---- */

static int is_tchar(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* One challenge list: scheme [token68 | param *(, param)] *(, scheme ...).
 * We keep the auth-params of the Bearer challenge; a quoted-string may carry
 * backslash escapes. Unknown params are skipped, an oversized known one makes
 * the whole header invalid. */
int oauth_parse_www_authenticate(const char *p, size_t n, struct oauth_challenge *out)
{
	memset(out, 0, sizeof(*out));
	size_t i = 0;
	int in_bearer = 0, bad = 0;
	char name[64], val[OAUTH_URL_MAX];
	while (i < n && !bad) {
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		size_t s = i;
		while (i < n && is_tchar(p[i]))
			i++;
		if (i == s) {
			i++;   /* a stray byte: skip it */
			continue;
		}
		size_t tl = i - s;
		size_t j = i;
		while (j < n && (p[j] == ' ' || p[j] == '\t'))
			j++;
		if (j < n && p[j] == '=' && !(j + 1 < n && p[j + 1] == '=') && tl < sizeof(name)) {
			/* auth-param of the current challenge */
			memcpy(name, p + s, tl);
			name[tl] = '\0';
			j++;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			size_t vl = 0;
			int over = 0;
			if (j < n && p[j] == '"') {
				j++;
				while (j < n && p[j] != '"') {
					if (p[j] == '\\' && j + 1 < n)
						j++;
					if (vl < sizeof(val) - 1)
						val[vl++] = p[j];
					else
						over = 1;
					j++;
				}
				if (j >= n) {
					bad = 1;   /* unterminated quoted-string */
					break;
				}
				j++;
			} else {
				while (j < n && p[j] != ',' && p[j] != ' ' && p[j] != '\t') {
					if (vl < sizeof(val) - 1)
						val[vl++] = p[j];
					else
						over = 1;
					j++;
				}
			}
			val[vl] = '\0';
			i = j;
			if (!in_bearer)
				continue;
			char *dst = NULL;
			size_t dn = 0;
			if (!strcasecmp(name, "error")) {
				dst = out->error;
				dn = sizeof(out->error);
			} else if (!strcasecmp(name, "scope")) {
				dst = out->scope;
				dn = sizeof(out->scope);
			} else if (!strcasecmp(name, "resource_metadata")) {
				dst = out->resource_metadata;
				dn = sizeof(out->resource_metadata);
			}
			if (!dst)
				continue;
			if (over || copy_str(dst, dn, val, vl) < 0) {
				bad = 1;
				break;
			}
			for (size_t k = 0; k < vl; k++)
				if ((unsigned char)val[k] < 0x20 || (unsigned char)val[k] >= 0x7f)
					bad = 1;
		} else {
			/* a new challenge's scheme (or a token68, which Bearer never uses) */
			in_bearer = tl == 6 && !strncasecmp(p + s, "Bearer", 6);
			if (in_bearer)
				out->bearer = 1;
			while (i < n && p[i] == '=')
				i++;
		}
	}
	if (bad) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	return out->bearer ? 0 : -EINVAL;
}

/* ---- JSON documents ---- */

static json_t *doc_parse(const char *p, size_t n, const char *what, struct err *e)
{
	json_error_t je;
	if (n > OAUTH_DOC_MAX) {
		err_set(e, -E2BIG, "%s is larger than %d bytes", what, OAUTH_DOC_MAX);
		return NULL;
	}
	json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (!v) {
		err_set(e, -EBADMSG, "%s is not JSON (column %d: %s)", what, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		err_set(e, -EBADMSG, "%s is not a JSON object", what);
		return NULL;
	}
	return v;
}

/* Optional string member into a fixed field; must_url: https or loopback http. */
static int get_str(json_t *o, const char *key, char *dst, size_t dn, int must_url,
		   const char *what, struct err *e)
{
	json_t *v = json_object_get(o, key);
	dst[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return err_set(e, -EBADMSG, "%s: \"%s\" is not a string", what, key);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (strlen(s) != n)
		return err_set(e, -EBADMSG, "%s: \"%s\" contains a NUL byte", what, key);
	if (copy_str(dst, dn, s, n) < 0)
		return err_set(e, -E2BIG, "%s: \"%s\" is longer than %zu bytes", what, key, dn - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return err_set(e, -EBADMSG, "%s: \"%s\" contains a control character",
				       what, key);
	if (must_url && n && !oauth_url_allowed(s))
		return err_set(e, -EPERM, "%s: \"%s\" is not an https URL (plain http is "
			       "allowed only to a loopback address)", what, key);
	return 0;
}

/* An array of strings joined with spaces (scopes); each must be a scope token. */
static int get_scopes(json_t *o, const char *key, char *dst, size_t dn, int *has,
		      const char *what, struct err *e)
{
	json_t *a = json_object_get(o, key);
	dst[0] = '\0';
	*has = 0;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return err_set(e, -EBADMSG, "%s: \"%s\" is not an array", what, key);
	size_t i, len = 0;
	json_t *s;
	*has = 1;
	json_array_foreach(a, i, s) {
		if (!json_is_string(s) || !oauth_header_safe(json_string_value(s)) ||
		    strchr(json_string_value(s), '"') || strchr(json_string_value(s), '\\'))
			return err_set(e, -EBADMSG, "%s: \"%s\"[%zu] is not a scope token", what,
				       key, i);
		size_t l = strlen(json_string_value(s));
		if (len + l + 2 > dn)
			return err_set(e, -E2BIG, "%s: \"%s\" is longer than %zu bytes", what,
				       key, dn - 1);
		if (len)
			dst[len++] = ' ';
		memcpy(dst + len, json_string_value(s), l);
		len += l;
		dst[len] = '\0';
	}
	return 0;
}

static int has_string(json_t *a, const char *want)
{
	size_t i;
	json_t *s;
	json_array_foreach(a, i, s)
		if (json_is_string(s) && !strcmp(json_string_value(s), want))
			return 1;
	return 0;
}

int oauth_parse_prm(const char *p, size_t n, struct oauth_prm *out, struct err *e)
{
	static const char what[] = "protected resource metadata";
	memset(out, 0, sizeof(*out));
	json_t *v = doc_parse(p, n, what, e);
	int rc = -EBADMSG;
	if (!v)
		return e->code;
	if ((rc = get_str(v, "resource", out->resource, sizeof(out->resource), 0, what, e)) < 0)
		goto out;
	if (!out->resource[0]) {
		rc = err_set(e, -EBADMSG, "%s has no \"resource\"", what);
		goto out;
	}
	json_t *as = json_object_get(v, "authorization_servers");
	if (!json_is_array(as) || json_array_size(as) == 0 ||
	    !json_is_string(json_array_get(as, 0))) {
		rc = err_set(e, -EBADMSG, "%s lists no \"authorization_servers\"", what);
		goto out;
	}
	const char *first = json_string_value(json_array_get(as, 0));
	if (copy_str(out->as, sizeof(out->as), first, strlen(first)) < 0 ||
	    !oauth_url_allowed(first)) {
		rc = err_set(e, -EPERM, "%s: the authorization server is not an https URL", what);
		goto out;
	}
	rc = get_scopes(v, "scopes_supported", out->scopes, sizeof(out->scopes),
			&out->has_scopes, what, e);
out:
	json_decref(v);
	return rc;
}

int oauth_parse_as_metadata(const char *p, size_t n, struct oauth_asmeta *out, struct err *e)
{
	static const char what[] = "authorization server metadata";
	memset(out, 0, sizeof(*out));
	json_t *v = doc_parse(p, n, what, e);
	int rc;
	if (!v)
		return e->code;
	if ((rc = get_str(v, "issuer", out->issuer, sizeof(out->issuer), 0, what, e)) < 0 ||
	    (rc = get_str(v, "authorization_endpoint", out->authorization_endpoint,
			  sizeof(out->authorization_endpoint), 1, what, e)) < 0 ||
	    (rc = get_str(v, "token_endpoint", out->token_endpoint,
			  sizeof(out->token_endpoint), 1, what, e)) < 0 ||
	    (rc = get_str(v, "registration_endpoint", out->registration_endpoint,
			  sizeof(out->registration_endpoint), 1, what, e)) < 0 ||
	    (rc = get_str(v, "revocation_endpoint", out->revocation_endpoint,
			  sizeof(out->revocation_endpoint), 1, what, e)) < 0 ||
	    (rc = get_scopes(v, "scopes_supported", out->scopes, sizeof(out->scopes),
			     &out->has_scopes, what, e)) < 0)
		goto out;
	if (!out->issuer[0] || !out->authorization_endpoint[0] || !out->token_endpoint[0]) {
		rc = err_set(e, -EBADMSG, "%s lacks \"issuer\", \"authorization_endpoint\" or "
			     "\"token_endpoint\"", what);
		goto out;
	}
	json_t *m = json_object_get(v, "code_challenge_methods_supported");
	out->pkce_s256 = json_is_array(m) && has_string(m, "S256");
	out->iss_supported = json_is_true(json_object_get(v,
		"authorization_response_iss_parameter_supported"));
	out->cimd = json_is_true(json_object_get(v, "client_id_metadata_document_supported"));
	json_t *am = json_object_get(v, "token_endpoint_auth_methods_supported");
	if (json_is_array(am)) {
		out->auth_methods = (has_string(am, "none") ? OAUTH_AUTH_NONE : 0) |
			(has_string(am, "client_secret_basic") ? OAUTH_AUTH_BASIC : 0) |
			(has_string(am, "client_secret_post") ? OAUTH_AUTH_POST : 0);
	} else {
		out->auth_methods = OAUTH_AUTH_BASIC;   /* RFC 8414's default */
	}
	out->from_metadata = 1;
	rc = 0;
out:
	json_decref(v);
	return rc;
}

static unsigned method_of(const char *s)
{
	return !strcmp(s, "none") ? OAUTH_AUTH_NONE : !strcmp(s, "client_secret_basic") ?
		OAUTH_AUTH_BASIC : !strcmp(s, "client_secret_post") ? OAUTH_AUTH_POST : 0;
}

int oauth_parse_registration(const char *p, size_t n, struct oauth_registration *out,
			     struct err *e)
{
	static const char what[] = "client registration response";
	char m[64];
	memset(out, 0, sizeof(*out));
	json_t *v = doc_parse(p, n, what, e);
	int rc;
	if (!v)
		return e->code;
	if ((rc = get_str(v, "client_id", out->client_id, sizeof(out->client_id), 0, what,
			  e)) < 0 ||
	    (rc = get_str(v, "client_secret", out->client_secret, sizeof(out->client_secret),
			  0, what, e)) < 0 ||
	    (rc = get_str(v, "token_endpoint_auth_method", m, sizeof(m), 0, what, e)) < 0)
		goto out;
	if (!oauth_header_safe(out->client_id) ||
	    (out->client_secret[0] && !oauth_header_safe(out->client_secret))) {
		rc = err_set(e, -EBADMSG, "%s: missing, or unusable, \"client_id\" or "
			     "\"client_secret\"", what);
		goto out;
	}
	out->auth_method = m[0] ? method_of(m) : 0;
	if (m[0] && !out->auth_method) {
		rc = err_set(e, -ENOTSUP, "%s: token endpoint authentication '%s' is not "
			     "supported (none, client_secret_basic, client_secret_post are)",
			     what, m);
		goto out;
	}
	rc = 0;
out:
	json_decref(v);
	return rc;
}

int oauth_parse_token_response(const char *p, size_t n, long status,
			       struct oauth_token_response *out, struct err *e)
{
	static const char what[] = "token response";
	char type[32];
	memset(out, 0, sizeof(*out));
	out->expires_in = -1;
	json_t *v = doc_parse(p, n, what, e);
	int rc;
	if (!v)
		return e->code;
	if (status < 200 || status >= 300) {
		if ((rc = get_str(v, "error", out->error, sizeof(out->error), 0, what, e)) < 0)
			goto out;
		get_str(v, "error_description", out->error_description,
			sizeof(out->error_description), 0, what, e);
		err_clear(e);
		rc = out->error[0] && oauth_header_safe(out->error) ? 0 :
			err_set(e, -EBADMSG, "HTTP %ld without an OAuth error", status);
		goto out;
	}
	if ((rc = get_str(v, "access_token", out->access_token, sizeof(out->access_token), 0,
			  what, e)) < 0 ||
	    (rc = get_str(v, "refresh_token", out->refresh_token,
			  sizeof(out->refresh_token), 0, what, e)) < 0 ||
	    (rc = get_str(v, "token_type", type, sizeof(type), 0, what, e)) < 0 ||
	    (rc = get_str(v, "scope", out->scope, sizeof(out->scope), 0, what, e)) < 0)
		goto out;
	if (!oauth_header_safe(out->access_token) ||
	    (out->refresh_token[0] && !oauth_header_safe(out->refresh_token))) {
		rc = err_set(e, -EBADMSG, "%s: missing or unusable \"access_token\" (it must be "
			     "visible ASCII)", what);
		goto out;
	}
	if (strcasecmp(type, "Bearer")) {
		rc = err_set(e, -ENOTSUP, "%s: token_type '%.20s' is not Bearer", what, type);
		goto out;
	}
	json_t *ex = json_object_get(v, "expires_in");
	if (ex && !json_is_null(ex)) {
		if (!json_is_integer(ex) || json_integer_value(ex) < 0 ||
		    json_integer_value(ex) > 10LL * 365 * 86400) {
			rc = err_set(e, -EBADMSG, "%s: \"expires_in\" is not a number of seconds",
				     what);
			goto out;
		}
		out->expires_in = json_integer_value(ex);
	}
	rc = 0;
out:
	json_decref(v);
	if (rc < 0)
		memset(out->access_token, 0, sizeof(out->access_token));
	return rc;
}

/* ---- the loopback redirect ---- */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes (and '+' as space) into dst; refuses NUL and control bytes. */
static int form_decode(const char *s, size_t n, char *dst, size_t dn)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= n)
				return -EBADMSG;
			int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return -EBADMSG;
			c = h * 16 + l;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return -EBADMSG;
		if (o + 1 >= dn)
			return -E2BIG;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

int oauth_parse_callback(const char *p, size_t n, struct oauth_callback *out)
{
	memset(out, 0, sizeof(*out));
	if (n > OAUTH_REQUEST_MAX)
		return -E2BIG;
	const char *eol = memchr(p, '\n', n);
	if (!eol)
		return n >= OAUTH_REQUEST_MAX ? -E2BIG : -EAGAIN;
	size_t ll = (size_t)(eol - p);
	if (ll > 0 && p[ll - 1] == '\r')
		ll--;
	if (ll < 14 || memcmp(p, "GET ", 4))
		return -EBADMSG;
	const char *target = p + 4;
	const char *sp = memchr(target, ' ', ll - 4);
	if (!sp || (size_t)(p + ll - sp) != 9 || memcmp(sp, " HTTP/1.", 8) ||
	    (sp[8] != '0' && sp[8] != '1'))
		return -EBADMSG;
	size_t tl = (size_t)(sp - target);
	const char *q = memchr(target, '?', tl);
	size_t pl = q ? (size_t)(q - target) : tl;
	if (pl == 0 || target[0] != '/' || copy_str(out->path, sizeof(out->path), target, pl) < 0)
		return -EBADMSG;
	for (size_t i = 0; i < pl; i++)
		if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
			return -EBADMSG;
	const char *s = q ? q + 1 : NULL, *end = target + tl;
	while (s && s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(s, '=', (size_t)(pe - s));
		if (eq) {
			size_t kl = (size_t)(eq - s);
			char *dst = NULL;
			size_t dn = 0;
			int *flag = NULL;
			if (kl == 4 && !memcmp(s, "code", 4)) {
				dst = out->code;
				dn = sizeof(out->code);
			} else if (kl == 5 && !memcmp(s, "state", 5)) {
				dst = out->state;
				dn = sizeof(out->state);
			} else if (kl == 3 && !memcmp(s, "iss", 3)) {
				dst = out->iss;
				dn = sizeof(out->iss);
				flag = &out->has_iss;
			} else if (kl == 5 && !memcmp(s, "error", 5)) {
				dst = out->error;
				dn = sizeof(out->error);
			} else if (kl == 17 && !memcmp(s, "error_description", 17)) {
				dst = out->error_description;
				dn = sizeof(out->error_description);
			}
			if (dst) {
				/* A parameter given twice is an attack, not a typo (RFC 6749 §3.1). */
				if (dst[0] || (flag && *flag))
					return -EBADMSG;
				int rc = form_decode(eq + 1, (size_t)(pe - eq - 1), dst, dn);
				if (rc < 0)
					return rc;
				if (flag)
					*flag = 1;
			}
		}
		s = amp ? amp + 1 : NULL;
	}
	return 0;
}
