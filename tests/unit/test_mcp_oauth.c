/* OAuth pieces on their own: PKCE S256 and random state (OpenSSL), and the
 * strict readers of what authorization servers and the browser send
 * (oauth_parse.c): WWW-Authenticate, resource and authorization server
 * metadata, registration and token answers, the loopback request head. */
#include <criterion/criterion.h>
#include <string.h>

#include "mcp/oauth.h"

#define S(x) x, strlen(x)

Test(mcp_oauth, pkce_s256_and_random)
{
	char c[44], a[44], b[44];
	/* Expected value from Python's hashlib + base64.urlsafe_b64encode. */
	cr_assert_eq(oauth_pkce_challenge("dBjftJeZ4CVP-mJ92K1ioY1FONSyW1tw0AGXhvPkaR6", c), 0);
	cr_assert_str_eq(c, "NIz5il35pgr1lbNF0_5l6TjeKT9BI35KoqqoDhOF7GM");
	cr_assert_eq(oauth_random_b64url(a), 0);
	cr_assert_eq(oauth_random_b64url(b), 0);
	cr_assert_eq(strlen(a), 43);
	cr_assert_str_neq(a, b);
	cr_assert_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
}

Test(mcp_oauth, www_authenticate)
{
	struct oauth_challenge ch;
	cr_assert_eq(oauth_parse_www_authenticate(S("Basic realm=\"x\", Bearer error=\"insufficient_scope\", "
		"scope=\"a b\", resource_metadata=\"https://s/.well-known/oauth-protected-resource\""), &ch), 0);
	cr_assert_str_eq(ch.error, "insufficient_scope");
	cr_assert_str_eq(ch.scope, "a b");
	cr_assert_str_eq(ch.resource_metadata, "https://s/.well-known/oauth-protected-resource");
	cr_assert_eq(oauth_parse_www_authenticate(S("bearer scope=\"q\\\"x\""), &ch), 0);
	cr_assert_str_eq(ch.scope, "q\"x");
	/* Another scheme's params are not the Bearer challenge's. */
	cr_assert_eq(oauth_parse_www_authenticate(S("Bearer, Other scope=\"evil\""), &ch), 0);
	cr_assert_str_eq(ch.scope, "");
	cr_assert_eq(oauth_parse_www_authenticate(S("Basic realm=\"x\""), &ch), -EINVAL);
	cr_assert_eq(oauth_parse_www_authenticate(S("Bearer scope=\"unterminated"), &ch), -EINVAL);
	cr_assert_eq(oauth_parse_www_authenticate(S("Bearer scope=\"a\x01\""), &ch), -EINVAL);
}

Test(mcp_oauth, protected_resource_metadata)
{
	struct oauth_prm p;
	struct err e = { 0 };
	cr_assert_eq(oauth_parse_prm(S("{\"resource\":\"https://s/mcp\",\"authorization_servers\":"
		"[\"https://as\"],\"scopes_supported\":[\"a\",\"b\"]}"), &p, &e), 0, "%s", e.msg);
	cr_assert_str_eq(p.as, "https://as");
	cr_assert_str_eq(p.scopes, "a b");
	cr_assert_lt(oauth_parse_prm(S("{\"resource\":\"https://s\",\"authorization_servers\":"
		"[\"http://evil.example\"]}"), &p, &e), 0);
	cr_assert_lt(oauth_parse_prm(S("{\"resource\":\"a\",\"resource\":\"b\","
		"\"authorization_servers\":[\"https://as\"]}"), &p, &e), 0);
	cr_assert_lt(oauth_parse_prm(S("{\"authorization_servers\":[\"https://as\"]}"), &p, &e), 0);
	cr_assert_lt(oauth_parse_prm(S("[1]"), &p, &e), 0);
}

Test(mcp_oauth, authorization_server_metadata)
{
	struct oauth_asmeta m;
	struct err e = { 0 };
	cr_assert_eq(oauth_parse_as_metadata(S("{\"issuer\":\"https://as\",\"authorization_endpoint\":"
		"\"https://as/a\",\"token_endpoint\":\"http://127.0.0.1:9/t\","
		"\"code_challenge_methods_supported\":[\"plain\",\"S256\"]}"), &m, &e), 0, "%s", e.msg);
	cr_assert(m.pkce_s256);
	cr_assert_eq(m.auth_methods, OAUTH_AUTH_BASIC, "RFC 8414's default");
	/* Plain http to a remote host could carry a code or a token in clear. */
	cr_assert_eq(oauth_parse_as_metadata(S("{\"issuer\":\"https://as\",\"authorization_endpoint\":"
		"\"https://as/a\",\"token_endpoint\":\"http://evil.example/t\"}"), &m, &e), -EPERM);
	cr_assert_lt(oauth_parse_as_metadata(S("{\"issuer\":\"https://as\"}"), &m, &e), 0);
}

Test(mcp_oauth, token_and_registration_answers)
{
	struct oauth_token_response t;
	struct oauth_registration r;
	struct err e = { 0 };
	cr_assert_eq(oauth_parse_token_response(S("{\"access_token\":\"abc\",\"token_type\":\"bearer\","
		"\"expires_in\":60,\"refresh_token\":\"r\"}"), 200, &t, &e), 0, "%s", e.msg);
	cr_assert_eq(t.expires_in, 60);
	cr_assert_str_eq(t.refresh_token, "r");
	cr_assert_lt(oauth_parse_token_response(S("{\"access_token\":\"a b\",\"token_type\":"
		"\"Bearer\"}"), 200, &t, &e), 0, "a token with a space would split the header");
	cr_assert_lt(oauth_parse_token_response(S("{\"access_token\":\"a\",\"token_type\":"
		"\"mac\"}"), 200, &t, &e), 0);
	cr_assert_eq(oauth_parse_token_response(S("{\"error\":\"invalid_grant\"}"), 400, &t, &e), 0);
	cr_assert_str_eq(t.error, "invalid_grant");
	cr_assert_eq(oauth_parse_registration(S("{\"client_id\":\"c\",\"client_secret\":\"s\","
		"\"token_endpoint_auth_method\":\"client_secret_post\"}"), &r, &e), 0, "%s", e.msg);
	cr_assert_eq(r.auth_method, OAUTH_AUTH_POST);
	cr_assert_lt(oauth_parse_registration(S("{\"client_id\":\"c\",\"token_endpoint_auth_method\":"
		"\"private_key_jwt\"}"), &r, &e), 0);
}

Test(mcp_oauth, loopback_request_head)
{
	struct oauth_callback cb;
	cr_assert_eq(oauth_parse_callback(S("GET /callback?code=a%2Bb&state=s1&iss=https%3A%2F%2Fas "
		"HTTP/1.1\r\nHost: x\r\n\r\n"), &cb), 0);
	cr_assert_str_eq(cb.path, "/callback");
	cr_assert_str_eq(cb.code, "a+b");
	cr_assert_str_eq(cb.state, "s1");
	cr_assert(cb.has_iss);
	cr_assert_str_eq(cb.iss, "https://as");
	cr_assert_eq(oauth_parse_callback(S("GET /callback?code=a"), &cb), -EAGAIN);
	cr_assert_eq(oauth_parse_callback(S("GET /callback?state=a&state=b HTTP/1.1\r\n"), &cb),
		     -EBADMSG, "a repeated parameter");
	cr_assert_eq(oauth_parse_callback(S("GET /callback?code=%0a HTTP/1.1\r\n"), &cb), -EBADMSG);
	cr_assert_eq(oauth_parse_callback(S("GET /callback?code=%4 HTTP/1.1\r\n"), &cb), -EBADMSG);
	cr_assert_eq(oauth_parse_callback(S("POST /callback HTTP/1.1\r\n"), &cb), -EBADMSG);
	char big[OAUTH_REQUEST_MAX + 1];
	memset(big, 'a', sizeof(big));
	cr_assert_eq(oauth_parse_callback(big, sizeof(big), &cb), -E2BIG);
}

Test(mcp_oauth, urls_and_forms)
{
	char o[256], p[256];
	cr_assert(oauth_url_allowed("https://as.example/x"));
	cr_assert(oauth_url_allowed("http://localhost:3000/t"));
	cr_assert(!oauth_url_allowed("http://as.example/t"));
	cr_assert(!oauth_url_allowed("file:///etc/passwd"));
	cr_assert_eq(oauth_url_split("http://localhost:80/tenant1/", o, sizeof(o), p, sizeof(p)), 0);
	cr_assert_str_eq(p, "/tenant1/");
	struct buf b;
	buf_init(&b, 256);
	cr_assert_eq(oauth_form_add(&b, "redirect_uri", "http://127.0.0.1:1/cb?a=b c"), 0);
	cr_assert_eq(oauth_form_add(&b, "k", "v"), 0);
	cr_assert_str_eq((char *)b.data, "redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb%3Fa%3Db%20c&k=v");
	buf_free(&b);
}
