/* Commands: exec.start, exec.stdin and exec.kill. Each command is the leader of
 * its own session and process group (setsid), so a timeout or exec.kill reaches
 * everything it started. The command's exec id is the id of the exec.start
 * request; it stays reserved until exec.exit has been sent. Pipe traffic, reaping
 * and timeouts live in exec_io.c. */
#include "guest/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io.h"
#include "proto/rpc.h"

#define GUEST_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define GUEST_TIMEOUT_MAX_MS (30LL * 24 * 3600 * 1000)

extern char **environ;

struct guest_spawn {
	char **argv;          /* owned array, strings borrowed from params */
	char **envp;
	const char *cwd;
	int want_stdin;
	json_int_t timeout_ms;
};

static void guest_spawn_free(struct guest_spawn *s)
{
	free(s->argv);
	free(s->envp);
}

/* Fills an owned NULL-terminated array borrowing the JSON strings. */
static int guest_strv(json_t *params, const char *key, int is_env, char ***out,
		      char *why, size_t n)
{
	json_t *arr = json_object_get(params, key);
	size_t count = json_array_size(arr), i;
	json_t *v;
	int has_path = 0;
	/* An absent env is empty (plus the default PATH). */
	if ((arr || !is_env) && (!json_is_array(arr) || (!is_env && count == 0) || count > GUEST_ARGV_MAX)) {
		snprintf(why, n, "\"%s\" must be an array of %s1 to %d strings", key,
			 is_env ? "0 or " : "", GUEST_ARGV_MAX);
		return -EINVAL;
	}
	char **v_out = calloc(count + 2, sizeof(char *));
	if (!v_out) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (!s || strlen(s) != json_string_length(v)) {
			snprintf(why, n, "\"%s\"[%zu] must be a string without NUL bytes", key, i);
			goto bad;
		}
		if (is_env && (s[0] == '=' || !strchr(s, '='))) {
			snprintf(why, n, "\"env\"[%zu] must look like NAME=value", i);
			goto bad;
		}
		if (!is_env && i == 0 && s[0] == '\0') {
			snprintf(why, n, "\"argv\"[0] must not be empty");
			goto bad;
		}
		if (is_env && !strncmp(s, "PATH=", 5))
			has_path = 1;
		v_out[i] = (char *)s;
	}
	if (is_env && !has_path)
		v_out[count] = (char *)GUEST_DEFAULT_PATH;
	*out = v_out;
	return 0;
bad:
	free(v_out);
	return -EINVAL;
}

static int guest_spawn_parse(json_t *params, struct guest_spawn *s, char *why, size_t n)
{
	static const char *const allowed[] = { "argv", "env", "cwd", "timeout_ms", "stdin", NULL };
	int rc;
	memset(s, 0, sizeof(*s));
	s->cwd = "/";
	if (!params)
		return snprintf(why, n, "missing \"argv\""), -EINVAL;
	if ((rc = proto_param_only(params, allowed, why, n)) < 0 ||
	    (rc = guest_strv(params, "argv", 0, &s->argv, why, n)) < 0)
		return rc;
	if ((rc = guest_strv(params, "env", 1, &s->envp, why, n)) < 0 ||
	    (rc = proto_param_str(params, "cwd", 0, &s->cwd, NULL, why, n)) < 0 ||
	    (rc = proto_param_int(params, "timeout_ms", 0, 0, GUEST_TIMEOUT_MAX_MS,
				   &s->timeout_ms, why, n)) < 0 ||
	    (rc = proto_param_bool(params, "stdin", &s->want_stdin, why, n)) < 0)
		return rc;
	if (s->cwd[0] != '/')
		return snprintf(why, n, "\"cwd\" must be an absolute path"), -EINVAL;
	return 0;
}

/* What the child reports on the CLOEXEC status pipe when it cannot become the
 * command: the step that failed and its errno. EOF instead means exec worked. */
enum guest_child_step { GUEST_STEP_SETUP, GUEST_STEP_CHDIR, GUEST_STEP_EXEC };
struct guest_child_failure {
	int step;
	int err;
};

/* In the child, between vfork and exec: only async-signal-safe calls, and
 * nothing that writes the parent's memory except environ (restored by the
 * parent) and the status pipe. The agent installs no signal handlers (SIGCHLD
 * comes through a signalfd, SIGPIPE is ignored), so no handler can run on the
 * shared memory here either. */
static void guest_child(const struct guest_spawn *s, int in_fd, int out_fd, int err_fd,
			int status_fd)
{
	struct guest_child_failure f = { GUEST_STEP_SETUP, 0 };
	struct stat st;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (in_fd < 0)
		in_fd = open("/dev/null", O_RDONLY);
	if (in_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		goto fail;
	f.step = GUEST_STEP_CHDIR;
	if (chdir(s->cwd) < 0)
		goto fail;
	/* execvp looks PATH up in environ: give it the command's own. */
	environ = s->envp;
	f.step = GUEST_STEP_EXEC;
	execvp(s->argv[0], s->argv);
	/* execve says EACCES for a directory; shells say "Is a directory", which
	 * tells the user what is wrong. Checked here, where cwd is the command's. */
	if (errno == EACCES && strchr(s->argv[0], '/') && stat(s->argv[0], &st) == 0 &&
	    S_ISDIR(st.st_mode))
		errno = EISDIR;
fail:
	f.err = errno;
	if (write(status_fd, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

/* vfork, not fork: the agent is suspended until the child has exec'ed (or
 * failed), which the status pipe waited for anyway, and no page table is
 * copied nor page faulted in copy-on-write afterwards; under TCG each of those
 * is emulated kernel work on every exec. A function of its own, so that no
 * caller's variable lives across the vfork. */
static __attribute__((noinline)) pid_t guest_vfork_child(const struct guest_spawn *s, int in_fd,
							  int out_fd, int err_fd, int status_fd)
{
	char **volatile saved_environ = environ;
	pid_t pid = vfork();
	if (pid == 0)
		guest_child(s, in_fd, out_fd, err_fd, status_fd);
	environ = saved_environ;   /* the child set it, in our memory */
	return pid;
}

/* Answers an exec.start whose child could not become the command. An exec
 * failure carries its errno in the error's data, so the host can tell "not
 * found" (exit 127) from "not executable" (126) without parsing text. */
static int guest_reply_child_failure(struct guest *g, json_int_t id, const struct guest_spawn *s,
				     const struct guest_child_failure *f)
{
	if (f->step != GUEST_STEP_EXEC)
		return guest_reply_error(g, id, -32000, "cannot run \"%.200s\" in %.200s: %s%s",
					 s->argv[0], s->cwd,
					 f->step == GUEST_STEP_CHDIR ? "working directory: " : "",
					 strerror(f->err));
	const char *why = f->err == ENOENT && !strchr(s->argv[0], '/') ? "command not found in PATH"
								       : strerror(f->err);
	return guest_reply_error_data(g, id, -32000, json_pack("{s:i}", "errno", f->err),
				      "cannot run \"%.200s\" in %.200s: %s", s->argv[0], s->cwd, why);
}

static struct guest_exec *guest_exec_slot(struct guest *g, json_int_t id, int *busy)
{
	struct guest_exec *free_slot = NULL;
	*busy = 0;
	for (int i = 0; i < GUEST_EXEC_MAX; i++) {
		if (g->execs[i].in_use && g->execs[i].id == id)
			*busy = 1;
		if (!g->execs[i].in_use && !free_slot)
			free_slot = &g->execs[i];
	}
	return free_slot;
}

static void guest_close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

int guest_exec_start(struct guest *g, json_int_t id, json_t *params)
{
	struct guest_spawn s;
	char why[256];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, st[2] = { -1, -1 };
	int busy, rc;
	struct guest_child_failure failure;
	struct guest_exec *e;

	if (guest_spawn_parse(params, &s, why, sizeof(why)) < 0) {
		rc = guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
		goto out;
	}
	e = guest_exec_slot(g, id, &busy);
	if (busy) {
		rc = guest_reply_error(g, id, RPC_INVALID_PARAMS,
				       "exec id %lld is still in use by a running command", (long long)id);
		goto out;
	}
	if (!e) {
		rc = guest_reply_error(g, id, -32000, "too many commands running (limit %d); "
				       "wait for an exec.exit", GUEST_EXEC_MAX);
		goto out;
	}
	if ((s.want_stdin && pipe2(in, O_CLOEXEC) < 0) || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(err, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0) {
		rc = guest_reply_error(g, id, -32000, "pipe: %s", strerror(errno));
		goto out;
	}
	pid_t pid = guest_vfork_child(&s, in[0], out[1], err[1], st[1]);
	if (pid < 0) {
		rc = guest_reply_error(g, id, -32000, "vfork: %s", strerror(errno));
		goto out;
	}
	close(st[1]);
	st[1] = -1;
	/* EOF: exec succeeded (CLOEXEC closed the pipe). Otherwise what failed. */
	if (io_read(st[0], &failure, sizeof(failure)) == (ssize_t)sizeof(failure)) {
		waitpid(pid, NULL, 0);
		rc = guest_reply_child_failure(g, id, &s, &failure);
		goto out;
	}
	memset(e, 0, sizeof(*e));
	e->in_use = 1;
	e->id = id;
	e->pid = pid;
	e->out_fd = out[0];
	e->err_fd = err[0];
	e->in_fd = in[1];
	out[0] = err[0] = in[1] = -1;
	io_set_nonblock(e->out_fd, 1);
	io_set_nonblock(e->err_fd, 1);
	/* Bigger pipes, fewer wake-ups per MiB of output (best effort). */
	fcntl(e->out_fd, F_SETPIPE_SZ, (int)GUEST_PIPE_SIZE);
	fcntl(e->err_fd, F_SETPIPE_SZ, (int)GUEST_PIPE_SIZE);
	if (e->in_fd >= 0) {
		io_set_nonblock(e->in_fd, 1);
		fcntl(e->in_fd, F_SETPIPE_SZ, (int)GUEST_PIPE_SIZE);
	}
	buf_init(&e->inq, GUEST_STDIN_MAX);
	if (s.timeout_ms > 0)
		e->deadline_ms = guest_now_ms() + (uint64_t)s.timeout_ms;
	rc = guest_reply(g, id, json_pack("{s:i}", "pid", (int)pid));
out:
	guest_close_pair(in);
	guest_close_pair(out);
	guest_close_pair(err);
	guest_close_pair(st);
	guest_spawn_free(&s);
	return rc;
}

/* The running command with this exec id, or NULL (also once it exited: its
 * pipes may still drain, but it no longer takes input or signals). */
static struct guest_exec *guest_exec_running(struct guest *g, json_int_t id)
{
	for (int i = 0; i < GUEST_EXEC_MAX; i++)
		if (g->execs[i].in_use && g->execs[i].id == id && !g->execs[i].exited)
			return &g->execs[i];
	return NULL;
}

static int guest_exec_param_id(struct guest *g, json_int_t id, json_t *params,
			       const char *const *allowed, struct guest_exec **out)
{
	char why[256];
	json_int_t ex = 0;
	if (proto_param_only(params, allowed, why, sizeof(why)) < 0 ||
	    proto_param_int(params, "exec", 1, 0, INT64_MAX, &ex, why, sizeof(why)) < 0)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	*out = guest_exec_running(g, ex);
	if (!*out)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS,
					 "no running command with exec id %lld", (long long)ex);
	return 1;
}

int guest_exec_stdin_bytes(struct guest *g, json_int_t id, json_int_t exec, const uint8_t *data,
			   size_t len, int eof)
{
	struct guest_exec *e = guest_exec_running(g, exec);
	if (!e)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS,
					 "no running command with exec id %lld", (long long)exec);
	if (e->in_fd < 0 || e->in_eof)
		return guest_reply_error(g, id, -32000, "stdin of exec %lld is %s", (long long)e->id,
					 e->in_fd < 0 && !e->in_eof ? "not a pipe (start it with \"stdin\":true)"
								    : "already closed");
	if (e->nwaits >= GUEST_STDIN_PENDING)
		return guest_reply_error(g, id, -32000, "too many exec.stdin requests in flight "
					 "(limit %d); wait for their replies", GUEST_STDIN_PENDING);
	size_t direct = 0;
	if (len > 0 && e->inq.len == e->in_off) {
		/* Nothing queued: straight into the pipe, and queue only what it did
		 * not take (one copy less per byte; errors are left to the queued
		 * path below, which knows how to answer them). */
		ssize_t w;
		do
			w = write(e->in_fd, data, len);
		while (w < 0 && errno == EINTR);
		if (w > 0)
			direct = (size_t)w;
	}
	e->in_written += direct;
	data += direct;
	len -= direct;
	if (len > 0) {
		/* Compact only when the written prefix is at least half the buffer
		 * (or the cap needs it): moving megabytes per request is what slowed
		 * bulk stdin down under TCG. */
		if (e->in_off > 0 && (e->in_off >= e->inq.len / 2 || e->inq.len + len > e->inq.max)) {
			buf_consume(&e->inq, e->in_off);
			e->in_off = 0;
		}
		if (buf_append(&e->inq, data, len) < 0)
			return guest_reply_error(g, id, -32000, "stdin backlog of exec %lld is over %u "
						 "bytes; wait for earlier exec.stdin replies",
						 (long long)e->id, GUEST_STDIN_MAX);
	}
	e->in_queued += len + direct;
	e->in_eof = eof;
	e->waits[e->nwaits].id = id;
	e->waits[e->nwaits].until = e->in_queued;
	e->nwaits++;
	return guest_exec_write_stdin(g, e);
}

int guest_exec_stdin(struct guest *g, json_int_t id, json_t *params)
{
	static const char *const allowed[] = { "exec", "data", "eof", NULL };
	struct guest_exec *e = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int eof = 0, rc;
	char why[256];

	rc = guest_exec_param_id(g, id, params, allowed, &e);
	if (rc <= 0)
		return rc;
	if (proto_param_bool(params, "eof", &eof, why, sizeof(why)) < 0 ||
	    (json_object_get(params, "data") &&
	     proto_param_data(params, GUEST_STDIN_MAX, &data, &len, why, sizeof(why)) < 0))
		rc = guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	else
		rc = guest_exec_stdin_bytes(g, id, e->id, data, len, eof);
	free(data);
	return rc;
}

int guest_exec_kill(struct guest *g, json_int_t id, json_t *params)
{
	static const char *const allowed[] = { "exec", "signal", NULL };
	struct guest_exec *e = NULL;
	json_int_t sig = SIGKILL;
	char why[256];
	int rc = guest_exec_param_id(g, id, params, allowed, &e);
	if (rc <= 0)
		return rc;
	if (proto_param_int(params, "signal", 0, 1, 64, &sig, why, sizeof(why)) < 0)
		return guest_reply_error(g, id, RPC_INVALID_PARAMS, "%s", why);
	if (kill(-e->pid, (int)sig) < 0 && errno != ESRCH)
		return guest_reply_error(g, id, -32000, "kill: %s", strerror(errno));
	return guest_reply(g, id, json_object());
}
