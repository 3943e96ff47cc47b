/* Minimal QMP client: just enough to ask QEMU to quit when the guest ignores
 * `shutdown`. Blocking with a short deadline, because it is only used on the
 * way out. */
#ifndef IRONCLAW_VM_QMP_H
#define IRONCLAW_VM_QMP_H

/* Connects to the QMP socket, negotiates capabilities and sends `quit`.
 * Returns 0 when QEMU accepted it, else a negative errno. */
int qmp_quit(const char *socket_path, int timeout_ms);

#endif
