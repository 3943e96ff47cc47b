/* A child on a real pseudo-terminal: see pty.h. */
#include "pty.h"

#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/io.h"

#define PTY_SCREEN_MAX (4u << 20)

int pty_child_start(struct pty_child *p, int out_fd, void (*child)(void *arg), void *arg)
{
	memset(p, 0, sizeof(*p));
	p->master = -1;
	buf_init(&p->screen, PTY_SCREEN_MAX);
	p->pid = forkpty(&p->master, NULL, NULL, NULL);
	if (p->pid < 0)
		return -errno;
	if (p->pid == 0) {
		dup2(out_fd, 1);   /* stdout is a file, as when a script captures it */
		child(arg);
		_exit(127);
	}
	return 0;
}

static int pty_screen_has(struct pty_child *p, const char *want)
{
	if (buf_append(&p->screen, "", 1) == 0)   /* keep it a C string */
		p->screen.len--;
	return want && p->screen.data && strstr((char *)p->screen.data, want);
}

int pty_child_await(struct pty_child *p, const char *want, unsigned timeout_ms)
{
	double end = clock_now_ms() + timeout_ms;
	for (;;) {
		if (pty_screen_has(p, want))
			return 1;
		int left = (int)(end - clock_now_ms());
		if (left <= 0 || p->master < 0)
			return 0;
		struct pollfd pf = { .fd = p->master, .events = POLLIN };
		if (poll(&pf, 1, left) <= 0)
			continue;
		char b[4096];
		ssize_t n = read(p->master, b, sizeof(b));
		if (n <= 0)
			return 0;   /* EIO: the child closed the terminal */
		buf_append(&p->screen, b, (size_t)n);
	}
}

int pty_child_say(struct pty_child *p, const char *s)
{
	return io_write_all(p->master, s, strlen(s));
}

int pty_child_wait(struct pty_child *p, unsigned timeout_ms, int *status)
{
	double end = clock_now_ms() + timeout_ms;
	pid_t w;
	while ((w = waitpid(p->pid, status, WNOHANG)) == 0 && clock_now_ms() < end)
		pty_child_await(p, NULL, 50);   /* a child blocked on a full terminal must drain */
	int rc = 0;
	if (w == 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, status, 0);
		rc = -ETIMEDOUT;
	}
	if (p->master >= 0)
		close(p->master);
	p->master = -1;
	return rc;
}

void pty_child_free(struct pty_child *p)
{
	buf_free(&p->screen);
}
