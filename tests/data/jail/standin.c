/* Stand-in for a VMM under the jail: does one thing named by argv[1] so a test
 * can watch the jail and the seccomp filter react. Built static by the tests
 * (cc -static -pthread) into a temporary directory. Output goes to stdout. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *standin_idle(void *p)
{
	(void)p;
	for (;;)
		sleep(60);   /* clock_nanosleep: in the VMM policy (pause is not) */
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (!strcmp(mode, "sleep")) {           /* stay alive to be inspected */
		printf("ready\n");
		fflush(stdout);
		sleep(argc > 2 ? (unsigned)atoi(argv[2]) : 30);
		return 0;
	}
	if (!strcmp(mode, "ls")) {              /* what the root holds */
		for (int i = 2; i < argc; i++) {
			DIR *d = opendir(argv[i]);
			if (!d) {
				printf("%s: %s\n", argv[i], strerror(errno));
				continue;
			}
			struct dirent *de;
			while ((de = readdir(d)))
				if (de->d_name[0] != '.')
					printf("%s/%s\n", argv[i], de->d_name);
			closedir(d);
		}
		printf("env:%s\n", getenv("PATH") ? "PATH set" : "empty");
		printf("fd3:%s\n", fcntl(3, F_GETFD) >= 0 ? "open" : "closed");
		return 0;
	}
	if (!strcmp(mode, "open")) {            /* open a path read-write, report errno */
		int fd = open(argv[2], O_RDWR);
		printf("%s\n", fd >= 0 ? "opened" : strerror(errno));
		return 0;
	}
	if (!strcmp(mode, "write")) {           /* write to a path, report errno */
		FILE *f = fopen(argv[2], "w");
		printf("%s\n", f ? "written" : strerror(errno));
		return 0;
	}
	if (!strcmp(mode, "threads")) {         /* pids.max: count threads until refused */
		int n = 0;
		pthread_t t;
		while (n < 10000 && pthread_create(&t, NULL, standin_idle, NULL) == 0)
			n++;
		printf("threads:%d\n", n);
		fflush(stdout);
		_exit(0);
	}
	/* Forbidden syscalls: each must kill the process with SIGSYS. */
	if (!strcmp(mode, "mount"))
		mount("none", "/", "tmpfs", 0, NULL);
	else if (!strcmp(mode, "ptrace"))
		syscall(SYS_ptrace, 0, 0, 0, 0);
	else if (!strcmp(mode, "kexec_load"))
		syscall(SYS_kexec_load, 0, 0, 0, 0);
	else if (!strcmp(mode, "socket_inet"))
		socket(AF_INET, SOCK_STREAM, 0);
	else if (!strcmp(mode, "fork"))
		syscall(SYS_fork);
	else if (!strcmp(mode, "x32"))          /* getpid through the x32 ABI */
		syscall(0x40000000 | SYS_getpid);
	else if (!strcmp(mode, "i386")) {       /* getpid (20) through int 0x80 */
		long r;
		__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	} else if (!strcmp(mode, "socket_unix")) {
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		printf("unix socket:%s\n", s >= 0 ? "ok" : strerror(errno));
		return 0;
	} else {
		fprintf(stderr, "standin: unknown mode '%s'\n", mode);
		return 2;
	}
	printf("survived %s\n", mode);
	return 0;
}
