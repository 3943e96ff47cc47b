/* libmicrohttpd driven from the one libuv loop.
 *
 * MHD runs with MHD_USE_EPOLL and no thread of its own: it keeps its sockets
 * in one epoll set, whose fd we watch with a uv_poll_t, and tells us its next
 * deadline (MHD_get_timeout), which a uv_timer_t keeps. Either wakes MHD_run,
 * which never blocks. Work MHD cannot show on an fd (a connection we resumed)
 * gets a zero-delay run through the same timer (serve_http_kick). Requests
 * that wait on a VM suspend their connection (MHD_ALLOW_SUSPEND_RESUME). The
 * listening socket is ours (sock.c); MHD only accepts on it. */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "serve/internal.h"

static void http_arm(struct serve *s);

static void http_run(struct serve *s)
{
	if (!s->mhd)
		return;
	MHD_run(s->mhd);
	http_arm(s);
}

static void http_on_timer(uv_timer_t *t)
{
	http_run(t->data);
}

static void http_on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	http_run(p->data);
}

static void http_arm(struct serve *s)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	if (!s->mhd)
		return;
	if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
		uv_timer_start(&s->mhd_timer, http_on_timer, ms, 0);
	else
		uv_timer_stop(&s->mhd_timer);
}

void serve_http_kick(struct serve *s)
{
	if (s->mhd)
		uv_timer_start(&s->mhd_timer, http_on_timer, 0, 0);
}

static void http_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	log_debug("serve: libmicrohttpd: %s", line);
}

int serve_http_start(struct serve *s, int listen_fd, struct err *e)
{
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0,
				  NULL, NULL, serve_api_access, s,
				  MHD_OPTION_LISTEN_SOCKET, listen_fd,
				  MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
				  /* headers and the request line live in this much */
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_HEADER_MEMORY,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_CONNECTIONS_MAX,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				  MHD_OPTION_NOTIFY_COMPLETED, serve_api_completed, s,
				  MHD_OPTION_END);
	if (!s->mhd)
		return err_set(e, -EIO, "libmicrohttpd would not start on the socket (see "
			       "IRONCLAW_LOG=debug)");
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || di->epoll_fd < 0) {
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
		return err_set(e, -EIO, "libmicrohttpd has no epoll fd (it must be built with epoll)");
	}
	uv_poll_init(s->loop, &s->mhd_poll, di->epoll_fd);
	uv_timer_init(s->loop, &s->mhd_timer);
	s->mhd_poll.data = s->mhd_timer.data = s;
	uv_poll_start(&s->mhd_poll, UV_READABLE, http_on_poll);
	http_arm(s);
	return 0;
}

void serve_http_stop(struct serve *s)
{
	if (!s->mhd)
		return;
	uv_poll_stop(&s->mhd_poll);
	uv_close((uv_handle_t *)&s->mhd_poll, NULL);
	uv_close((uv_handle_t *)&s->mhd_timer, NULL);
	/* Completes every connection (NOTIFY_COMPLETED runs for each). Suspended
	 * ones must be resumed first or MHD refuses to stop them. */
	MHD_quiesce_daemon(s->mhd);
	struct MHD_Daemon *d = s->mhd;
	s->mhd = NULL;
	MHD_stop_daemon(d);
}
