/* stdio transport: the server is a child process that speaks newline-delimited
 * JSON on its stdin/stdout.
 *
 * It is spawned directly (execvp through libuv, never a shell), so arguments
 * are never re-parsed. Pipes are binary: bytes are written as they are, which
 * is what an earlier text-mode pipe got wrong. The server's stderr is a third
 * pipe that we drain into a log file (capped, so a flooding server can neither
 * block on a full pipe nor fill the disk), and it is never mixed into the
 * protocol. The server inherits only a short list of our variables (PATH,
 * HOME, ...) plus its configured "env": our secrets are not its business.
 * Shutdown follows the MCP stdio rules: close stdin, wait, SIGTERM, wait,
 * SIGKILL. */
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

enum stdio_phase { PH_RUNNING, PH_STDIN_CLOSED, PH_TERMED, PH_KILLED, PH_EXITED };

struct stdio_tp {
	struct mcp_transport t;       /* first: the generic view */
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
	int out_eof;
	int failed_reported;
	enum stdio_phase phase;
	char name[64];
	char rdbuf[STDIO_READ_CHUNK];
	char errbuf[STDIO_READ_CHUNK];
	int reading;
};

struct stdio_write {
	uv_write_t req;
	char *data;
};

static struct stdio_tp *tp_of(struct mcp_transport *t)
{
	return (struct stdio_tp *)t;
}

static void stdio_report_gone(struct stdio_tp *s)
{
	if (s->failed_reported || !s->t.ev.on_failure)
		return;
	s->failed_reported = 1;
	char why[160];
	if (s->exited && s->term_signal)
		snprintf(why, sizeof(why), "server '%s' was killed by signal %d", s->name,
			 s->term_signal);
	else if (s->exited)
		snprintf(why, sizeof(why), "server '%s' exited with status %lld", s->name,
			 (long long)s->exit_status);
	else
		snprintf(why, sizeof(why), "server '%s' closed its stdout", s->name);
	s->t.ev.on_failure(s->t.ev.opaque, NULL, -EPIPE, why);
}

static void stdio_on_line(void *opaque, const char *line, size_t len)
{
	struct stdio_tp *s = opaque;
	char why[200];
	if (len == 0)
		return;
	json_t *msg = mcp_json_parse(line, len, why, sizeof(why));
	if (!msg) {
		log_warn("mcp: server '%s' wrote a line that is not JSON, skipped (%s)", s->name, why);
		return;
	}
	s->t.ev.on_message(s->t.ev.opaque, msg);
	json_decref(msg);
}

static void stdio_on_timer(uv_timer_t *tm);

static void stdio_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct stdio_tp *s = h->data;
	(void)suggested;
	if (h == (uv_handle_t *)&s->err)
		*b = uv_buf_init(s->errbuf, sizeof(s->errbuf));
	else
		*b = uv_buf_init(s->rdbuf, sizeof(s->rdbuf));
}

static void stdio_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct stdio_tp *s = st->data;
	if (n > 0) {
		mcp_lines_feed(&s->lines, b->base, (size_t)n, stdio_on_line, s);
	} else if (n < 0) {
		uv_read_stop(st);
		s->out_eof = 1;
		/* The exit status usually follows at once and makes the better message;
		 * a server that closed stdout but lives on is reported shortly after. */
		if (s->exited)
			stdio_report_gone(s);
		else if (s->phase == PH_RUNNING)
			uv_timer_start(&s->timer, stdio_on_timer, 300, 0);
	}
}

static void stdio_on_err(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct stdio_tp *s = st->data;
	if (n < 0) {
		uv_read_stop(st);
		return;
	}
	if (s->log_fd < 0 || n == 0)
		return;
	size_t take = (size_t)n;
	if (s->log_written >= STDIO_STDERR_LOG_MAX)
		return;
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

static void stdio_on_exit(uv_process_t *p, int64_t status, int sig)
{
	struct stdio_tp *s = p->data;
	s->exited = 1;
	s->exit_status = status;
	s->term_signal = sig;
	s->phase = PH_EXITED;
	if (!s->failed_reported && s->t.ev.on_failure)
		stdio_report_gone(s);
}

static void stdio_on_write(uv_write_t *req, int status)
{
	struct stdio_write *w = (struct stdio_write *)req;
	struct stdio_tp *s = req->data;
	free(w->data);
	free(w);
	if (status < 0 && status != UV_ECANCELED && !s->failed_reported && s->t.ev.on_failure) {
		/* The server stopped reading (closed stdin or died): nothing we send
		 * will be answered, so fail now rather than at each timeout. */
		char why[160];
		s->failed_reported = 1;
		snprintf(why, sizeof(why), "writing to server '%s' failed: %s", s->name,
			 uv_strerror(status));
		s->t.ev.on_failure(s->t.ev.opaque, NULL, -EPIPE, why);
	}
}

static int stdio_send(struct mcp_transport *t, json_t *msg, char *why, size_t why_len)
{
	struct stdio_tp *s = tp_of(t);
	if (s->phase != PH_RUNNING || s->exited) {
		snprintf(why, why_len, "server '%s' is not running", s->name);
		return -EPIPE;
	}
	char *text = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!text) {
		snprintf(why, why_len, "cannot serialize message");
		return -ENOMEM;
	}
	size_t len = strlen(text);
	/* JSON_COMPACT never emits a raw newline; the delimiter is ours. */
	struct stdio_write *w = malloc(sizeof(*w));
	char *data = realloc(text, len + 2);
	if (!w || !data) {
		free(w);
		free(data ? data : text);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
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
		snprintf(why, why_len, "writing to server '%s': %s", s->name, uv_strerror(rc));
		return -EPIPE;
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

static void stdio_handle_closed(uv_handle_t *h)
{
	struct stdio_tp *s = h->data;
	s->open_handles--;
}

static void stdio_close_handle(struct stdio_tp *s, uv_handle_t *h)
{
	(void)s;
	if (!uv_is_closing(h)) {
		uv_close(h, stdio_handle_closed);
	}
}

static void stdio_on_timer(uv_timer_t *tm)
{
	struct stdio_tp *s = tm->data;
	if (s->exited)
		return;
	if (s->phase == PH_RUNNING) {
		stdio_report_gone(s);
	} else if (s->phase == PH_STDIN_CLOSED) {
		log_info("mcp: server '%s' did not exit after stdin closed; SIGTERM", s->name);
		uv_process_kill(&s->proc, SIGTERM);
		s->phase = PH_TERMED;
		uv_timer_start(&s->timer, stdio_on_timer, STDIO_WAIT_TERM_MS, 0);
	} else if (s->phase == PH_TERMED) {
		log_warn("mcp: server '%s' ignored SIGTERM; SIGKILL", s->name);
		uv_process_kill(&s->proc, SIGKILL);
		s->phase = PH_KILLED;
	}
}

static void stdio_shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	struct stdio_tp *s = req->data;
	free(req);
	stdio_close_handle(s, (uv_handle_t *)&s->in);
}

/* Returns 1 while the close still needs loop turns. */
static int stdio_closing(struct mcp_transport *t)
{
	struct stdio_tp *s = tp_of(t);
	s->failed_reported = 1;   /* an exit now is the one we asked for */
	if (s->phase == PH_RUNNING && !s->exited) {
		s->phase = PH_STDIN_CLOSED;
		uv_shutdown_t *req = malloc(sizeof(*req));
		if (req) {
			req->data = s;
			if (uv_shutdown(req, (uv_stream_t *)&s->in, stdio_shutdown_cb) < 0) {
				free(req);
				stdio_close_handle(s, (uv_handle_t *)&s->in);
			}
		} else {
			stdio_close_handle(s, (uv_handle_t *)&s->in);
		}
		uv_timer_start(&s->timer, stdio_on_timer, STDIO_WAIT_EXIT_MS, 0);
		return 1;
	}
	if (!s->exited)
		return 1;
	/* Exited: release every handle. */
	stdio_close_handle(s, (uv_handle_t *)&s->in);
	stdio_close_handle(s, (uv_handle_t *)&s->out);
	stdio_close_handle(s, (uv_handle_t *)&s->err);
	stdio_close_handle(s, (uv_handle_t *)&s->timer);
	stdio_close_handle(s, (uv_handle_t *)&s->proc);
	return s->open_handles > 0;
}

static void stdio_destroy(struct mcp_transport *t)
{
	struct stdio_tp *s = tp_of(t);
	if (s->log_fd >= 0)
		close(s->log_fd);
	mcp_lines_free(&s->lines);
	free(s);
}

static const struct mcp_transport_ops stdio_ops = {
	.send = stdio_send,
	.set_version = stdio_set_version,
	.reset_session = stdio_reset_session,
	.closing = stdio_closing,
	.destroy = stdio_destroy,
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

int mcp_stdio_open(uv_loop_t *loop, const struct mcp_server_config *cfg,
		   const struct mcp_transport_events *ev, struct mcp_transport **out,
		   char *why, size_t why_len)
{
	struct stdio_tp *s = calloc(1, sizeof(*s));
	char **argv = NULL, **env = NULL;
	int rc;
	if (!s)
		return -ENOMEM;
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
	s->log_fd = stdio_open_log(cfg);
	if (s->log_fd < 0) {
		rc = -errno;
		snprintf(why, why_len, "opening stderr log %s: %s (hint: check \"stderrLog\")",
			 cfg->stderr_log ? cfg->stderr_log : "/dev/null", strerror(errno));
		goto fail;
	}
	size_t nargs = 0;
	while (cfg->args && cfg->args[nargs])
		nargs++;
	argv = calloc(nargs + 2, sizeof(*argv));
	env = stdio_build_env(cfg->env);
	if (!argv || !env) {
		rc = -ENOMEM;
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	argv[0] = cfg->command;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = cfg->args[i];

	uv_pipe_init(loop, &s->in, 0);
	uv_pipe_init(loop, &s->out, 0);
	uv_pipe_init(loop, &s->err, 0);
	uv_timer_init(loop, &s->timer);
	s->in.data = s->out.data = s->err.data = s->timer.data = s->proc.data = s;
	s->open_handles = 5;

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
	rc = uv_spawn(loop, &s->proc, &po);
	if (rc < 0) {
		snprintf(why, why_len, "starting server '%s' (%s): %s (hint: check \"command\" "
			 "and PATH)", s->name, cfg->command, uv_strerror(rc));
		/* The handles exist; close them through the loop. */
		s->exited = 1;
		s->phase = PH_EXITED;
		s->failed_reported = 1;
		uv_close((uv_handle_t *)&s->proc, stdio_handle_closed);
		stdio_close_handle(s, (uv_handle_t *)&s->in);
		stdio_close_handle(s, (uv_handle_t *)&s->out);
		stdio_close_handle(s, (uv_handle_t *)&s->err);
		stdio_close_handle(s, (uv_handle_t *)&s->timer);
		while (s->open_handles > 0)
			uv_run(loop, UV_RUN_ONCE);
		rc = rc == UV_ENOENT ? -ENOENT : -ECHILD;
		goto fail;
	}
	uv_read_start((uv_stream_t *)&s->out, stdio_alloc, stdio_on_read);
	uv_read_start((uv_stream_t *)&s->err, stdio_alloc, stdio_on_err);
	free(argv);
	free(env);
	*out = &s->t;
	return 0;
fail:
	free(argv);
	free(env);
	if (s->log_fd >= 0)
		close(s->log_fd);
	mcp_lines_free(&s->lines);
	free(s);
	return rc;
}
