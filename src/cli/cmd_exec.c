/* `ironclaw exec`: boot a fresh micro-VM, run one command in it with its output
 * streamed live, destroy the VM, and exit with the command's status.
 *
 * Exit codes follow shells and Docker: the command's own; 126 when it was found
 * but cannot be executed (no x bit, not a binary or script, a directory); 127
 * when it was not found; 124 when --timeout killed it; 128+N when signal N
 * killed it, or when signal N made ironclaw stop it (Ctrl-C 130, SIGTERM 143,
 * a reader that went away 141, as SIGPIPE); 125 when ironclaw itself failed
 * (the VM could not boot, the guest broke the protocol, bad options).
 *
 * Once ironclaw decides how the run ends (the command exited, a signal, the
 * reader left), it alone is the cause of the VM's teardown: nothing the dying
 * VM reports afterwards changes the exit code or prints a line. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli/commands.h"
#include "core/io.h"
#include "core/log.h"
#include "loop/loop.h"
#include "vm/template.h"
#include "image/image.h"
#include "serve/serve.h"
#include "vm/vm.h"

#define EXEC_EXIT_NOT_EXECUTABLE 126
#define EXEC_EXIT_NOT_FOUND 127
#define EXEC_EXIT_TIMEOUT 124
#define EXEC_EXIT_FAILURE 125
#define EXEC_EXIT_SIGNAL(n) (128 + (n))
#define EXEC_ENV_MAX 256
#define EXEC_STDIN_CHUNK (256 * 1024)
#define EXEC_STDIN_BACKLOG_MAX VM_EXEC_STDIN_WINDOW
/* After a first SIGINT/SIGTERM the command gets this long to exit on its own;
 * the guest is never trusted to make it. */
#define EXEC_SIGNAL_GRACE_MS 10000

const struct option cmd_exec_options[] = {
	{ "cpus", required_argument, NULL, 'c' },
	{ "memory", required_argument, NULL, 'm' },
	{ "timeout", required_argument, NULL, 't' },
	{ "env", required_argument, NULL, 'e' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "interactive", no_argument, NULL, 'i' },
	{ "boot-timeout", required_argument, NULL, 'b' },
	{ "kernel", required_argument, NULL, 'k' },
	{ "net", required_argument, NULL, 'n' },
	{ "initrd", required_argument, NULL, 'r' },
	{ "no-snapshot", no_argument, NULL, 'S' },
	{ "image", required_argument, NULL, 'I' },
	{ "disk", required_argument, NULL, 'D' },
	{ "backend", required_argument, NULL, 'B' },
	{ "jailer", required_argument, NULL, 'J' },
	{ "no-daemon", no_argument, NULL, 'N' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
/* '+': the first word that is not an option starts the guest command, so its
 * own options (`ls -l`) stay its own. */
const char cmd_exec_shortopts[] = "+ih";

struct exec_run {
	uv_loop_t *loop;
	struct vm *vm;
	struct vm_exec *exec;
	struct vm_exec_spec spec;
	int exit_code;
	int interactive;
	int stopping;             /* the run's end is decided; the teardown is ours */
	int signal;               /* the first SIGINT/SIGTERM received, or 0 */
	uv_signal_t sigint, sigterm;
	uv_pipe_t in;
	int in_open;
	int in_file;            /* stdin is a regular file, fed by exec_stdin_file */
	uv_timer_t in_wait;
	uv_timer_t stop;          /* runs the teardown outside VM callbacks */
	uv_timer_t grace;         /* a signalled command's time to exit */
	unsigned timeout_s;
	struct vm_options *vo;
	int restoring;            /* the VM comes from a template and is not ready yet */
	int fall_back;            /* the restore failed: boot cold once it is gone */
};

static void exec_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw exec [options] [--] CMD [ARGS...]\n\n"
		"Boot a fresh micro-VM, run CMD in it with its output streamed live, then\n"
		"destroy the VM.\n\n"
		"Options may come in any order, also before `exec` (`ironclaw --timeout 5\n"
		"exec -- CMD`). Everything after `--`, or from the first word that is not\n"
		"an option, is CMD and its arguments: `ironclaw exec ls -l` runs `ls -l`.\n\n"
		"options:\n"
		"  --cpus N            virtual CPUs (default %d)\n"
		"  --memory MiB        guest memory (default %d)\n"
		"  --timeout S         kill CMD after S seconds (default: none)\n"
		"  --env K=V           set an environment variable (repeatable); the command\n"
		"                      starts from an empty environment plus PATH\n"
		"  --workdir DIR       working directory in the guest (default /)\n"
		"  -i, --interactive   forward our stdin to CMD (default: /dev/null)\n"
		"  --boot-timeout S    give up if the guest is not ready in S s (default %d)\n"
		"  --net allow=CIDR[:PORT],...\n"
		"                      give the VM a NIC that may reach only these\n"
		"                      destinations (plus replies); DNS only if listed.\n"
		"                      Default: no NIC at all\n"
		"  --kernel PATH       boot this kernel instead of the default image's\n"
		"  --initrd PATH       boot this initramfs instead of the default image's\n"
		"  --no-snapshot       boot cold even when a template exists for this shape\n"
		"                      (`ironclaw snapshot create`); VMs with --net or --image\n"
		"                      always boot cold\n"
		"  --image NAME        boot the Debian image NAME (`ironclaw image ls`), or an\n"
		"                      ext4 image file given by path; read-only, writes go to a\n"
		"                      throwaway layer in RAM (default: the busybox initramfs).\n"
		"                      Through the daemon, NAME is looked up in the daemon's\n"
		"                      store (its user's, root's), not yours; a path is never\n"
		"                      sent to it and boots here\n"
		"  --disk MiB          with --image: the throwaway layer is a scratch disk of\n"
		"                      this size instead of RAM\n"
		"  --backend B         qemu (default), firecracker, or auto (Firecracker when\n"
		"                      it is installed and KVM runs guests; see `ironclaw doctor`)\n"
		"  --jailer PATH       with Firecracker: start it through its own jailer at PATH\n"
		"                      (inside ironclaw's jail; also IRONCLAW_FC_JAILER)\n"
		"  --no-daemon         boot the VM in this process even when `ironclaw serve`\n"
		"                      runs (default: use the daemon when it answers on\n"
		"                      $IRONCLAW_SOCKET or /run/ironclaw/api.sock; no root needed)\n"
		"  -h, --help          show this help\n\n"
		"exit status (as shells and Docker use them):\n"
		"  N       CMD's own exit status\n"
		"  124     --timeout killed CMD\n"
		"  125     ironclaw itself failed: bad options, the VM did not boot, the\n"
		"          guest broke the protocol, a bad --workdir\n"
		"  126     CMD was found but cannot be executed (no execute permission, not\n"
		"          a binary or script, a directory)\n"
		"  127     CMD was not found (no such file, or not in the guest's PATH)\n"
		"  128+N   signal N killed CMD; also when ironclaw stopped on signal N:\n"
		"          130 Ctrl-C (SIGINT), 143 SIGTERM, 141 when the reader of our\n"
		"          output went away (SIGPIPE, as in `ironclaw exec -- cat /dev/zero\n"
		"          | head -c 1`; ironclaw ends quietly at once)\n\n"
		"Signals: a first Ctrl-C or SIGTERM goes to CMD, which has %d s to exit;\n"
		"a second one, or the end of that time, destroys the VM at once. The VM\n"
		"is destroyed however the run ends.\n",
		VM_DEFAULT_CPUS, VM_DEFAULT_MEMORY_MIB, VM_DEFAULT_BOOT_TIMEOUT_MS / 1000,
		EXEC_SIGNAL_GRACE_MS / 1000);
}

static void exec_on_stop(uv_timer_t *t)
{
	struct exec_run *r = t->data;
	/* Kill first: a command still flooding output would only slow the
	 * guest's power-off down. */
	if (r->exec)
		vm_exec_kill(r->exec, SIGKILL);
	if (r->vm)
		vm_destroy(r->vm);
}

/* Decides how the run ends and starts the teardown. The first decision wins.
 * Deferred to a timer so that no VM or channel callback sees the VM go away
 * under it. */
static void exec_stop(struct exec_run *r, int code)
{
	if (r->stopping)
		return;
	r->stopping = 1;
	r->exit_code = code;
	if (r->in_open)
		uv_read_stop((uv_stream_t *)&r->in);
	uv_timer_stop(&r->in_wait);
	uv_timer_stop(&r->grace);
	uv_timer_start(&r->stop, exec_on_stop, 0, 0);
}

static void exec_on_output(struct vm_exec *x, int stream, const uint8_t *data, size_t len, void *ctx)
{
	struct exec_run *r = ctx;
	(void)x;
	if (r->stopping)
		return;
	/* Blocking writes are the right backpressure: a slow reader slows the guest. */
	int rc = io_write_all(stream, data, len);
	if (rc == -EPIPE) {
		/* The reader went away (`| head -c 1`): end as a SIGPIPE'd tool
		 * would, quietly; nobody reads what we would say. */
		log_debug("exec: the reader of %s went away; stopping the command",
			  stream == 1 ? "stdout" : "stderr");
		exec_stop(r, EXEC_EXIT_SIGNAL(SIGPIPE));
	} else if (rc < 0) {
		fprintf(stderr, "ironclaw: writing the command's %s: %s\n",
			stream == 1 ? "stdout" : "stderr", strerror(-rc));
		exec_stop(r, EXEC_EXIT_FAILURE);
	}
}

static int exec_create_vm(struct exec_run *r, struct err *e);

static void exec_on_vm_destroyed(struct vm *vm, void *ctx)
{
	struct exec_run *r = ctx;
	(void)vm;
	r->vm = NULL;
	if (r->fall_back && !r->stopping) {
		r->fall_back = 0;
		r->vo->restore_from = NULL;
		struct err e = { 0 };
		if (exec_create_vm(r, &e) == 0)
			return;
		fprintf(stderr, "ironclaw: %s\n", e.msg);
		r->exit_code = EXEC_EXIT_FAILURE;
	}
	uv_close((uv_handle_t *)&r->sigint, NULL);
	uv_close((uv_handle_t *)&r->sigterm, NULL);
	if (r->in_open) {
		r->in_open = 0;
		uv_close((uv_handle_t *)&r->in, NULL);
	}
	uv_close((uv_handle_t *)&r->in_wait, NULL);
	uv_close((uv_handle_t *)&r->stop, NULL);
	uv_close((uv_handle_t *)&r->grace, NULL);
}

static int exec_code_for_errno(int e)
{
	/* As shells do: "not found" is 127, any other failure to execute 126. */
	return e == ENOENT || e == ENOTDIR ? EXEC_EXIT_NOT_FOUND : EXEC_EXIT_NOT_EXECUTABLE;
}

static void exec_on_done(struct vm_exec *x, const struct vm_exec_result *res, void *ctx)
{
	struct exec_run *r = ctx;
	(void)x;
	r->exec = NULL;
	if (r->stopping) {
		/* Our own teardown ended it ("the VM was destroyed ..."). */
		if (res->err.code)
			log_debug("exec: after the run ended: %s", res->err.msg);
		return;
	}
	if (res->timed_out && res->err.code) {
		/* The guest ignored the timeout; the host's own deadline ended it. */
		fprintf(stderr, "ironclaw: the command ran past --timeout %us: %s\n", r->timeout_s,
			res->err.msg);
		exec_stop(r, EXEC_EXIT_TIMEOUT);
	} else if (res->exec_errno) {
		fprintf(stderr, "ironclaw: %s\n", res->err.msg);
		exec_stop(r, exec_code_for_errno(res->exec_errno));
	} else if (res->err.code && r->signal) {
		/* The signal reached the VMM too (Ctrl-C goes to the whole
		 * foreground process group): the VM's death is the user's stop. */
		log_debug("exec: after signal %d: %s", r->signal, res->err.msg);
		exec_stop(r, EXEC_EXIT_SIGNAL(r->signal));
	} else if (res->err.code) {
		fprintf(stderr, "ironclaw: %s\n", res->err.msg);
		exec_stop(r, EXEC_EXIT_FAILURE);
	} else if (res->timed_out) {
		fprintf(stderr, "ironclaw: the command ran past --timeout %us and was killed\n",
			r->timeout_s);
		exec_stop(r, EXEC_EXIT_TIMEOUT);
	} else if (res->signal) {
		exec_stop(r, EXEC_EXIT_SIGNAL(res->signal));
	} else {
		exec_stop(r, res->code);
	}
}

static void exec_stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static char chunk[EXEC_STDIN_CHUNK];
	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void exec_on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void exec_stdin_resume(uv_timer_t *t);

/* A regular file cannot be polled: read it a chunk at a time while the stdin
 * window has room, and come back on the timer when it does not. */
static void exec_stdin_file(struct exec_run *r)
{
	static char chunk[EXEC_STDIN_CHUNK];
	while (vm_exec_stdin_pending(r->exec) <= EXEC_STDIN_BACKLOG_MAX) {
		ssize_t n = io_read(0, chunk, sizeof(chunk));
		if (n <= 0) {
			vm_exec_write_stdin(r->exec, "", 0, 1);
			r->in_file = 0;
			return;
		}
		vm_exec_write_stdin(r->exec, chunk, (size_t)n, 0);
	}
	uv_timer_start(&r->in_wait, exec_stdin_resume, 5, 0);
}

static void exec_stdin_resume(uv_timer_t *t)
{
	struct exec_run *r = t->data;
	if (!r->exec || (!r->in_open && !r->in_file))
		return;
	if (vm_exec_stdin_pending(r->exec) > EXEC_STDIN_BACKLOG_MAX) {
		uv_timer_start(&r->in_wait, exec_stdin_resume, 5, 0);
		return;
	}
	if (r->in_file) {
		exec_stdin_file(r);
		return;
	}
	uv_read_start((uv_stream_t *)&r->in, exec_stdin_alloc, exec_on_stdin);
}

static void exec_on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct exec_run *r = s->data;
	if (!r->exec)
		return;
	if (n > 0) {
		vm_exec_write_stdin(r->exec, buf->base, (size_t)n, 0);
		if (vm_exec_stdin_pending(r->exec) > EXEC_STDIN_BACKLOG_MAX) {
			/* Don't read faster than the guest takes it. */
			uv_read_stop(s);
			uv_timer_start(&r->in_wait, exec_stdin_resume, 5, 0);
		}
	} else if (n < 0) {
		vm_exec_write_stdin(r->exec, "", 0, 1);
		uv_read_stop(s);
	}
}

static void exec_start_stdin(struct exec_run *r)
{
	if (uv_guess_handle(0) == UV_FILE) {
		r->in_file = 1;
		exec_stdin_file(r);
		return;
	}
	uv_pipe_init(r->loop, &r->in, 0);
	r->in.data = r;
	if (uv_pipe_open(&r->in, 0) < 0) {
		vm_exec_write_stdin(r->exec, "", 0, 1);
		uv_close((uv_handle_t *)&r->in, NULL);
		return;
	}
	r->in_open = 1;
	uv_read_start((uv_stream_t *)&r->in, exec_stdin_alloc, exec_on_stdin);
}

static void exec_on_ready(struct vm *vm, void *ctx)
{
	struct exec_run *r = ctx;
	static const struct vm_exec_handlers handlers = {
		.output = exec_on_output,
		.done = exec_on_done,
	};
	struct err e = { 0 };
	if (r->stopping)
		return;
	if (r->restoring)
		log_debug("exec: %s restored from a template in %.0f ms", vm_id(vm), vm_boot_ms(vm));
	r->restoring = 0;
	if (vm_exec_start(vm, &r->spec, &handlers, r, &r->exec, &e) < 0) {
		fprintf(stderr, "ironclaw: %s\n", e.msg);
		exec_stop(r, EXEC_EXIT_FAILURE);
		return;
	}
	if (r->interactive)
		exec_start_stdin(r);
}

static void exec_on_failed(struct vm *vm, const struct err *e, void *ctx)
{
	struct exec_run *r = ctx;
	if (r->restoring && !r->stopping && !r->signal) {
		/* A template that QEMU or the guest refused: a cold boot still runs
		 * the command. */
		fprintf(stderr, "ironclaw: restoring from the template failed: %s; booting cold\n",
			e->msg);
		r->restoring = 0;
		r->fall_back = 1;
		vm_destroy(vm);
		return;
	}
	if (r->stopping || r->signal) {
		log_debug("exec: %s VM failure: %s", r->stopping ? "after the run ended," :
			  "after a signal,", e->msg);
		exec_stop(r, EXEC_EXIT_SIGNAL(r->signal));
		return;
	}
	fprintf(stderr, "ironclaw: %s\n", e->msg);
	exec_stop(r, EXEC_EXIT_FAILURE);
}

static void exec_on_grace_over(uv_timer_t *t)
{
	struct exec_run *r = t->data;
	log_debug("exec: the command outlived signal %d by %d ms; destroying the VM", r->signal,
		  EXEC_SIGNAL_GRACE_MS);
	exec_stop(r, EXEC_EXIT_SIGNAL(r->signal));
}

static void exec_on_signal(uv_signal_t *s, int signum)
{
	struct exec_run *r = s->data;
	/* First Ctrl-C goes to the command, like a local shell; the second, or a
	 * command that ignores the first, tears the VM down at once. */
	if (!r->signal && r->exec && !r->stopping) {
		r->signal = signum;
		vm_exec_kill(r->exec, signum);
		uv_timer_start(&r->grace, exec_on_grace_over, EXEC_SIGNAL_GRACE_MS, 0);
		return;
	}
	if (!r->signal)
		r->signal = signum;
	exec_stop(r, EXEC_EXIT_SIGNAL(signum));
}

static int exec_create_vm(struct exec_run *r, struct err *e)
{
	static const struct vm_events events = {
		.ready = exec_on_ready,
		.failed = exec_on_failed,
		.destroyed = exec_on_vm_destroyed,
	};
	return vm_create(r->loop, r->vo, &events, r, &r->vm, e);
}

int cmd_exec(int argc, char **argv)
{
	struct exec_run r = { .exit_code = EXEC_EXIT_FAILURE };
	struct vm_options vo = { .progress = isatty(2) };
	char *env[EXEC_ENV_MAX + 1];
	size_t n_env = 0;
	unsigned boot_s = 0;
	enum vm_backend_choice backend = VM_BACKEND_QEMU;
	int no_daemon = 0;
	const char *net_spec = NULL;
	struct jail_net_allow allow[VM_NET_ALLOW_MAX];
	struct err perr = { 0 };
	int c, no_snapshot = 0;
	const char *image_ref = NULL;
	struct image_info image = { 0 };
	optind = 1;
	while ((c = getopt_long(argc, argv, cmd_exec_shortopts, cmd_exec_options, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (cli_parse_uint("exec", "--cpus", optarg, 1, 64, &vo.cpus) < 0)
				return EXEC_EXIT_FAILURE;
			break;
		case 'm':
			if (cli_parse_uint("exec", "--memory", optarg, 64, 65536, &vo.memory_mib) < 0)
				return EXEC_EXIT_FAILURE;
			break;
		case 't':
			if (cli_parse_uint("exec", "--timeout", optarg, 1, 86400 * 7, &r.timeout_s) < 0)
				return EXEC_EXIT_FAILURE;
			break;
		case 'b':
			if (cli_parse_uint("exec", "--boot-timeout", optarg, 1, 3600, &boot_s) < 0)
				return EXEC_EXIT_FAILURE;
			vo.boot_timeout_ms = boot_s * 1000;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				fprintf(stderr, "ironclaw exec: --env needs K=V, not '%s'\n", optarg);
				return EXEC_EXIT_FAILURE;
			}
			if (n_env == EXEC_ENV_MAX) {
				fprintf(stderr, "ironclaw exec: at most %d --env options\n", EXEC_ENV_MAX);
				return EXEC_EXIT_FAILURE;
			}
			env[n_env++] = optarg;
			break;
		case 'w':
			if (optarg[0] != '/') {
				fprintf(stderr, "ironclaw exec: --workdir must be an absolute guest path, not '%s'\n", optarg);
				return EXEC_EXIT_FAILURE;
			}
			r.spec.cwd = optarg;
			break;
		case 'i':
			r.interactive = 1;
			break;
		case 'k':
			vo.kernel = optarg;
			break;
		case 'n':
			if (vm_net_parse_allow(optarg, strlen(optarg), allow, VM_NET_ALLOW_MAX,
						 &vo.n_allow, &perr) < 0) {
				fprintf(stderr, "ironclaw exec: %s\n", perr.msg);
				return EXEC_EXIT_FAILURE;
			}
			vo.net = strcmp(optarg, "none") != 0;
			net_spec = optarg;
			vo.allow = allow;
			break;
		case 'r':
			vo.initrd = optarg;
			break;
		case 'S':
			no_snapshot = 1;
			break;
		case 'I':
			image_ref = optarg;
			break;
		case 'D':
			if (cli_parse_uint("exec", "--disk", optarg, 16, 1u << 20, &vo.disk_mib) < 0)
				return EXEC_EXIT_FAILURE;
			break;
		case 'B':
			if (vm_backend_parse(optarg, &backend, &perr) < 0) {
				fprintf(stderr, "ironclaw exec: --backend: %s\n", perr.msg);
				return EXEC_EXIT_FAILURE;
			}
			break;
		case 'N':
			no_daemon = 1;
			break;
		case 'J':
			if (optarg[0] != '/') {
				fprintf(stderr, "ironclaw exec: --jailer needs an absolute path\n");
				return EXEC_EXIT_FAILURE;
			}
			setenv("IRONCLAW_FC_JAILER", optarg, 1);   /* read by the Firecracker backend */
			no_daemon = 1;   /* the daemon's VMs are its own */
			break;
		case 'h':
			exec_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "ironclaw exec: see `ironclaw exec --help`\n");
			return EXEC_EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ironclaw exec: no command given (hint: ironclaw exec -- echo hello)\n");
		return EXEC_EXIT_FAILURE;
	}
	env[n_env] = NULL;
	r.spec.argv = argv + optind;
	r.spec.env = env;
	r.spec.timeout_ms = r.timeout_s * 1000;
	r.spec.want_stdin = r.interactive;

	/* The daemon's pool answers faster and needs no root; a custom kernel, an
	 * image file given by path, a scratch disk, another backend or a boot
	 * timeout is only ours to honour. An image NAME goes to the daemon, which
	 * resolves it in its own store (it runs as root): a name it does not
	 * know is its 400, never a silent fall back to a VM made here. */
	int image_by_path = image_ref && strchr(image_ref, '/');
	if (!no_daemon && !vo.kernel && !vo.initrd && !boot_s && !image_by_path && !vo.disk_mib &&
	    backend == VM_BACKEND_QEMU &&
	    serve_client_alive(serve_client_socket())) {
		struct serve_client_exec_spec dx = { .cpus = vo.cpus, .memory_mib = vo.memory_mib,
			.net = net_spec, .image = image_ref, .argv = r.spec.argv, .env = env,
			.cwd = r.spec.cwd,
			.timeout_s = r.timeout_s, .stdin_fd = r.interactive ? 0 : -1 };
		struct err de = { 0 };
		int code = serve_client_exec_cmd(serve_client_socket(), &dx, &de);
		if (de.code)
			fprintf(stderr, "ironclaw: %s\n", de.msg);
		return code;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "ironclaw exec: must run as root: the VMM's jail needs namespaces, "
			"cgroups and nftables (hint: run it as root, e.g. with sudo)\n");
		return EXEC_EXIT_FAILURE;
	}
	struct err e = { 0 };
	if (image_ref) {
		if (image_lookup(image_ref, &image, &e) < 0) {
			fprintf(stderr, "ironclaw exec: %s\n", e.msg);
			return EXEC_EXIT_FAILURE;
		}
		vo.root_image = image.path;
	}
	vm_gc(&e); /* leftovers of VMs whose ironclaw was killed; best effort */
	err_clear(&e);
	char backend_why[512];
	vo.backend = vm_backend_choose(backend, backend_why, sizeof(backend_why));
	if (vo.progress && backend != VM_BACKEND_QEMU)
		fprintf(stderr, "ironclaw: backend %s (%s)\n", vo.backend->name, backend_why);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct loop_lag lag;
	loop_lag_debug(&lag, &loop);   /* IRONCLAW_LOG=debug reports iterations over 50 ms */
	r.loop = &loop;
	uv_signal_init(&loop, &r.sigint);
	uv_signal_init(&loop, &r.sigterm);
	r.sigint.data = r.sigterm.data = &r;
	uv_signal_start(&r.sigint, exec_on_signal, SIGINT);
	uv_signal_start(&r.sigterm, exec_on_signal, SIGTERM);
	uv_timer_init(&loop, &r.in_wait);
	uv_timer_init(&loop, &r.stop);
	uv_timer_init(&loop, &r.grace);
	r.in_wait.data = r.stop.data = r.grace.data = &r;
	signal(SIGPIPE, SIG_IGN);

	r.vo = &vo;
	struct vm_template tpl;
	if (!no_snapshot && !vo.net && !vo.disk_mib &&
	    (vo.backend == &vm_backend_qemu || (vo.backend == &vm_backend_firecracker && !vo.root_image))) {
		/* Templates are per backend (the key names it; Firecracker's are
		 * for initramfs VMs: it has no image disk). An image VM's template is keyed by the
		 * image's bytes too; one with a scratch disk boots cold (the saved
		 * guest's filesystem on it would not be on the fresh disk). Before
		 * the loop runs: hashing the state and image blocks nothing. */
		struct vm_template_shape shape = { vo.kernel, vo.initrd, vo.cpus, vo.memory_mib,
						   vo.root_image, vo.backend->name };
		if (vm_template_open(&shape, &tpl, &e) == 0) {
			vo.restore_from = tpl.state;
			r.restoring = 1;
		} else if (e.code != -ENOENT) {
			fprintf(stderr, "ironclaw: %s; booting cold\n", e.msg);
		}
		err_clear(&e);
	}
	if (exec_create_vm(&r, &e) < 0) {
		fprintf(stderr, "ironclaw: %s\n", e.msg);
		uv_close((uv_handle_t *)&r.sigint, NULL);
		uv_close((uv_handle_t *)&r.sigterm, NULL);
		uv_close((uv_handle_t *)&r.in_wait, NULL);
		uv_close((uv_handle_t *)&r.stop, NULL);
		uv_close((uv_handle_t *)&r.grace, NULL);
		r.exit_code = EXEC_EXIT_FAILURE;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	loop_lag_stop(&lag);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	image_info_free(&image);
	return r.exit_code;
}
