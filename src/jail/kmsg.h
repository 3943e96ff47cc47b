/* Finding the syscall that got a process killed, from the kernel's audit
 * record of the seccomp kill (type=1326, printed to the kernel log when no
 * audit daemon runs). The dying process's own siginfo is not visible to its
 * parent, so this is the path to the syscall number. */
#ifndef IRONCLAW_JAIL_KMSG_H
#define IRONCLAW_JAIL_KMSG_H

#include <sys/types.h>

/* Opens /dev/kmsg positioned at its end (records from now on). -1 if unavailable. */
int jail_kmsg_open(void);
/* Reads the records since open for "type=1326 ... pid=<pid> ... arch=<hex>
 * syscall=<n>". Returns 0 and sets *nr and *arch (AUDIT_ARCH_*), or -ENOENT. */
int jail_kmsg_find_seccomp(int fd, pid_t pid, long *nr, unsigned long *arch);

#endif
