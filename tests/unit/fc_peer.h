/* A Firecracker API peer for tests: a child process serving HTTP/1.1 on a
 * Unix socket the way Firecracker's API server answers (204 with no body for
 * accepted configuration, 400 with {"fault_message": ...} for refusals), one
 * request per connection (it answers with Connection: close). Each request is
 * appended to a log file as "METHOD PATH BODY\n" before it is answered, so a
 * test sees exactly what reached the peer. A script says, per request index,
 * what to do instead of a 204: refuse with a fault, reply late, die without
 * answering, or send a malformed or oversized answer. It is test code standing
 * in for the API server of a binary this machine cannot run; the contract test
 * (test_fc_contract.c) checks the requests against Firecracker's spec. */
#ifndef IRONCLAW_TESTS_FC_PEER_H
#define IRONCLAW_TESTS_FC_PEER_H

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum fc_peer_act { PEER_OK, PEER_FAULT, PEER_SLOW, PEER_DIE, PEER_HUGE, PEER_GARBAGE };

struct fc_peer_step {
	int at;                    /* request index (0-based); -1 ends the script */
	enum fc_peer_act act;
	const char *fault;         /* PEER_FAULT */
};

struct fc_peer {
	pid_t pid;
	char sock[108];
	char log[128];
};

static inline void fc_peer_send(int c, const char *head, const char *body, size_t blen)
{
	char h[512];
	int n = snprintf(h, sizeof(h), "%sContent-Length: %zu\r\nConnection: close\r\n\r\n", head, blen);
	if (write(c, h, (size_t)n) < 0 || (blen && write(c, body, blen) < 0))
		_exit(3);
}

/* As Firecracker does on an accepted /snapshot/create: writes the two files
 * it names. Their jail paths (/run/vm/...) are the VM directory's, which is
 * where the log lives. */
static inline void fc_peer_write_snapshot(const char *log, const char *body)
{
	static const char *const keys[] = { "\"snapshot_path\":\"", "\"mem_file_path\":\"" };
	for (int i = 0; i < 2; i++) {
		const char *at = strstr(body, keys[i]);
		if (!at)
			continue;
		at += strlen(keys[i]);
		size_t n = strcspn(at, "\"");
		if (n < 8 || strncmp(at, "/run/vm/", 8))
			continue;
		char host[512];
		snprintf(host, sizeof(host), "%.*s/%.*s", (int)(strrchr(log, '/') - log), log, (int)n - 8, at + 8);
		FILE *f = fopen(host, "w");
		if (f) {
			fprintf(f, "%s of the peer\n", i ? "mem" : "vmstate");
			fclose(f);
		}
	}
}

static inline void fc_peer_serve(int ls, const char *log, const struct fc_peer_step *script)
{
	for (int idx = 0;; idx++) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			_exit(2);
		char req[65536];
		size_t have = 0;
		char *end = NULL;
		int gone = 0;
		while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
			ssize_t n = read(c, req + have, sizeof(req) - 1 - have);
			if (n <= 0) {
				gone = 1;
				break;
			}
			have += (size_t)n;
		}
		if (gone) {
			/* A connection that only checked the socket exists (the backend's
			 * wait for it), or a client that gave up: not a request. */
			close(c);
			idx--;
			continue;
		}
		req[have] = '\0';
		size_t clen = 0;
		char *cl = strcasestr(req, "content-length:");
		if (cl && cl < end)
			clen = strtoul(cl + 15, NULL, 10);
		size_t body_at = (size_t)(end + 4 - req);
		while (have < body_at + clen) {
			ssize_t n = read(c, req + have, sizeof(req) - 1 - have);
			if (n <= 0)
				_exit(5);
			have += (size_t)n;
		}
		char method[16] = "", path[128] = "";
		sscanf(req, "%15s %127s", method, path);
		FILE *f = fopen(log, "a");
		fprintf(f, "%s %s %.*s\n", method, path, (int)clen, req + body_at);
		fclose(f);
		enum fc_peer_act act = PEER_OK;
		const char *fault = NULL;
		for (const struct fc_peer_step *s = script; s && s->at >= 0; s++)
			if (s->at == idx)
				act = s->act, fault = s->fault;
		char body[1024];
		static char huge[80 * 1024];
		switch (act) {
		case PEER_OK:
			if (!strcmp(path, "/snapshot/create"))
				fc_peer_write_snapshot(log, req + body_at);
			fc_peer_send(c, "HTTP/1.1 204 No Content\r\n", NULL, 0);
			break;
		case PEER_FAULT: {
			int n = snprintf(body, sizeof(body), "{\"fault_message\":\"%s\"}", fault);
			fc_peer_send(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n", body, (size_t)n);
			break;
		}
		case PEER_SLOW:
			sleep(3);
			fc_peer_send(c, "HTTP/1.1 204 No Content\r\n", NULL, 0);
			break;
		case PEER_DIE:
			_exit(0);
		case PEER_HUGE:
			memset(huge, ' ', sizeof(huge));
			huge[0] = '{';
			huge[sizeof(huge) - 1] = '}';
			fc_peer_send(c, "HTTP/1.1 400 Bad Request\r\n", huge, sizeof(huge));
			break;
		case PEER_GARBAGE:
			fc_peer_send(c, "HTTP/1.1 400 Bad Request\r\n", "<html>no</html>", 15);
			break;
		}
		close(c);
	}
}

/* Starts the peer on <dir>/<name>, logging to <dir>/requests.log. */
static inline void fc_peer_start_at(struct fc_peer *p, const char *dir, const char *name,
				    const struct fc_peer_step *script)
{
	snprintf(p->sock, sizeof(p->sock), "%s/%s", dir, name);
	snprintf(p->log, sizeof(p->log), "%s/requests.log", dir);
	unlink(p->log);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", p->sock);
	unlink(p->sock);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s: %s", p->sock, strerror(errno));
	cr_assert_eq(listen(ls, 16), 0);
	fflush(NULL);
	p->pid = fork();
	cr_assert_geq(p->pid, 0);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a failed test */
		fc_peer_serve(ls, p->log, script);
		_exit(0);
	}
	close(ls);
}

static inline void fc_peer_start(struct fc_peer *p, const char *dir, const struct fc_peer_step *script)
{
	fc_peer_start_at(p, dir, "api.sock", script);
}

static inline void fc_peer_stop(struct fc_peer *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	p->pid = 0;
	unlink(p->sock);
}

/* The peer's request log (owned, NUL-terminated; "" when none). */
static inline char *fc_peer_log(const struct fc_peer *p)
{
	FILE *f = fopen(p->log, "r");
	char *s = calloc(1, 65536);
	if (f) {
		size_t n = fread(s, 1, 65535, f);
		s[n] = '\0';
		fclose(f);
	}
	return s;
}

#endif
