/* The daemon's lifetime. Start: remove every leftover of VMs whose ironclaw
 * was killed (vm_gc; a daemon killed with -9 took its VMs with it through the
 * parent-death signal, but not their netns, cgroups and directories), bind the
 * socket, split into the privileged parent and the unprivileged API process
 * (priv.h; everything below runs in the latter), start libmicrohttpd on the
 * loop, fill the pool, and sweep TTLs once a second. Stop (SIGINT, SIGTERM): refuse new sandboxes, destroy every VM
 * (each answers or ends the requests waiting on it), then close the server
 * and the socket, and let the loop run dry. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/log.h"
#include "loop/loop.h"
#include "serve/internal.h"
#include "serve/priv.h"

static void serve_finish(struct serve *s)
{
	if (!s->stopping || s->vms_alive || s->pool || !s->mhd)
		return;
	serve_http_stop(s);
}

void serve_vm_gone(struct serve *s)
{
	s->vms_alive--;
	serve_finish(s);
}

static void serve_pool_closed(struct serve *s)
{
	s->pool = NULL;
	serve_finish(s);
}

void serve_stop(struct serve *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	log_info("serve: stopping; destroying %u sandboxes", serve_sandbox_count(s));
	uv_close((uv_handle_t *)&s->sweep, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	/* The stop is under way; a second signal must not cut it short: a
	 * terminal's ^C reaches both of the daemon's processes, and the
	 * privileged parent passes its copy on (libuv restored SIG_DFL above). */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	if (s->cfg.stop_fd >= 0)
		uv_close((uv_handle_t *)&s->stop_poll, NULL);
	struct serve_sandbox *next;
	for (struct serve_sandbox *sb = s->sandboxes; sb; sb = next) {
		next = sb->next; /* a queued VM's sandbox is freed at once */
		serve_sandbox_delete(sb);
	}
	if (s->pool)
		serve_pool_close(s->pool, serve_pool_closed);
	serve_finish(s);
}

static void serve_on_signal(uv_signal_t *h, int sig)
{
	log_info("serve: signal %d", sig);
	serve_stop(h->data);
}

static void serve_on_stop_fd(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	serve_stop(p->data);
}

static void serve_on_sweep(uv_timer_t *t)
{
	struct serve *s = t->data;
	serve_sandbox_sweep(s);
	if (s->pool)
		serve_pool_tick(s->pool);
}

/* The daemon's VMMs run without transparent huge pages: set on the daemon
 * before it splits, so the root parent, which spawns every VMM, passes it on
 * through fork and exec. QEMU madvises guest RAM MADV_HUGEPAGE, so a restore
 * that writes one 4 KiB page of a 2 MiB range got the whole 2 MiB: an idle
 * clone of a 128 MiB guest held 84 MB of guest RAM for a 54 MB state. Without
 * THP the clone holds about the state's non-zero pages (docs/serve.md,
 * Measured). Cold VMs barely change (they touch what they touch); TCG maps
 * guest pages 4 KiB at a time anyway. */
static void serve_memory_policy(void)
{
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
		log_warn("serve: cannot turn transparent huge pages off for the VMMs (%s): restored "
			 "VMs will hold more host memory", strerror(errno));
}

int serve_run(const struct serve_config *c, struct err *e)
{
	struct serve s = { .cfg = *c };
	int fd = -1, rc;
	if (!s.cfg.socket_path)
		s.cfg.socket_path = SERVE_SOCKET_DEFAULT;
	if (!s.cfg.max_sandboxes)
		s.cfg.max_sandboxes = SERVE_MAX_SANDBOXES_DEFAULT;
	if (!s.cfg.max_booting) {
		long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
		s.cfg.max_booting = n_cpu > 0 ? (unsigned)n_cpu : 1;
	}
	if (!s.cfg.memory_mib)
		s.cfg.memory_mib = SERVE_MEMORY_MIB_DEFAULT;
	s.default_shape.cpus = c->cpus ? c->cpus : VM_DEFAULT_CPUS;
	s.default_shape.memory_mib = c->memory_default_mib ? c->memory_default_mib
							   : VM_DEFAULT_MEMORY_MIB;
	snprintf(s.default_shape.net_spec, sizeof(s.default_shape.net_spec), "none");

	int n = vm_gc(e);
	if (n < 0)
		return err_wrap(e, "removing leftovers before serving");
	if (n > 0)
		log_info("serve: removed the leftovers of %d VMs", n);
	err_clear(e);
	if ((rc = serve_sock_listen(s.cfg.socket_path, s.cfg.group, &fd, e)) < 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	serve_memory_policy();
	int sync_fd = -1, async_fd = -1;
	/* The parent returns here only when the API process has exited. */
	if ((rc = priv_fork(&s.cfg, fd, &sync_fd, &async_fd, e)) <= 0) {
		if (rc < 0)
			unlink(s.cfg.socket_path);
		return rc;
	}
	uv_loop_t loop;
	uv_loop_init(&loop);
	s.loop = &loop;
	if ((rc = priv_client_start(&loop, sync_fd, async_fd, e)) < 0) {
		uv_loop_close(&loop);
		return rc;
	}
	struct loop_lag lag;
	loop_lag_debug(&lag, &loop);
	if ((rc = serve_http_start(&s, fd, e)) < 0) {
		loop_lag_stop(&lag);
		priv_client_stop();
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		close(fd);
		unlink(s.cfg.socket_path);
		return rc;
	}
	uv_signal_init(&loop, &s.sigint);
	uv_signal_init(&loop, &s.sigterm);
	s.sigint.data = s.sigterm.data = &s;
	uv_signal_start(&s.sigint, serve_on_signal, SIGINT);
	uv_signal_start(&s.sigterm, serve_on_signal, SIGTERM);
	if (s.cfg.stop_fd >= 0) {
		uv_poll_init(&loop, &s.stop_poll, s.cfg.stop_fd);
		s.stop_poll.data = &s;
		uv_poll_start(&s.stop_poll, UV_READABLE | UV_DISCONNECT, serve_on_stop_fd);
	}
	uv_timer_init(&loop, &s.sweep);
	s.sweep.data = &s;
	uv_timer_start(&s.sweep, serve_on_sweep, 1000, 1000);
	if (c->pool_size && serve_pool_new(&s, &s.default_shape, c->pool_size, c->pool_memory_mib,
					   c->pool_idle_s, &s.pool, e) < 0)
		log_warn("serve: no pool: %s", e->msg);
	err_clear(e);
	log_info("serve: listening on %s (pool %u, max %u sandboxes, %u MiB)", s.cfg.socket_path,
		 c->pool_size, s.cfg.max_sandboxes, s.cfg.memory_mib);
	uv_run(&loop, UV_RUN_DEFAULT);
	loop_lag_stop(&lag);
	priv_client_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	serve_tpl_free_all(&s);
	close(fd);
	unlink(s.cfg.socket_path);
	return 0;
}
