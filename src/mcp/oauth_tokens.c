/* The per-server token file: $XDG_CONFIG_HOME/ironclaw/oauth/NAME.json (else
 * ~/.config/ironclaw/oauth/NAME.json), in a directory of mode 0700.
 *
 * It holds secrets, so it is written the way nobody else can ever read it: a
 * new file created with O_EXCL and O_NOFOLLOW at mode 0600 (never a chmod
 * after the fact, never through a planted link), fsynced, then renamed over
 * the old one, so a crash leaves either the old tokens or the new ones. On
 * reading, a file that is not ours or that others may read is refused with
 * the fix. The file also records which server URL and issuer the tokens are
 * for, so a config entry pointed somewhere else never sends them there.
 *
 * The loop never waits for the disk: oauth_tokens_load/save run the blocking
 * forms on libuv's thread pool and complete on the loop. */
#include "mcp/oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dirs.h"

#define TOKENS_FILE_MAX (64 * 1024)

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 64 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static char *oauth_dir(void)
{
	const char *x = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *d = NULL;
	if (x && *x == '/') {
		if (asprintf(&d, "%s/ironclaw/oauth", x) < 0)
			d = NULL;
	} else if (home && *home == '/') {
		if (asprintf(&d, "%s/.config/ironclaw/oauth", home) < 0)
			d = NULL;
	}
	return d;
}

char *oauth_tokens_path(const char *name, const char *url)
{
	char *dir = oauth_dir(), *p = NULL;
	if (!dir)
		return NULL;
	char file[80];
	if (name_ok(name) && strcmp(name, "url")) {
		snprintf(file, sizeof(file), "%s", name);
	} else {
		/* `--url` has no name of its own: the URL's hash stands in. */
		unsigned char md[32];
		unsigned int ml = 0;
		EVP_Digest(url, strlen(url), md, &ml, EVP_sha256(), NULL);
		snprintf(file, sizeof(file), "url-");
		for (int i = 0; i < 12; i++)
			snprintf(file + 4 + 2 * i, 3, "%02x", md[i]);
	}
	if (asprintf(&p, "%s/%s.json", dir, file) < 0)
		p = NULL;
	free(dir);
	return p;
}

static int mkdirs_private(const char *path, struct err *e)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	char *slash = strrchr(tmp, '/');
	if (!slash)
		return err_set(e, -EINVAL, "bad token path");
	slash[1] = '\0';   /* the trailing '/' makes the token directory itself too */
	int rc = dirs_make_prefixes(tmp, 0700);
	if (rc < 0)
		return err_set(e, rc, "cannot create %s: %s", tmp, strerror(-rc));
	*slash = '\0';
	struct stat st;
	if (lstat(tmp, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return err_set(e, -EPERM, "%s is not a directory of ours", tmp);
	if (st.st_mode & 077)
		chmod(tmp, 0700);
	return 0;
}

static void put(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

int oauth_tokens_save_file(const char *path, const struct oauth_store *s, struct err *e)
{
	int rc = mkdirs_private(path, e);
	if (rc < 0)
		return rc;
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(1));
	put(o, "resource", s->resource);
	put(o, "audience", s->audience);
	put(o, "issuer", s->issuer);
	put(o, "token_endpoint", s->token_endpoint);
	put(o, "client_id", s->client_id);
	put(o, "client_secret", s->client_secret);
	json_object_set_new(o, "auth_method", json_integer(s->auth_method));
	put(o, "access_token", s->access_token);
	put(o, "refresh_token", s->refresh_token);
	put(o, "scope", s->scope);
	json_object_set_new(o, "expires_at", json_integer(s->expires_at));
	char *text = json_dumps(o, JSON_INDENT(1));
	json_decref(o);
	if (!text)
		return err_set(e, -ENOMEM, "out of memory");
	char tmp[4200];
	unsigned char rnd[6];
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), "%s.%d.%02x%02x%02x%02x%02x%02x.tmp", path, (int)getpid(),
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	size_t n = strlen(text);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = err_set(e, -errno, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = err_set(e, -EIO, "cannot write %s: %s", tmp, strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = err_set(e, -errno, "cannot sync %s: %s", tmp, strerror(errno));
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = err_set(e, -errno, "cannot rename %s: %s", tmp, strerror(errno));
	if (rc < 0)
		unlink(tmp);
out:
	memset(text, 0, n);
	free(text);
	return rc;
}

static void get(json_t *o, const char *k, char *dst, size_t dn)
{
	const char *v = json_string_value(json_object_get(o, k));
	dst[0] = '\0';
	if (v && strlen(v) < dn)
		strcpy(dst, v);
}

int oauth_tokens_load_file(const char *path, struct oauth_store *s, struct err *e)
{
	memset(s, 0, sizeof(*s));
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT :
			err_set(e, -errno, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	int rc = 0;
	char *text = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = err_set(e, -EINVAL, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		rc = err_set(e, -EPERM, "%s holds OAuth tokens but %s; refusing it (hint: chmod "
			     "600 %s, or remove it and run `ironclaw mcp login`)", path,
			     st.st_uid != geteuid() ? "belongs to another user" :
			     "others may read it", path);
		goto out;
	}
	if (st.st_size > TOKENS_FILE_MAX) {
		rc = err_set(e, -E2BIG, "%s is larger than %d bytes", path, TOKENS_FILE_MAX);
		goto out;
	}
	text = calloc(1, (size_t)st.st_size + 1);
	ssize_t got = text ? read(fd, text, (size_t)st.st_size) : -1;
	if (got != st.st_size) {
		rc = err_set(e, -EIO, "cannot read %s", path);
		goto out;
	}
	json_error_t je;
	json_t *o = json_loadb(text, (size_t)got, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o) || json_integer_value(json_object_get(o, "version")) != 1) {
		json_decref(o);
		rc = err_set(e, -EBADMSG, "%s is not an IronClaw token file (hint: remove it and "
			     "run `ironclaw mcp login`)", path);
		goto out;
	}
	get(o, "resource", s->resource, sizeof(s->resource));
	get(o, "audience", s->audience, sizeof(s->audience));
	get(o, "issuer", s->issuer, sizeof(s->issuer));
	get(o, "token_endpoint", s->token_endpoint, sizeof(s->token_endpoint));
	get(o, "client_id", s->client_id, sizeof(s->client_id));
	get(o, "client_secret", s->client_secret, sizeof(s->client_secret));
	get(o, "access_token", s->access_token, sizeof(s->access_token));
	get(o, "refresh_token", s->refresh_token, sizeof(s->refresh_token));
	get(o, "scope", s->scope, sizeof(s->scope));
	s->auth_method = (unsigned)json_integer_value(json_object_get(o, "auth_method"));
	s->expires_at = json_integer_value(json_object_get(o, "expires_at"));
	if ((s->access_token[0] && !oauth_header_safe(s->access_token)) ||
	    (s->refresh_token[0] && !oauth_header_safe(s->refresh_token)))
		rc = err_set(e, -EBADMSG, "%s holds a malformed token", path);
	json_decref(o);
out:
	if (text) {
		memset(text, 0, (size_t)st.st_size);
		free(text);
	}
	close(fd);
	if (rc < 0)
		memset(s, 0, sizeof(*s));
	return rc;
}

int oauth_tokens_remove(const char *path, struct err *e)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(e, -errno, "cannot remove %s: %s", path, strerror(errno));
	return 0;
}

/* ---- on the thread pool ---- */

struct tokens_job {
	uv_work_t w;
	char *path;
	int save;
	struct oauth_store copy;     /* save: what to write; load: what was read */
	struct oauth_store *into;
	int rc;
	struct err e;
	mcp_oauth_cb cb;
	void *opaque;
};

static void job_work(uv_work_t *w)
{
	struct tokens_job *j = w->data;
	j->rc = j->save ? oauth_tokens_save_file(j->path, &j->copy, &j->e) :
		oauth_tokens_load_file(j->path, &j->copy, &j->e);
}

static void job_done(uv_work_t *w, int status)
{
	struct tokens_job *j = w->data;
	if (status < 0 && j->rc == 0)
		j->rc = err_set(&j->e, status, "token file job cancelled");
	if (!j->save && j->rc == 0)
		*j->into = j->copy;
	j->cb(j->opaque, j->rc, j->rc < 0 ? &j->e : NULL);
	memset(&j->copy, 0, sizeof(j->copy));
	free(j->path);
	free(j);
}

static int job_start(uv_loop_t *loop, const char *path, int save, const struct oauth_store *s,
		     struct oauth_store *into, mcp_oauth_cb cb, void *opaque)
{
	struct tokens_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		free(j);
		return -ENOMEM;
	}
	j->w.data = j;
	j->save = save;
	if (s)
		j->copy = *s;
	j->into = into;
	j->cb = cb;
	j->opaque = opaque;
	int rc = uv_queue_work(loop, &j->w, job_work, job_done);
	if (rc < 0) {
		free(j->path);
		free(j);
	}
	return rc;
}

int oauth_tokens_load(uv_loop_t *loop, const char *path, struct oauth_store *s,
		      mcp_oauth_cb cb, void *opaque)
{
	return job_start(loop, path, 0, NULL, s, cb, opaque);
}

int oauth_tokens_save(uv_loop_t *loop, const char *path, const struct oauth_store *s,
		      mcp_oauth_cb cb, void *opaque)
{
	return job_start(loop, path, 1, s, NULL, cb, opaque);
}
