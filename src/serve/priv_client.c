/* The API process's launcher (launch.h): every root-only step of a VM is a
 * message to the privileged parent (priv.h). The short calls block on the sync
 * socket for their REPLY, which the parent answers inline (it never waits on
 * anything while answering them); spawning and destroying are requests on the
 * async socket whose answers (SPAWNED, EXITED, DESTROYED) this process reads
 * from its loop and hands to launch.c.
 *
 * A path the VM code asks to connect to or open becomes a (VM id, file) pair:
 * only the files of priv.h's enum priv_file under the run directory, so the
 * parent never sees a path from this process. */
#include "serve/priv.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "vm/launch.h"
#include "vm/layout.h"

struct priv_pending {
	struct priv_pending *next;
	char id[JAIL_ID_MAX + 1];
	struct vm_launch *l;
};

static struct {
	int sync_fd, async_fd;
	uint32_t seq;
	uv_poll_t poll;
	int polling;
	struct priv_pending *pending;
	_Alignas(8) unsigned char buf[PRIV_MSG_MAX];
	struct priv_msg_spawn spawn;
} pc = { .sync_fd = -1, .async_fd = -1 };

/* One sync call: send, then wait (bounded) for the REPLY with our seq. */
static int priv_call(struct priv_hdr *req, size_t len, struct priv_msg_reply *r, int *fd_out,
		     struct err *e)
{
	req->seq = ++pc.seq;
	if (fd_out)
		*fd_out = -1;
	int rc = priv_msg_send(pc.sync_fd, req, len, -1);
	if (rc < 0)
		return err_set(e, rc, "asking the privileged parent: %s", strerror(-rc));
	double deadline = clock_now_ms() + PRIV_SYNC_TIMEOUT_MS;
	for (;;) {
		double now = clock_now_ms();
		if (now >= deadline)
			return err_set(e, -ETIMEDOUT, "the privileged parent did not answer in %d ms",
				       PRIV_SYNC_TIMEOUT_MS);
		struct pollfd p = { .fd = pc.sync_fd, .events = POLLIN };
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return err_set(e, -errno, "poll: %s", strerror(errno));
		char why[160];
		int fd = -1;
		ssize_t n = priv_msg_recv(pc.sync_fd, pc.buf, &fd, why, sizeof(why));
		if (n == -EAGAIN)
			continue;
		if (n <= 0)
			return err_set(e, n ? (int)n : -EPIPE, "the privileged parent: %s",
				       n == -EPROTO ? why : "gone");
		const struct priv_hdr *h = (const void *)pc.buf;
		if (h->type != PRIV_REPLY || h->seq != req->seq) {
			if (fd >= 0)
				close(fd);
			continue;   /* an answer to a call that already timed out */
		}
		memcpy(r, pc.buf, sizeof(*r));
		r->text[sizeof(r->text) - 1] = '\0';
		if (r->rc < 0) {
			if (fd >= 0)
				close(fd);
			return err_set(e, r->rc, "%s", r->text[0] ? r->text : strerror(-r->rc));
		}
		if (fd_out)
			*fd_out = fd;
		else if (fd >= 0)
			close(fd);
		return 0;
	}
}

static int priv_call_id(uint32_t type, const char *id, struct priv_msg_reply *r, struct err *e)
{
	struct priv_msg_id m;
	priv_msg_init(&m.h, type, id);
	return priv_call(&m.h, sizeof(m), r, NULL, e);
}

static int pc_prepare_dir(const struct jail_names *n, struct err *e)
{
	struct priv_msg_reply r;
	return priv_call_id(PRIV_PREPARE, n->id, &r, e);
}

static int pc_net_reserve(struct jail_names *n, struct jail_net_addr *out, struct err *e)
{
	struct priv_msg_reply r;
	int rc = priv_call_id(PRIV_NET_RESERVE, n->id, &r, e);
	if (rc < 0)
		return rc;
	n->slot = r.slot;
	n->slot_claimed = 1;
	*out = r.addr;
	return 0;
}

static int pc_discard(const struct jail_names *n, struct err *e)
{
	struct priv_msg_reply r;
	return priv_call_id(PRIV_DISCARD, n->id, &r, e);
}

static int pc_scratch_create(const struct jail_names *n, const char *path, uint64_t bytes,
			     struct err *e)
{
	char want[300];
	snprintf(want, sizeof(want), "%s/%s", n->dir, VM_LAYOUT_SCRATCH_FILE);
	if (strcmp(path, want))
		return err_set(e, -EINVAL, "a scratch disk is %s, not %s", want, path);
	struct priv_msg_scratch m;
	struct priv_msg_reply r;
	priv_msg_init(&m.h, PRIV_SCRATCH, n->id);
	m.bytes = bytes;
	return priv_call(&m.h, sizeof(m), &r, NULL, e);
}

/* "<run dir>/<id>/<name>" -> id and the file it is; -EACCES for any other path. */
static int pc_file_of(const char *path, uint32_t type, char *id, uint32_t *file)
{
	static const char run[] = JAIL_RUN_DIR "/";
	if (strncmp(path, run, sizeof(run) - 1))
		return -EACCES;
	const char *p = path + sizeof(run) - 1, *slash = strchr(p, '/');
	if (!slash || slash == p || (size_t)(slash - p) > JAIL_ID_MAX)
		return -EACCES;
	memcpy(id, p, (size_t)(slash - p));
	id[slash - p] = '\0';
	const char *name = slash + 1;
	if (type == PRIV_CONNECT && !strcmp(name, "qmp.sock"))
		*file = PRIV_FILE_QMP;
	else if (type == PRIV_CONNECT && !strcmp(name, "channel.sock"))
		*file = PRIV_FILE_CHANNEL;
	else if (type == PRIV_OPEN_LOG && !strcmp(name, "console.log"))
		*file = PRIV_FILE_CONSOLE;
	else
		return -EACCES;
	return 0;
}

static int pc_file_call(const char *path, uint32_t type)
{
	char id[JAIL_ID_MAX + 1];
	struct priv_msg_file m;
	struct priv_msg_reply r;
	struct err e = { 0 };
	uint32_t file;
	int rc = pc_file_of(path, type, id, &file), fd = -1;
	if (rc < 0)
		return rc;
	priv_msg_init(&m.h, type, id);
	m.file = file;
	if ((rc = priv_call(&m.h, sizeof(m), &r, &fd, &e)) < 0)
		return rc;
	return fd >= 0 ? fd : -EPROTO;
}

static int pc_connect(const char *path)
{
	return pc_file_call(path, PRIV_CONNECT);
}

static int pc_open_read(const char *path)
{
	return pc_file_call(path, PRIV_OPEN_LOG);
}

/* ---- async ---- */

static void pc_ref(void);

static struct priv_pending *pc_find(const char *id, int unlink_it)
{
	for (struct priv_pending **p = &pc.pending; *p; p = &(*p)->next) {
		if (strcmp((*p)->id, id))
			continue;
		struct priv_pending *f = *p;
		if (unlink_it)
			*p = f->next;
		return f;
	}
	return NULL;
}

static int pc_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, src, n + 1);
	return 0;
}

static int pc_spawn(struct vm_launch *l, const struct jail_config *cfg, struct err *e)
{
	struct priv_msg_spawn *m = &pc.spawn;
	const char *id = vm_launch_id(l);
	priv_msg_init(&m->h, PRIV_SPAWN, id);
	if (cfg->n_pass_fds || cfg->stdin_fd >= 0 || cfg->stdout_fd >= 0 || !cfg->names)
		return err_set(e, -ENOTSUP, "the privileged parent starts VMMs without extra fds");
	size_t used = 0;
	uint32_t argc = 0;
	for (; cfg->argv[argc]; argc++) {
		size_t n = strlen(cfg->argv[argc]) + 1;
		if (argc + 1 >= VM_PLAN_ARGV_MAX || used + n > sizeof(m->store))
			return err_set(e, -E2BIG, "VMM command line too long for the privileged parent");
		m->argv_off[argc] = (uint32_t)used;
		memcpy(m->store + used, cfg->argv[argc], n);
		used += n;
	}
	m->argc = argc;
	if (cfg->n_binds > VM_PLAN_BINDS_MAX || cfg->n_allow > JAIL_ALLOW_MAX)
		return err_set(e, -E2BIG, "too many binds or allow entries");
	for (size_t i = 0; i < cfg->n_binds; i++) {
		char real[PRIV_PATH_MAX];
		const char *host = priv_images_host_path(cfg->binds[i].host_path, real, sizeof(real));
		if (!host || pc_copy(m->binds[i].host, sizeof(m->binds[i].host), host) < 0 ||
		    pc_copy(m->binds[i].jail, sizeof(m->binds[i].jail), cfg->binds[i].jail_path) < 0)
			return err_set(e, -ENAMETOOLONG, "bind path too long: %s", cfg->binds[i].host_path);
		m->binds[i].writable = cfg->binds[i].writable ? 1 : 0;
	}
	m->n_binds = (uint32_t)cfg->n_binds;
	for (size_t i = 0; i < cfg->n_allow; i++)
		m->allow[i] = (struct priv_allow){ cfg->allow[i].addr, cfg->allow[i].prefix,
						   cfg->allow[i].port };
	m->n_allow = (uint32_t)cfg->n_allow;
	m->kvm_node = cfg->kvm_node ? 1 : 0;
	m->net = cfg->net ? 1 : 0;
	m->cpu_percent = cfg->cpu_percent;
	m->memory_max_bytes = cfg->memory_max_bytes;
	m->fsize_max_bytes = cfg->fsize_max_bytes;
	struct priv_pending *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, -ENOMEM, "out of memory");
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->l = l;
	int rc = priv_msg_send(pc.async_fd, m, sizeof(*m), cfg->stderr_fd);
	if (rc < 0) {
		free(p);
		return err_set(e, rc, "asking the privileged parent to spawn: %s", strerror(-rc));
	}
	p->next = pc.pending;
	pc.pending = p;
	pc_ref();
	return 0;
}

static void pc_send_id(uint32_t type, const char *id)
{
	struct priv_msg_id m;
	priv_msg_init(&m.h, type, id);
	int rc = priv_msg_send(pc.async_fd, &m, sizeof(m), -1);
	if (rc < 0)
		log_warn("%s: telling the privileged parent: %s", id, strerror(-rc));
}

static void pc_kill(struct vm_launch *l)
{
	pc_send_id(PRIV_KILL, vm_launch_id(l));
}

static void pc_destroy(struct vm_launch *l)
{
	pc_send_id(PRIV_DESTROY, vm_launch_id(l));
}

/* The socket keeps the loop alive only while an answer is due. */
static void pc_ref(void)
{
	if (!pc.polling)
		return;
	if (pc.pending)
		uv_ref((uv_handle_t *)&pc.poll);
	else
		uv_unref((uv_handle_t *)&pc.poll);
}

static void pc_on_async(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)events;
	for (int i = 0; i < 64; i++) {
		char why[160];
		int fd = -1;
		ssize_t n = status < 0 ? status : priv_msg_recv(pc.async_fd, pc.buf, &fd, why, sizeof(why));
		if (n == -EAGAIN)
			return;
		if (n <= 0 && n != -EPROTO) {
			/* Without the parent no VM can be made or removed, and its
			 * death already took the VMMs: nothing here is worth keeping. */
			log_error("serve: the privileged parent is gone; exiting");
			_exit(1);
		}
		if (fd >= 0)
			close(fd);
		if (n == -EPROTO) {
			log_warn("serve: a bad message from the privileged parent: %s", why);
			continue;
		}
		const struct priv_hdr *hd = (const void *)pc.buf;
		struct priv_pending *p = pc_find(hd->id, hd->type == PRIV_DESTROYED ||
							 (hd->type == PRIV_SPAWNED &&
							  ((const struct priv_msg_spawned *)hd)->rc < 0));
		if (!p) {
			log_warn("serve: the privileged parent answered for an unknown VM '%s'", hd->id);
			continue;
		}
		struct vm_launch *l = p->l;
		struct err e = { 0 };
		pc_ref();
		if (hd->type == PRIV_SPAWNED) {
			const struct priv_msg_spawned *m = (const void *)hd;
			if (m->rc < 0) {
				err_set(&e, m->rc, "%.*s", (int)sizeof(m->text), m->text);
				free(p);
				vm_launch_spawned(l, -1, &e);
			} else {
				vm_launch_spawned(l, m->pid, NULL);
			}
		} else if (hd->type == PRIV_EXITED) {
			vm_launch_exited(l, ((const struct priv_msg_exited *)hd)->status);
		} else if (hd->type == PRIV_DESTROYED) {
			const struct priv_msg_destroyed *m = (const void *)hd;
			if (m->rc < 0)
				err_set(&e, m->rc, "%.*s", (int)sizeof(m->text), m->text);
			free(p);
			vm_launch_destroyed(l, m->rc < 0 ? &e : NULL);
		} else {
			log_warn("serve: unexpected message type %u from the privileged parent", hd->type);
		}
	}
}

static const struct vm_launcher priv_launcher = {
	.name = "privileged parent",
	.spawn = pc_spawn,
	.kill = pc_kill,
	.destroy = pc_destroy,
	.prepare_dir = pc_prepare_dir,
	.net_reserve = pc_net_reserve,
	.discard = pc_discard,
	.scratch_create = pc_scratch_create,
	.connect = pc_connect,
	.open_read = pc_open_read,
};

int priv_client_start(uv_loop_t *loop, int sync_fd, int async_fd, struct err *e)
{
	pc.sync_fd = sync_fd;
	pc.async_fd = async_fd;
	int rc = uv_poll_init(loop, &pc.poll, async_fd);
	if (rc < 0)
		return err_set(e, rc, "watching the privileged parent: %s", uv_strerror(rc));
	uv_poll_start(&pc.poll, UV_READABLE | UV_DISCONNECT, pc_on_async);
	pc.polling = 1;
	pc_ref();
	vm_launcher_use(&priv_launcher);
	return 0;
}

void priv_client_stop(void)
{
	if (pc.polling)
		uv_close((uv_handle_t *)&pc.poll, NULL);
	pc.polling = 0;
}
