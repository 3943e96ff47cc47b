/* The API process's seccomp filter (src/serve/priv_seccomp.c), loaded in a
 * forked child exactly as priv_drop loads it: what it forbids kills the
 * process with SIGSYS, and what the daemon does (threads, files, sockets,
 * epoll) keeps working. test_serve_privsep shows the daemon's API process
 * runs under it (Seccomp: 2). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/priv.h"

static void *thread_main(void *arg)
{
	return arg;
}

/* Runs what in a child under the filter; returns its wait status. */
static int under_filter(int what)
{
	pid_t k = fork();
	cr_assert(k >= 0);
	if (k == 0) {
		struct err e = { 0 };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || priv_seccomp_load(&e) < 0)
			_exit(90);
		switch (what) {
		case 0: {   /* the daemon's own kind of work */
			pthread_t t;
			int sp[2];
			if (pthread_create(&t, NULL, thread_main, NULL) || pthread_join(t, NULL))
				_exit(91);
			if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) < 0 || epoll_create1(0) < 0)
				_exit(92);
			int fd = open("/dev/null", O_WRONLY);
			if (fd < 0 || write(fd, "x", 1) != 1)
				_exit(93);
			_exit(0);
		}
		case 1:
			unshare(CLONE_NEWUSER);
			break;
		case 2:
			if (fork() == 0)
				_exit(0);
			break;
		case 3:
			execl("/bin/true", "true", (char *)NULL);
			break;
		case 4:
			mount("none", "/mnt", "tmpfs", 0, NULL);
			break;
		case 5:
			unshare(CLONE_NEWNS);
			break;
		}
		_exit(94);   /* the call returned: not forbidden */
	}
	int st;
	cr_assert_eq(waitpid(k, &st, 0), k);
	return st;
}

Test(serve_priv_seccomp, the_daemons_work_runs)
{
	int st = under_filter(0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(serve_priv_seccomp, forbidden_calls_kill_with_sigsys)
{
	static const char *what[] = { NULL, "unshare(CLONE_NEWUSER)", "fork", "execve", "mount",
				      "unshare(CLONE_NEWNS)" };
	for (int i = 1; i <= 5; i++) {
		int st = under_filter(i);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "%s: status %d, not SIGSYS",
			  what[i], st);
	}
}
