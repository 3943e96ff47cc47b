/* OAuth tokens as the user lives with them, against tests/peers/fixtures/
 * oauth-as.mjs (an authorization server in front of the SDK v2 fixture
 * server; the conformance suites cover discovery and the flow itself, not a
 * refresh token that works or one that was revoked):
 *
 * - `ironclaw mcp login` runs the browser flow ($IRONCLAW_BROWSER: curl
 *   following the redirect to our loopback listener) and stores the tokens in
 *   $XDG_CONFIG_HOME/ironclaw/oauth/NAME.json, mode 0600, in a 0700 directory;
 * - later commands use them without a browser;
 * - an expired token is refreshed before the first request, a token the
 *   server stops accepting is refreshed on its 401;
 * - a revoked refresh token is a clear error with the `mcp login` hint, and
 *   no browser is waited for when none can be answered;
 * - no token appears in any output, even at IRONCLAW_LOG=debug;
 * - `ironclaw mcp logout` removes the file. */
#include "test_mcp_util.h"

#include <sys/stat.h>

#include "core/io.h"
#include "mcp/oauth.h"

static char dir[] = "/tmp/ironclaw-oauth-XXXXXX";
static char config[600], tokens[700], base[64];
static int port;
static pid_t srv;

static void setup_oauth(void)
{
	cr_assert(mkdtemp(dir));
	snprintf(config, sizeof(config), "%s/config.json", dir);
	snprintf(tokens, sizeof(tokens), "%s/xdg/ironclaw/oauth/oa.json", dir);
	port = mt_free_port();
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	srv = mt_http_start_script("fixtures/oauth-as.mjs", port, NULL);
	char url[96];
	snprintf(url, sizeof(url), "%s/mcp", base);
	json_t *cfg = json_pack("{s:{s:{s:s}}}", "mcpServers", "oa", "url", url);
	cr_assert_eq(json_dump_file(cfg, config, 0), 0);
	json_decref(cfg);
}

static void teardown_oauth(void)
{
	mt_http_stop(srv);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(mcp_oauth, .init = setup_oauth, .fini = teardown_oauth, .timeout = 120);

/* `ironclaw mcp ARGS --config C --server oa`, stdin from /dev/null (so no
 * terminal), debug logging; browser: "curl" or NULL. */
static int run(const char *args, const char *browser, char **out, char **errout)
{
	const char *bin = getenv("IRONCLAW_BIN");
	cr_assert(bin && *bin, "IRONCLAW_BIN must name the ironclaw binary");
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "HOME='%s' XDG_CONFIG_HOME='%s/xdg' IRONCLAW_LOG=debug %s '%s' "
		 "mcp %s --config '%s' --server oa </dev/null >'%s/out' 2>'%s/err'", dir, dir,
		 !browser ? "IRONCLAW_BROWSER=" : strcmp(browser, "curl") == 0 ?
		 "IRONCLAW_BROWSER='curl -fsS -L -o /dev/null --max-redirs 1'" : browser,
		 bin, args, config, dir, dir);
	int st = system(cmd);
	char path[700];
	size_t len;
	snprintf(path, sizeof(path), "%s/out", dir);
	cr_assert_eq(io_read_file(path, 1 << 20, out, &len), 0);
	snprintf(path, sizeof(path), "%s/err", dir);
	cr_assert_eq(io_read_file(path, 1 << 20, errout, &len), 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static json_t *admin(const char *what)
{
	char cmd[1200], path[700];
	snprintf(path, sizeof(path), "%s/admin.json", dir);
	snprintf(cmd, sizeof(cmd), "curl -fsS '%s/admin/%s' >'%s'", base, what, path);
	cr_assert_eq(system(cmd), 0);
	json_t *v = json_load_file(path, 0, NULL);
	cr_assert(v);
	return v;
}

static long stat_of(const char *key)
{
	json_t *v = admin("stats");
	long n = (long)json_integer_value(json_object_get(v, key));
	json_decref(v);
	return n;
}

/* Whether text holds anything shaped like a token the fixture issues:
 * PREFIX-<generation>-<24 hex digits> (oauth-as.mjs). A bare "at-" is not
 * enough: random PKCE challenges and states in the printed URL contain it. */
static int has_token_shape(const char *text, const char *prefix)
{
	size_t pl = strlen(prefix);
	for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
		const char *q = p + pl;
		size_t digits = strspn(q, "0123456789");
		if (!digits || q[digits] != '-')
			continue;
		if (strspn(q + digits + 1, "0123456789abcdef") >= 24)
			return 1;
	}
	return 0;
}

static void assert_no_token(const char *text, const struct oauth_store *s)
{
	cr_assert_null(strstr(text, s->access_token), "the access token leaked: %s", text);
	cr_assert_null(strstr(text, s->refresh_token), "the refresh token leaked: %s", text);
	cr_assert(!has_token_shape(text, "at-"), "a token leaked: %s", text);
	cr_assert(!has_token_shape(text, "rt-"), "a token leaked: %s", text);
}

static void load(struct oauth_store *s)
{
	struct err e = { 0 };
	cr_assert_eq(oauth_tokens_load_file(tokens, s, &e), 0, "%s", e.msg);
}

static void login(struct oauth_store *s)
{
	char *out, *err;
	int rc = run("login", "curl", &out, &err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert(strstr(out, "logged in to 'oa'"), "%s\n%s", out, err);
	load(s);
	assert_no_token(out, s);
	assert_no_token(err, s);
	free(out);
	free(err);
}

Test(mcp_oauth, login_stores_tokens_mode_0600_and_they_are_used)
{
	struct oauth_store s;
	login(&s);
	struct stat st;
	cr_assert_eq(stat(tokens, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "token file mode %o", st.st_mode & 0777);
	char d[700];
	snprintf(d, sizeof(d), "%s/xdg/ironclaw/oauth", dir);
	cr_assert_eq(stat(d, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700, "token dir mode %o", st.st_mode & 0777);
	cr_assert(s.refresh_token[0] && s.access_token[0]);
	char *out, *err;
	cr_assert_eq(run("call echo message=hi", NULL, &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "hi"), "%s", out);
	assert_no_token(out, &s);
	assert_no_token(err, &s);
	free(out);
	free(err);
	cr_assert_eq(stat_of("codes"), 1);
	cr_assert_eq(stat_of("refreshes"), 0);
	/* Others may read the file: refused, with the fix. */
	cr_assert_eq(chmod(tokens, 0644), 0);
	cr_assert_eq(run("list-tools", NULL, &out, &err), 1);
	cr_assert(strstr(err, "chmod 600"), "%s", err);
	free(out);
	free(err);
	cr_assert_eq(chmod(tokens, 0600), 0);
	cr_assert_eq(run("logout", NULL, &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "removed"), "%s", out);
	cr_assert_neq(stat(tokens, &st), 0);
	free(out);
	free(err);
}

/* RFC 7009: logout revokes both tokens at the authorization server (the
 * refresh token first), then removes the file; nothing of them is printed. */
Test(mcp_oauth, logout_revokes_at_the_authorization_server)
{
	struct oauth_store s;
	login(&s);
	char *out, *err;
	cr_assert_eq(run("logout", NULL, &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "revoked the tokens of 'oa'") && strstr(out, "removed"), "%s", out);
	assert_no_token(out, &s);
	assert_no_token(err, &s);
	free(out);
	free(err);
	cr_assert_eq(stat_of("revoked_live"), 2, "both tokens were live and are revoked");
	json_t *st = admin("stats");
	cr_assert_str_eq(json_string_value(json_object_get(st, "revoke_hints")),
			 "refresh_token,access_token,");
	json_decref(st);
	struct stat sb;
	cr_assert_neq(stat(tokens, &sb), 0);
}

/* A revocation that fails, or a server without the endpoint, is a warning;
 * the tokens are forgotten locally all the same. */
Test(mcp_oauth, logout_without_revocation_still_forgets)
{
	struct oauth_store s;
	struct stat sb;
	char *out, *err;
	const char *modes[] = { "revocation?mode=fail", "revocation?mode=absent" };
	const char *says[] = { "warning: tokens not revoked", "publishes no revocation_endpoint" };
	for (int i = 0; i < 2; i++) {
		json_decref(admin(modes[i]));
		login(&s);
		cr_assert_eq(run("logout", NULL, &out, &err), 0, "%s", err);
		cr_assert(strstr(err, says[i]), "%s", err);
		if (i == 0)
			cr_assert(strstr(err, "HTTP 503"), "%s", err);
		cr_assert(strstr(out, "removed"), "%s", out);
		assert_no_token(out, &s);
		assert_no_token(err, &s);
		free(out);
		free(err);
		cr_assert_neq(stat(tokens, &sb), 0, "the file was kept");
	}
	cr_assert_eq(stat_of("revoked_live"), 0);
	cr_assert_eq(stat_of("revoke_requests"), 1, "one try in fail mode, none without endpoint");
}

Test(mcp_oauth, expired_token_refreshed_before_use)
{
	struct oauth_store s, after;
	struct err e = { 0 };
	login(&s);
	s.expires_at = 1;   /* long ago: the client must refresh before sending */
	cr_assert_eq(oauth_tokens_save_file(tokens, &s, &e), 0, "%s", e.msg);
	char *out, *err;
	long refused = stat_of("mcp_401");   /* login's first request was one */
	cr_assert_eq(run("list-tools", NULL, &out, &err), 0, "%s", err);
	cr_assert_eq(stat_of("refreshes"), 1);
	cr_assert_eq(stat_of("mcp_401"), refused, "the expired token was sent anyway");
	load(&after);
	cr_assert_str_neq(after.access_token, s.access_token);
	cr_assert(after.expires_at > 1);
	assert_no_token(err, &after);
	assert_no_token(err, &s);
	free(out);
	free(err);
}

Test(mcp_oauth, refused_token_refreshed_on_401)
{
	struct oauth_store s;
	login(&s);
	json_decref(admin("expire"));
	char *out, *err;
	cr_assert_eq(run("list-tools", NULL, &out, &err), 0, "%s", err);
	cr_assert(strstr(out, "echo"), "%s", out);
	cr_assert_eq(stat_of("refreshes"), 1);
	cr_assert_eq(stat_of("codes"), 1, "a refresh token was there; no new login needed");
	assert_no_token(err, &s);
	free(out);
	free(err);
}

Test(mcp_oauth, revoked_refresh_token_is_a_clear_error_with_login_hint)
{
	struct oauth_store s;
	login(&s);
	json_decref(admin("revoke"));
	char *out, *err;
	cr_assert_eq(run("list-tools", NULL, &out, &err), 1);
	cr_assert(strstr(err, "refused the refresh token") && strstr(err, "invalid_grant") &&
		  strstr(err, "ironclaw mcp login --server oa"), "%s", err);
	cr_assert_eq(stat_of("refused_refreshes"), 1);
	assert_no_token(err, &s);
	free(out);
	free(err);
	/* With a browser the same state just logs in again. */
	cr_assert_eq(run("list-tools", "curl", &out, &err), 0, "%s", err);
	cr_assert_eq(stat_of("codes"), 2);
	free(out);
	free(err);
}

/* A person who takes longer in the browser than the discovery probe's 5 s:
 * the probe's clock stops while its request waits for the authorization, so
 * the session still ends up on 2026-07-28 instead of falling back to the
 * legacy initialize after the login. */
Test(mcp_oauth, a_slow_login_still_discovers_the_2026_era, .timeout = 90)
{
	char script[700], browser[800];
	snprintf(script, sizeof(script), "%s/slow-browser.sh", dir);
	FILE *f = fopen(script, "w");
	cr_assert(f);
	fprintf(f, "sleep 7\nexec curl -fsS -L -o /dev/null --max-redirs 1 \"$1\"\n");
	fclose(f);
	snprintf(browser, sizeof(browser), "IRONCLAW_BROWSER='sh %s'", script);
	char *out, *err;
	int rc = run("call echo message=slow", browser, &out, &err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert(strstr(out, "slow"), "%s", out);
	cr_expect_null(strstr(err, "falling back to initialize"), "the slow login cost the 2026 era:\n%s", err);
	cr_expect_eq(stat_of("authorized_initialize"), 0, "the client fell back to a legacy initialize:\n%s", err);
	cr_assert_eq(stat_of("codes"), 1, "one login");
	struct oauth_store st;
	load(&st);
	assert_no_token(out, &st);
	assert_no_token(err, &st);
	free(out);
	free(err);
}
