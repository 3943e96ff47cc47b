/* Test harness: see harness.h. */
#include "harness.h"

#include "core/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HARNESS_CAPTURE_MAX (64u << 20)

double harness_now_ms(void)
{
	return clock_now_ms();
}

const char *harness_ironclaw(void)
{
	const char *b = getenv("IRONCLAW_BIN");
	return b && *b ? b : "build/ironclaw";
}

const char *harness_root(void)
{
	const char *r = getenv("IRONCLAW_ROOT");
	return r && *r ? r : ".";
}

struct capture {
	char *data;
	size_t len, cap;
};

static void capture_add(struct capture *c, const char *p, size_t n)
{
	if (c->len + n > HARNESS_CAPTURE_MAX)
		n = HARNESS_CAPTURE_MAX - c->len;
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n + 1)
			cap *= 2;
		c->data = realloc(c->data, cap);
		c->cap = cap;
	}
	memcpy(c->data + c->len, p, n);
	c->len += n;
	c->data[c->len] = '\0';
}

int harness_run(char *const *argv, const char *stdin_data, size_t stdin_len,
		unsigned timeout_ms, struct run_result *r)
{
	memset(r, 0, sizeof(*r));
	int in[2], out[2], err[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return -errno;
	double start = harness_now_ms();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(argv[0], argv);
		fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t in_off = 0;
	if (!stdin_data || stdin_len == 0) {
		close(in[1]);
		in[1] = -1;
	}
	struct capture co = { 0 }, ce = { 0 };
	capture_add(&co, "", 0);
	capture_add(&ce, "", 0);
	int open_fds = 2;
	while (open_fds > 0 || in[1] >= 0) {
		double left = timeout_ms - (harness_now_ms() - start);
		if (left <= 0) {
			r->timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p[3] = {
			{ .fd = out[0], .events = POLLIN },
			{ .fd = err[0], .events = POLLIN },
			{ .fd = in[1], .events = POLLOUT },
		};
		if (poll(p, 3, (int)left) < 0 && errno != EINTR)
			break;
		char chunk[65536];
		for (int i = 0; i < 2; i++) {
			if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP))) {
				ssize_t n = read(p[i].fd, chunk, sizeof(chunk));
				if (n > 0) {
					capture_add(i == 0 ? &co : &ce, chunk, (size_t)n);
				} else {
					close(p[i].fd);
					if (i == 0)
						out[0] = -1;
					else
						err[0] = -1;
					open_fds--;
				}
			}
		}
		if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(in[1], stdin_data + in_off, stdin_len - in_off);
			if (n > 0)
				in_off += (size_t)n;
			if (n < 0 || in_off == stdin_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	if (out[0] >= 0)
		close(out[0]);
	if (err[0] >= 0)
		close(err[0]);
	if (in[1] >= 0)
		close(in[1]);
	waitpid(pid, &r->status, 0);
	r->elapsed_ms = harness_now_ms() - start;
	r->exit_code = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : 128 + WTERMSIG(r->status);
	r->out = co.data;
	r->out_len = co.len;
	r->err = ce.data;
	r->err_len = ce.len;
	return 0;
}

void harness_result_free(struct run_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

pid_t harness_spawn(char *const *argv, const char *out_path, const char *err_path)
{
	pid_t pid = fork();
	if (pid == 0) {
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int n = open("/dev/null", O_RDONLY);
		dup2(n, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int harness_wait(pid_t pid, unsigned timeout_ms, double *elapsed_ms)
{
	double start = harness_now_ms();
	int status;
	while (harness_now_ms() - start < timeout_ms) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			if (elapsed_ms)
				*elapsed_ms = harness_now_ms() - start;
			return status;
		}
		usleep(2000);
	}
	return -ETIMEDOUT;
}

/* Reads /proc/<pid>/<file> into buf (NUL-terminated); returns the length. */
static size_t harness_read_proc(pid_t pid, const char *file, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "re");
	size_t n = 0;
	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return n;
}

static pid_t harness_parent_of(pid_t pid)
{
	char buf[512];
	if (!harness_read_proc(pid, "stat", buf, sizeof(buf)))
		return 0;
	char *close_paren = strrchr(buf, ')');
	int ppid = 0;
	if (!close_paren || sscanf(close_paren + 2, "%*c %d", &ppid) != 1)
		return 0;
	return ppid;
}

/* The one-time KVM probe boots QEMU with ironclaw.poweroff=1; it is not the
 * VM a test is looking for. */
static int harness_is_accel_probe(pid_t pid)
{
	char cmdline[8192];
	size_t n = harness_read_proc(pid, "cmdline", cmdline, sizeof(cmdline));
	for (size_t i = 0; i < n; i++)
		if (cmdline[i] == '\0')
			cmdline[i] = ' ';
	cmdline[n] = '\0';
	return strstr(cmdline, "ironclaw.poweroff=1") != NULL;
}

int harness_find_processes(const char *exe_basename, pid_t ancestor, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	int count = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) && count < max) {
		pid_t pid = atoi(e->d_name);
		if (pid <= 0)
			continue;
		char path[64], exe[4096];
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		ssize_t n = readlink(path, exe, sizeof(exe) - 1);
		if (n <= 0)
			continue;
		exe[n] = '\0';
		const char *base = strrchr(exe, '/');
		base = base ? base + 1 : exe;
		if (strcmp(base, exe_basename) || harness_is_accel_probe(pid))
			continue;
		int match = ancestor == 0;
		for (pid_t p = pid; !match && p > 1; p = harness_parent_of(p))
			match = p == ancestor;
		if (match)
			pids[count++] = pid;
	}
	if (d)
		closedir(d);
	return count;
}

pid_t harness_await_process(const char *exe_basename, pid_t ancestor, unsigned timeout_ms)
{
	double start = harness_now_ms();
	pid_t pid;
	while (harness_find_processes(exe_basename, ancestor, &pid, 1) == 0) {
		if (harness_now_ms() - start > timeout_ms)
			return 0;
		usleep(10000);
	}
	return pid;
}

int harness_count_vm_dirs(void)
{
	DIR *d = opendir("/run/ironclaw");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vm-", 3))
			n++;
	closedir(d);
	return n;
}

int harness_sha256(const void *data, size_t len, char hex[65])
{
	char *argv[] = { "/usr/bin/sha256sum", NULL };
	struct run_result r;
	int rc = harness_run(argv, data, len, 60000, &r);
	if (rc == 0 && r.out_len >= 64) {
		memcpy(hex, r.out, 64);
		hex[64] = '\0';
	} else if (rc == 0) {
		rc = -EIO;
	}
	harness_result_free(&r);
	return rc;
}
