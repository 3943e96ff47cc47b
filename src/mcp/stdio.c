/* stdio transport: the server is a child process that speaks newline-delimited
 * JSON on its stdin/stdout (or, for MCP_FD, a peer on a stream the caller
 * already holds: same framing, no process).
 *
 * It is spawned directly (execvp through libuv, never a shell), so arguments
 * are never re-parsed. Pipes are binary: bytes are written as they are, which
 * is what an earlier text-mode pipe got wrong. The server's stderr is a third
 * pipe that we drain into a log file (capped, so a flooding server can neither
 * block on a full pipe nor fill the disk), and it is never mixed into the
 * protocol. The server inherits only a short list of our variables (PATH,
 * HOME, ...) plus its configured "env": our secrets are not its business.
 *
 * Everything runs on the caller's loop and nothing waits: the exit status
 * comes from libuv's exit callback, and shutdown follows the MCP stdio rules
 * with timers: close stdin, grace timer, SIGTERM, timer, SIGKILL, then the exit
 * callback, then every handle is closed and the close callback fires. */
#include "mcp/mcp.h"
#include "mcp/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define STDIO_READ_CHUNK (64u << 10)
#define STDIO_STDERR_LOG_MAX (16u << 20)
#define STDIO_ENV_MAX 4096
#define STDIO_WAIT_EXIT_MS 2000
#define STDIO_WAIT_TERM_MS 2000
#define STDIO_EOF_GRACE_MS 300

enum stdio_phase { PH_RUNNING, PH_STDIN_CLOSED, PH_TERMED, PH_KILLED };

struct stdio_tp {
	struct mcp_transport t;       /* first: the generic view */
	int is_fd;                    /* MCP_FD: `in` is the one duplex stream, no process */
	uv_process_t proc;
	uv_pipe_t in, out, err;
	uv_timer_t timer;
	int open_handles;
	struct mcp_lines lines;
	int log_fd;
	size_t log_written;
	int exited;
	int64_t exit_status;
	int term_signal;
	int failed_reported;
	int closing;
	enum stdio_phase phase;
	void (*close_done)(void *opaque);
	void *close_opaque;
	char name[64];
	char rdbuf[STDIO_READ_CHUNK];
	char errbuf[STDIO_READ_CHUNK];
};

struct stdio_write {
	uv_write_t req;
	char *data;
};

static struct stdio_tp *tp_of(struct mcp_transport *t)
{
	return (struct stdio_tp *)t;
}

static uv_stream_t *stdio_reader(struct stdio_tp *s)
{
	return (uv_stream_t *)(s->is_fd ? &s->in : &s->out);
}

static void stdio_fail(struct stdio_tp *s, struct err *e)
{
	if (s->failed_reported || s->closing)
		return;
	s->failed_reported = 1;
	s->t.ev.on_failure(s->t.ev.opaque, NULL, e);
}

static void stdio_report_gone(struct stdio_tp *s)
{
	struct err e = { 0 };
	if (s->exited && s->term_signal)
		err_set(&e, -EPIPE, "server '%s' was killed by signal %d", s->name, s->term_signal);
	else if (s->exited)
		err_set(&e, -EPIPE, "server '%s' exited with status %lld", s->name,
			(long long)s->exit_status);
	else if (s->is_fd)
		err_set(&e, -EPIPE, "server '%s' closed the connection", s->name);
	else
		err_set(&e, -EPIPE, "server '%s' closed its stdout", s->name);
	stdio_fail(s, &e);
}

static void stdio_on_line(void *opaque, const char *line, size_t len)
{
	struct stdio_tp *s = opaque;
	struct err e = { 0 };
	if (len == 0 || s->closing)
		return;
	json_t *msg = mcp_json_parse(line, len, &e);
	if (!msg) {
		log_warn("mcp: server '%s' wrote a line that is not JSON, skipped (%s)", s->name,
			 e.msg);
		return;
	}
	s->t.ev.on_message(s->t.ev.opaque, msg);
	json_decref(msg);
}

static void stdio_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct stdio_tp *s = h->data;
	(void)suggested;
	if (h == (uv_handle_t *)&s->err)
		*b = uv_buf_init(s->errbuf, sizeof(s->errbuf));
	else
		*b = uv_buf_init(s->rdbuf, sizeof(s->rdbuf));
}

static void stdio_on_eof_timer(uv_timer_t *tm)
{
	struct stdio_tp *s = tm->data;
	if (!s->closing)
		stdio_report_gone(s);
}

static void stdio_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct stdio_tp *s = st->data;
	if (n > 0) {
		mcp_lines_feed(&s->lines, b->base, (size_t)n, stdio_on_line, s);
	} else if (n < 0) {
		uv_read_stop(st);
		/* The exit status usually follows at once and makes the better message;
		 * a server that closed stdout but lives on is reported shortly after. */
		if (s->exited || s->is_fd)
			stdio_report_gone(s);
		else if (!s->closing)
			uv_timer_start(&s->timer, stdio_on_eof_timer, STDIO_EOF_GRACE_MS, 0);
	}
}

static void stdio_on_err(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct stdio_tp *s = st->data;
	if (n < 0) {
		uv_read_stop(st);
		return;
	}
	if (s->log_fd < 0 || n == 0 || s->log_written >= STDIO_STDERR_LOG_MAX)
		return;
	size_t take = (size_t)n;
	if (take > STDIO_STDERR_LOG_MAX - s->log_written)
		take = STDIO_STDERR_LOG_MAX - s->log_written;
	/* The log is a regular file: a short write is an error we ignore (it is a log). */
	ssize_t w = write(s->log_fd, b->base, take);
	if (w > 0)
		s->log_written += (size_t)w;
	if (s->log_written >= STDIO_STDERR_LOG_MAX) {
		static const char note[] = "\n[ironclaw: stderr log capped, rest dropped]\n";
		if (write(s->log_fd, note, sizeof(note) - 1) < 0)
			log_debug("mcp: stderr log note failed");
	}
}

static void stdio_close_all(struct stdio_tp *s);

static void stdio_on_exit(uv_process_t *p, int64_t status, int sig)
{
	struct stdio_tp *s = p->data;
	s->exited = 1;
	s->exit_status = status;
	s->term_signal = sig;
	if (s->closing)
		stdio_close_all(s);
	else
		stdio_report_gone(s);
}

static void stdio_on_write(uv_write_t *req, int status)
{
	struct stdio_write *w = (struct stdio_write *)req;
	struct stdio_tp *s = req->data;
	free(w->data);
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		/* The server stopped reading (closed stdin or died): nothing we send
		 * will be answered, so fail now rather than at each timeout. */
		struct err e = { 0 };
		err_set(&e, -EPIPE, "writing to server '%s' failed: %s", s->name,
			uv_strerror(status));
		stdio_fail(s, &e);
	}
}

static int stdio_send(struct mcp_transport *t, json_t *msg, json_t *headers, struct err *e)
{
	(void)headers;   /* stdio has no headers: the body carries everything */
	struct stdio_tp *s = tp_of(t);
	if (s->closing || s->exited || s->failed_reported)
		return err_set(e, -EPIPE, "server '%s' is not running", s->name);
	char *text = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!text)
		return err_set(e, -ENOMEM, "cannot serialize a message for server '%s'", s->name);
	size_t len = strlen(text);
	/* JSON_COMPACT never emits a raw newline; the delimiter is ours. */
	struct stdio_write *w = malloc(sizeof(*w));
	char *data = realloc(text, len + 2);
	if (!w || !data) {
		free(w);
		free(data ? data : text);
		return err_set(e, -ENOMEM, "out of memory");
	}
	data[len] = '\n';
	data[len + 1] = '\0';
	w->data = data;
	w->req.data = s;
	uv_buf_t b = uv_buf_init(data, (unsigned)(len + 1));
	int rc = uv_write(&w->req, (uv_stream_t *)&s->in, &b, 1, stdio_on_write);
	if (rc < 0) {
		free(data);
		free(w);
		return err_set(e, -EPIPE, "writing to server '%s': %s", s->name, uv_strerror(rc));
	}
	return 0;
}

static void stdio_set_version(struct mcp_transport *t, const char *version)
{
	(void)t;
	(void)version;
}

static void stdio_reset_session(struct mcp_transport *t)
{
	(void)t;
}

static unsigned long stdio_dropped(struct mcp_transport *t)
{
	return tp_of(t)->lines.dropped;
}

static void stdio_free(struct stdio_tp *s)
{
	void (*done)(void *) = s->close_done;
	void *op = s->close_opaque;
	if (s->log_fd >= 0)
		close(s->log_fd);
	mcp_lines_free(&s->lines);
	free(s);
	if (done)
		done(op);
}

static void stdio_handle_closed(uv_handle_t *h)
{
	struct stdio_tp *s = h->data;
	if (--s->open_handles == 0)
		stdio_free(s);
}

static void stdio_close_handle(uv_handle_t *h)
{
	if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
		uv_close(h, stdio_handle_closed);
}

/* The process is gone (or there is none): release every handle. */
static void stdio_close_all(struct stdio_tp *s)
{
	stdio_close_handle((uv_handle_t *)&s->in);
	if (!s->is_fd) {
		stdio_close_handle((uv_handle_t *)&s->out);
		stdio_close_handle((uv_handle_t *)&s->err);
		stdio_close_handle((uv_handle_t *)&s->proc);
	}
	stdio_close_handle((uv_handle_t *)&s->timer);
}

static void stdio_on_close_timer(uv_timer_t *tm)
{
	struct stdio_tp *s = tm->data;
	if (s->is_fd) {
		/* A peer that stopped reading must not hold our close forever. */
		stdio_close_all(s);
		return;
	}
	if (s->exited)
		return;
	if (s->phase == PH_STDIN_CLOSED) {
		log_info("mcp: server '%s' did not exit after stdin closed; SIGTERM", s->name);
		uv_process_kill(&s->proc, SIGTERM);
		s->phase = PH_TERMED;
		uv_timer_start(&s->timer, stdio_on_close_timer, STDIO_WAIT_TERM_MS, 0);
	} else if (s->phase == PH_TERMED) {
		log_warn("mcp: server '%s' ignored SIGTERM; SIGKILL", s->name);
		uv_process_kill(&s->proc, SIGKILL);
		s->phase = PH_KILLED;
		/* SIGKILL cannot be ignored: the exit callback follows. */
	}
}

static void stdio_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct stdio_tp *s = req->data;
	(void)status;
	free(req);
	if (s->is_fd)
		stdio_close_all(s);
	else
		stdio_close_handle((uv_handle_t *)&s->in);
}

static void stdio_close(struct mcp_transport *t, void (*done)(void *opaque), void *opaque)
{
	struct stdio_tp *s = tp_of(t);
	if (s->closing)
		return;
	s->closing = 1;   /* an exit now is the one we asked for */
	s->close_done = done;
	s->close_opaque = opaque;
	uv_timer_stop(&s->timer);
	uv_read_stop(stdio_reader(s));
	if (!s->is_fd && s->exited) {
		stdio_close_all(s);
		return;
	}
	/* Writes queued before the close still go out: shutdown waits for them. */
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (req) {
		req->data = s;
		if (uv_shutdown(req, (uv_stream_t *)&s->in, stdio_shutdown_cb) < 0) {
			free(req);
			req = NULL;
		}
	}
	if (!req) {
		if (s->is_fd)
			stdio_close_all(s);
		else
			stdio_close_handle((uv_handle_t *)&s->in);
	}
	s->phase = PH_STDIN_CLOSED;
	if (!uv_is_closing((uv_handle_t *)&s->timer))
		uv_timer_start(&s->timer, stdio_on_close_timer, STDIO_WAIT_EXIT_MS, 0);
}

static const struct mcp_transport_ops stdio_ops = {
	.send = stdio_send,
	.set_version = stdio_set_version,
	.reset_session = stdio_reset_session,
	.dropped = stdio_dropped,
	.close = stdio_close,
};

/* What a server inherits from us: only these variables (what a program needs to
 * run and find its files), then the configured "env" pairs. Everything else,
 * API keys above all, stays with us: servers are only semi-trusted. */
static const char *const stdio_inherited[] = {
	"HOME", "LOGNAME", "USER", "PATH", "SHELL", "TERM", "TMPDIR", "LANG", "LC_ALL",
	"LC_CTYPE", "TZ", NULL,
};

static int stdio_inherits(const char *kv)
{
	for (int i = 0; stdio_inherited[i]; i++) {
		size_t n = strlen(stdio_inherited[i]);
		if (!strncmp(kv, stdio_inherited[i], n) && kv[n] == '=')
			return 1;
	}
	return 0;
}

/* The inherited subset of our environment plus the configured pairs (which
 * win). Returns an owned array of borrowed strings. */
static char **stdio_build_env(char **extra)
{
	extern char **environ;
	size_t n = 0, m = 0;
	while (environ[n] && n < STDIO_ENV_MAX)
		n++;
	while (extra && extra[m])
		m++;
	char **env = calloc(n + m + 1, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!stdio_inherits(environ[i]))
			continue;
		size_t klen = strcspn(environ[i], "=");
		int overridden = 0;
		for (size_t j = 0; j < m; j++)
			if (!strncmp(extra[j], environ[i], klen) && extra[j][klen] == '=')
				overridden = 1;
		if (!overridden)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		env[k++] = extra[j];
	env[k] = NULL;
	return env;
}

static int stdio_open_log(const struct mcp_server_config *cfg)
{
	const char *path = cfg->stderr_log;
	if (!path)
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
}

static int stdio_spawn(struct stdio_tp *s, uv_loop_t *loop, const struct mcp_server_config *cfg,
		       struct err *e)
{
	int rc;
	char **argv = NULL, **env = NULL;
	s->log_fd = stdio_open_log(cfg);
	if (s->log_fd < 0)
		return err_set(e, -errno, "opening stderr log %s: %s (hint: check \"stderrLog\")",
			       cfg->stderr_log ? cfg->stderr_log : "/dev/null", strerror(errno));
	size_t nargs = 0;
	while (cfg->args && cfg->args[nargs])
		nargs++;
	argv = calloc(nargs + 2, sizeof(*argv));
	env = stdio_build_env(cfg->env);
	if (!argv || !env) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	argv[0] = cfg->command;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = cfg->args[i];
	uv_pipe_init(loop, &s->in, 0);
	uv_pipe_init(loop, &s->out, 0);
	uv_pipe_init(loop, &s->err, 0);
	s->out.data = s->err.data = s->proc.data = s;
	s->open_handles += 3;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&s->in },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&s->out },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&s->err },
	};
	uv_process_options_t po = {
		.exit_cb = stdio_on_exit,
		.file = cfg->command,
		.args = argv,
		.env = env,
		.cwd = cfg->cwd,
		.stdio_count = 3,
		.stdio = stdio,
	};
	s->open_handles++;   /* the process handle needs closing even when spawn fails */
	rc = uv_spawn(loop, &s->proc, &po);
	if (rc < 0) {
		err_set(e, rc == UV_ENOENT ? -ENOENT : -ECHILD, "starting server '%s' (%s): %s "
			"(hint: check \"command\" and PATH)", s->name, cfg->command, uv_strerror(rc));
		rc = e ? e->code : -ECHILD;
		goto out;
	}
	uv_read_start((uv_stream_t *)&s->out, stdio_alloc, stdio_on_read);
	uv_read_start((uv_stream_t *)&s->err, stdio_alloc, stdio_on_err);
out:
	free(argv);
	free(env);
	return rc;
}

static int stdio_attach(struct stdio_tp *s, uv_loop_t *loop, int fd, struct err *e)
{
	s->is_fd = 1;
	uv_pipe_init(loop, &s->in, 0);
	s->open_handles++;
	int rc = uv_pipe_open(&s->in, fd);
	if (rc < 0) {
		close(fd);   /* ours since the call: the caller handed it over */
		return err_set(e, -EBADF, "server '%s': fd %d is not a usable stream: %s", s->name,
			       fd, uv_strerror(rc));
	}
	uv_read_start((uv_stream_t *)&s->in, stdio_alloc, stdio_on_read);
	return 0;
}

int mcp_stdio_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		   const struct mcp_transport_events *ev, struct mcp_transport **out,
		   struct err *e)
{
	struct stdio_tp *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, -ENOMEM, "out of memory");
	/* A server that dies or closes stdin must cost us an EPIPE, not our life:
	 * the default SIGPIPE action kills the process. Only a default disposition
	 * is changed; an application's own handler stays. */
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	s->t.ops = &stdio_ops;
	s->t.ev = *ev;
	s->t.loop = loop;
	s->log_fd = -1;
	snprintf(s->name, sizeof(s->name), "%s", cfg->name ? cfg->name : "?");
	mcp_lines_init(&s->lines, cfg->line_max ? cfg->line_max : MCP_LINE_MAX_DEFAULT);
	uv_timer_init(loop, &s->timer);
	s->timer.data = s->in.data = s;
	s->open_handles = 1;
	int rc = cfg->kind == MCP_FD ? stdio_attach(s, loop, cfg->fd, e) :
		stdio_spawn(s, loop, cfg, e);
	if (rc < 0) {
		/* Handles already made are closed through the loop; the last one frees s. */
		s->closing = 1;
		s->exited = 1;
		stdio_close_all(s);
		return rc;
	}
	*out = &s->t;
	return 0;
}
