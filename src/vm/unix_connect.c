/* Unix socket connect with retries: see unix_connect.h. The handle frees itself
 * once it has finished (connected, failed or cancelled) and its timer is closed. */
#include "vm/unix_connect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vm/launch.h"

#define UNIX_CONNECT_RETRY_MS 5

struct unix_connect {
	uv_loop_t *loop;
	uv_timer_t retry;
	struct sockaddr_un addr;
	uint64_t deadline;
	unix_connect_cb done;
	void *ctx;
	int finished;
};

static void unix_connect_closed(uv_handle_t *h)
{
	free(h->data);
}

static void unix_connect_finish(struct unix_connect *uc, int fd, const struct err *e)
{
	uc->finished = 1;
	uv_timer_stop(&uc->retry);
	uv_close((uv_handle_t *)&uc->retry, unix_connect_closed);
	if (uc->done)
		uc->done(uc->ctx, fd, e);
}

static void unix_connect_try(uv_timer_t *t)
{
	struct unix_connect *uc = t->data;
	struct err e = { 0 };
	/* Through the launcher: the socket is the VM uid's (serve's privileged
	 * parent connects for us and passes the fd back). */
	int fd = vm_launcher_get()->connect(uc->addr.sun_path);
	if (fd >= 0) {
		unix_connect_finish(uc, fd, NULL);
		return;
	}
	int err = -fd;
	int transient = err == ENOENT || err == ECONNREFUSED || err == EAGAIN;
	if (transient && uv_now(uc->loop) < uc->deadline) {
		uv_timer_start(&uc->retry, unix_connect_try, UNIX_CONNECT_RETRY_MS, 0);
		return;
	}
	err_set(&e, -err, "connecting to %s: %s", uc->addr.sun_path, strerror(err));
	unix_connect_finish(uc, -1, &e);
}

int unix_connect_start(uv_loop_t *loop, const char *path, unsigned deadline_ms,
		       unix_connect_cb done, void *ctx, struct unix_connect **out,
		       struct err *e)
{
	struct unix_connect *uc = calloc(1, sizeof(*uc));
	if (!uc)
		return err_set(e, -ENOMEM, "out of memory");
	if (strlen(path) >= sizeof(uc->addr.sun_path)) {
		free(uc);
		return err_set(e, -ENAMETOOLONG, "socket path too long: %s", path);
	}
	uc->addr.sun_family = AF_UNIX;
	strcpy(uc->addr.sun_path, path);
	uc->loop = loop;
	uc->done = done;
	uc->ctx = ctx;
	uc->deadline = uv_now(loop) + deadline_ms;
	uv_timer_init(loop, &uc->retry);
	uc->retry.data = uc;
	uv_timer_start(&uc->retry, unix_connect_try, 0, 0);
	*out = uc;
	return 0;
}

void unix_connect_cancel(struct unix_connect *uc)
{
	if (!uc || uc->finished)
		return;
	uc->done = NULL;
	unix_connect_finish(uc, -1, NULL);
}
