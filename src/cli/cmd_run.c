/* `ironclaw run "task"`: the agent (src/agent/). This file turns flags, the
 * config file's "model" object and the environment into agent options, runs the
 * agent on one loop, and prints the answer (stdout) or the --json object.
 *
 * Precedence for the model settings: flags, then the config file, then the
 * environment; the key comes from OPENAI_API_KEY or ANTHROPIC_API_KEY unless
 * "api_key_env" names another variable. The key never goes anywhere but the
 * model client: not into the VM, the run log or an error message. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/agent.h"
#include "cli/commands.h"
#include "image/image.h"
#include "mcp/mcp.h"
#include "serve/serve.h"

#define RUN_TASK_MAX (64u * 1024)

const struct option cmd_run_options[] = {
	{ "workspace", required_argument, NULL, 'w' },
	{ "provider", required_argument, NULL, 'P' },
	{ "base-url", required_argument, NULL, 'u' },
	{ "model", required_argument, NULL, 'M' },
	{ "max-steps", required_argument, NULL, 's' },
	{ "approve", required_argument, NULL, 'a' },
	{ "approver", required_argument, NULL, 'A' },
	{ "mcp", required_argument, NULL, 'p' },
	{ "net", required_argument, NULL, 'n' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "memory", required_argument, NULL, 'm' },
	{ "timeout", required_argument, NULL, 't' },
	{ "tool-timeout", required_argument, NULL, 'T' },
	{ "exclude", required_argument, NULL, 'x' },
	{ "config", required_argument, NULL, 'C' },
	{ "runs-dir", required_argument, NULL, 'R' },
	{ "no-stream", no_argument, NULL, 'S' },
	{ "json", no_argument, NULL, 'j' },
	{ "image", required_argument, NULL, 'I' },
	{ "disk", required_argument, NULL, 'D' },
	{ "backend", required_argument, NULL, 'B' },
	{ "no-daemon", no_argument, NULL, 'N' },
	{ "jailer", required_argument, NULL, 'J' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
const char cmd_run_shortopts[] = "h";

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: ironclaw run [options] \"task\"\n\n"
		"Hands the task to a model; everything the model does runs in one fresh micro-VM,\n"
		"destroyed at the end. Changes to the workspace come back as a diff card and reach\n"
		"your files only after you approve them.\n\n"
		"  --workspace DIR     copy DIR into the VM's /workspace (never shared writable)\n"
		"  --exclude GLOB      leave matching paths out of the copy (repeatable)\n"
		"  --provider P        openai (also Ollama, llama.cpp, vLLM) or anthropic\n"
		"  --base-url URL      as the provider's SDK takes it: OpenAI's includes /v1\n"
		"                      (http://localhost:11434/v1 for Ollama), Anthropic's does not\n"
		"  --model NAME        the model\n"
		"  --no-stream         ask for whole replies instead of streams\n"
		"  --max-steps N       model turns before the run stops (default %d)\n"
		"  --timeout S         total wall time of the run\n"
		"  --tool-timeout S    default timeout of run_command (default 120, at most 600)\n"
		"  --approve MODE      ask (default with a terminal), deny (default without), yes\n"
		"  --approver CMD      an external approver: the card as JSON on its stdin, a decision\n"
		"                      {\"decision\":\"approve\"|\"deny\"} on its stdout\n"
		"  --mcp NAME          offer this configured MCP server's tools (repeatable;\n"
		"                      default: every server in the config file)\n"
		"  --net allow=CIDR[:PORT],...   the VM's network allowlist (default: none)\n"
		"  --cpus N, --memory MiB        the VM's shape\n"
		"  --image NAME        the VM's userland: a Debian image (`ironclaw image ls`);\n"
		"                      default: the config's \"image\", else the busybox image.\n"
		"                      Through the daemon, NAME is looked up in the daemon's\n"
		"                      store (root's), not yours\n"
		"  --disk MiB          with an image: writes go to a scratch disk, not RAM\n"
		"  --backend B         the VMM: qemu (default), firecracker, or auto (Firecracker\n"
		"                      when it is installed and KVM runs guests; see `ironclaw doctor`)\n"
		"  --no-daemon         make the VM in this process (needs root) even when\n"
		"                      `ironclaw serve` answers on $IRONCLAW_SOCKET (default: the\n"
		"                      daemon's sandbox when it answers and no image path, --disk\n"
		"                      or --backend asks for what only this process can do)\n"
		"  --jailer PATH       with Firecracker: start it through its own jailer at PATH\n"
		"                      (inside ironclaw's jail; also IRONCLAW_FC_JAILER)\n"
		"  --config FILE       default: $IRONCLAW_CONFIG or ~/.config/ironclaw/config.json\n"
		"  --runs-dir DIR      where run logs and undo data go\n"
		"  --json              print one JSON object at the end (answer, steps, changes,\n"
		"                      decision, run id) instead of the answer\n\n"
		"The config file's \"model\" object: {\"provider\", \"base_url\", \"model\", \"api_key_env\",\n"
		"\"stream\", \"timeouts\": {\"connect_s\", \"first_byte_s\", \"total_s\"}}. The key is read\n"
		"from OPENAI_API_KEY or ANTHROPIC_API_KEY unless api_key_env names another variable.\n\n"
		"exit status: 0 done (approved changes applied, or none); 1 the model failed; 2 usage;\n"
		"3 a red action or the changes were denied, or a conflict, so nothing reached your files;\n"
		"4 a limit (steps, time, a stuck model); 125 the sandbox failed.\n",
		AGENT_MAX_STEPS_DEFAULT);
}

struct run_model_cfg {
	json_t *root;             /* the whole config file, owned */
	const char *provider, *base_url, *model, *key_env;
	int stream;               /* -1: unset */
	long connect_s, first_byte_s, total_s;
};

static int run_read_model_cfg(const char *path, struct run_model_cfg *m)
{
	memset(m, 0, sizeof(*m));
	m->stream = -1;
	json_error_t je;
	m->root = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!m->root) {
		if (path && access(path, F_OK) == 0) {
			fprintf(stderr, "ironclaw run: %s:%d: %s\n", path, je.line, je.text);
			return -EINVAL;
		}
		return 0;
	}
	json_t *mo = json_object_get(m->root, "model");
	if (!mo)
		return 0;
	if (!json_is_object(mo)) {
		fprintf(stderr, "ironclaw run: %s: \"model\" must be an object\n", path);
		return -EINVAL;
	}
	m->provider = json_string_value(json_object_get(mo, "provider"));
	m->base_url = json_string_value(json_object_get(mo, "base_url"));
	m->model = json_string_value(json_object_get(mo, "model"));
	m->key_env = json_string_value(json_object_get(mo, "api_key_env"));
	json_t *st = json_object_get(mo, "stream");
	if (json_is_boolean(st))
		m->stream = json_is_true(st);
	json_t *t = json_object_get(mo, "timeouts");
	m->connect_s = (long)json_integer_value(json_object_get(t, "connect_s"));
	m->first_byte_s = (long)json_integer_value(json_object_get(t, "first_byte_s"));
	m->total_s = (long)json_integer_value(json_object_get(t, "total_s"));
	return 0;
}

static struct agent_run *run_current;

static void run_on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	if (run_current) {
		agent_stop(run_current, AGENT_DENIED, signum == SIGINT ? "interrupted (Ctrl-C): nothing was applied"
								       : "terminated: nothing was applied");
		run_current = NULL;
	}
}

struct run_outcome {
	int code;
	int json;
	uv_signal_t *sigs;
};

static void run_on_done(void *ctx, struct agent_result *r)
{
	struct run_outcome *out = ctx;
	run_current = NULL;
	out->code = (int)r->status;
	if (out->json) {
		char *s = json_dumps(r->summary, JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
	} else {
		if (r->answer && r->status != AGENT_MODEL_FAILED && r->status != AGENT_SANDBOX_FAILED)
			printf("%s\n", r->answer);
		if (r->status != AGENT_OK && r->why[0])
			fprintf(stderr, "ironclaw run: %s (run %s)\n", r->why, r->run_id);
	}
	fflush(stdout);
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&out->sigs[i], NULL);
}

int cmd_run(int argc, char **argv)
{
	struct agent_options o = { 0 };
	const char *provider = NULL, *base_url = NULL, *model = NULL, *approve = NULL, *config = NULL;
	const char *mcp[AGENT_MCP_MAX], *excludes[AGENT_EXCLUDES_MAX];
	size_t n_mcp = 0, n_ex = 0;
	struct jail_net_allow allow[VM_NET_ALLOW_MAX];
	int no_stream = 0, no_daemon = 0;
	const char *image_ref = NULL;
	struct image_info image = { 0 };
	enum vm_backend_choice backend = VM_BACKEND_QEMU;
	unsigned u;
	struct err e = { 0 };
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, cmd_run_shortopts, cmd_run_options, NULL)) != -1) {
		switch (ch) {
		case 'w': o.workspace = optarg; break;
		case 'P': provider = optarg; break;
		case 'u': base_url = optarg; break;
		case 'M': model = optarg; break;
		case 's':
			if (cli_parse_uint("run", "--max-steps", optarg, 1, 10000, &u) < 0)
				return AGENT_USAGE;
			o.max_steps = (int)u;
			break;
		case 'a': approve = optarg; break;
		case 'A': o.approval.approver = optarg; break;
		case 'p':
			if (n_mcp == AGENT_MCP_MAX) {
				fprintf(stderr, "ironclaw run: at most %d --mcp servers\n", AGENT_MCP_MAX);
				return AGENT_USAGE;
			}
			mcp[n_mcp++] = optarg;
			break;
		case 'n':
			if (vm_net_parse_allow(optarg, strlen(optarg), allow, VM_NET_ALLOW_MAX, &o.vm.n_allow, &e) < 0) {
				fprintf(stderr, "ironclaw run: %s\n", e.msg);
				return AGENT_USAGE;
			}
			o.vm.net = strcmp(optarg, "none") != 0;
			o.vm.allow = allow;
			o.net_spec = optarg;
			break;
		case 'c':
			if (cli_parse_uint("run", "--cpus", optarg, 1, 64, &o.vm.cpus) < 0)
				return AGENT_USAGE;
			break;
		case 'm':
			if (cli_parse_uint("run", "--memory", optarg, 64, 1u << 20, &o.vm.memory_mib) < 0)
				return AGENT_USAGE;
			break;
		case 't':
			if (cli_parse_uint("run", "--timeout", optarg, 1, 86400 * 7, &o.timeout_s) < 0)
				return AGENT_USAGE;
			break;
		case 'T':
			if (cli_parse_uint("run", "--tool-timeout", optarg, 1, 600, &o.tool_timeout_s) < 0)
				return AGENT_USAGE;
			break;
		case 'x':
			if (n_ex == AGENT_EXCLUDES_MAX) {
				fprintf(stderr, "ironclaw run: at most %d --exclude globs\n", AGENT_EXCLUDES_MAX);
				return AGENT_USAGE;
			}
			excludes[n_ex++] = optarg;
			break;
		case 'C': config = optarg; break;
		case 'R': o.runs_dir = optarg; break;
		case 'S': no_stream = 1; break;
		case 'j': o.json = 1; break;
		case 'I': image_ref = optarg; break;
		case 'D':
			if (cli_parse_uint("run", "--disk", optarg, 16, 1u << 20, &o.vm.disk_mib) < 0)
				return AGENT_USAGE;
			break;
		case 'J':
			if (optarg[0] != '/') {
				fprintf(stderr, "ironclaw run: --jailer needs an absolute path\n");
				return AGENT_USAGE;
			}
			setenv("IRONCLAW_FC_JAILER", optarg, 1);   /* read by the Firecracker backend */
			break;
		case 'B':
			if (vm_backend_parse(optarg, &backend, &e) < 0) {
				fprintf(stderr, "ironclaw run: --backend: %s\n", e.msg);
				return AGENT_USAGE;
			}
			break;
		case 'N': no_daemon = 1; break;
		case 'h': run_usage(stdout); return 0;
		default:
			fprintf(stderr, "ironclaw run: see `ironclaw run --help`\n");
			return AGENT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "ironclaw run: no task given (hint: ironclaw run --workspace . \"fix the failing test\")\n");
		return AGENT_USAGE;
	}
	/* Several words are one task, as a shell user would expect. */
	static char task[RUN_TASK_MAX];
	size_t tl = 0;
	for (int i = optind; i < argc; i++) {
		size_t n = strlen(argv[i]);
		if (tl + n + 2 > sizeof(task)) {
			fprintf(stderr, "ironclaw run: the task is longer than %u bytes\n", RUN_TASK_MAX);
			return AGENT_USAGE;
		}
		if (tl)
			task[tl++] = ' ';
		memcpy(task + tl, argv[i], n);
		tl += n;
	}
	task[tl] = '\0';
	o.task = task;

	char *cfg_path = config ? strdup(config) : mcp_config_default_path();
	struct run_model_cfg mc;
	if (run_read_model_cfg(cfg_path, &mc) < 0) {
		free(cfg_path);
		return AGENT_USAGE;
	}
	int rc = AGENT_USAGE;
	const char *prov = provider ? provider : mc.provider ? mc.provider : getenv("IRONCLAW_PROVIDER");
	if (llm_provider_parse(prov ? prov : "openai", &o.model.provider) < 0) {
		fprintf(stderr, "ironclaw run: unknown provider '%s' (hint: openai or anthropic)\n", prov);
		goto out;
	}
	int anthropic = o.model.provider == LLM_PROVIDER_ANTHROPIC;
	o.model.base_url = base_url ? base_url : mc.base_url ? mc.base_url :
			   getenv(anthropic ? "ANTHROPIC_BASE_URL" : "OPENAI_BASE_URL");
	if (!o.model.base_url)
		o.model.base_url = anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1";
	o.model.model = model ? model : mc.model ? mc.model : getenv("IRONCLAW_MODEL");
	if (!o.model.model || !o.model.model[0]) {
		fprintf(stderr, "ironclaw run: no model (hint: --model NAME, or \"model\": {\"model\": ...} in %s)\n",
			cfg_path ? cfg_path : "the config file");
		goto out;
	}
	const char *key_env = mc.key_env ? mc.key_env : anthropic ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
	o.model.api_key = getenv(key_env);
	int public_endpoint = strstr(o.model.base_url, "api.openai.com") || strstr(o.model.base_url, "api.anthropic.com");
	if (public_endpoint && (!o.model.api_key || !o.model.api_key[0])) {
		fprintf(stderr, "ironclaw run: %s is not set (hint: export %s=..., or point --base-url at a local server)\n",
			key_env, key_env);
		goto out;
	}
	o.model.stream = no_stream ? 0 : mc.stream >= 0 ? mc.stream : 1;
	o.model.connect_timeout_ms = mc.connect_s * 1000;
	o.model.first_byte_timeout_ms = mc.first_byte_s * 1000;
	o.model.total_timeout_ms = mc.total_s * 1000;
	if (!approve || !strcmp(approve, "ask"))
		o.approval.mode = approve ? APPROVAL_MODE_ASK : APPROVAL_MODE_DEFAULT;
	else if (!strcmp(approve, "deny"))
		o.approval.mode = APPROVAL_MODE_DENY;
	else if (!strcmp(approve, "yes"))
		o.approval.mode = APPROVAL_MODE_YES;
	else {
		fprintf(stderr, "ironclaw run: --approve takes ask, deny or yes, not '%s'\n", approve);
		goto out;
	}
	if (o.approval.approver)
		o.approval.mode = APPROVAL_MODE_APPROVER;
	if (o.workspace && access(o.workspace, R_OK | X_OK) < 0) {
		fprintf(stderr, "ironclaw run: cannot read the workspace %s: %s\n", o.workspace, strerror(errno));
		goto out;
	}
	o.config_path = cfg_path && access(cfg_path, R_OK) == 0 ? cfg_path : NULL;
	if (n_mcp && !o.config_path) {
		fprintf(stderr, "ironclaw run: --mcp needs a config file with mcpServers (%s is missing)\n",
			cfg_path ? cfg_path : "?");
		goto out;
	}
	o.mcp = mcp;
	o.n_mcp = n_mcp;
	o.mcp_all = n_mcp == 0;
	o.excludes = excludes;
	o.n_excludes = n_ex;
	o.progress = stderr;
	/* The VM's userland: --image, else the config's "image", else the
	 * busybox initramfs, with a word that a richer one exists. */
	if (!image_ref)
		image_ref = json_string_value(json_object_get(mc.root, "image"));
	/* The daemon's sandbox needs no root and may come from its warm pool; an
	 * image file given by path, a scratch disk or another backend is only
	 * ours to honour. An image name goes to the daemon, which resolves it in
	 * its own store (it runs as root): a name it lacks is its refusal, never
	 * a silent fall back to a VM made here. */
	if (!no_daemon && !(image_ref && strchr(image_ref, '/')) && !o.vm.disk_mib &&
	    backend == VM_BACKEND_QEMU && serve_client_alive(serve_client_socket())) {
		o.daemon_socket = serve_client_socket();
		o.daemon_image = image_ref;
	}
	if (image_ref && !o.daemon_socket) {
		if (image_lookup(image_ref, &image, &e) < 0) {
			fprintf(stderr, "ironclaw run: %s\n", e.msg);
			goto out;
		}
		o.vm.root_image = image.path;
	} else if (!image_ref && !o.json) {
		fprintf(stderr, "ironclaw run: the VM runs the small busybox image (no python3, git or compiler; "
			"hint: `ironclaw image build dev`, then --image dev or \"image\": \"dev\" in the config)\n");
	}

	if (!o.daemon_socket && geteuid() != 0) {
		fprintf(stderr, "ironclaw run: must run as root to make the VM here: the jail needs "
			"namespaces, cgroups and nftables (hint: start `ironclaw serve --group G` as "
			"root and join G, or run as root)\n");
		rc = AGENT_SANDBOX_FAILED;
		goto out;
	}
	if (!o.daemon_socket) {
		vm_gc(&e);   /* leftovers of VMs whose ironclaw was killed; best effort */
		err_clear(&e);
	}
	/* An explicit firecracker is taken as given, binary or not: its backend
	 * reports what is missing, and the run fails as a sandbox failure. */
	char backend_why[512];
	o.vm.backend = vm_backend_choose(backend, backend_why, sizeof(backend_why));
	if (backend != VM_BACKEND_QEMU && !o.json)
		fprintf(stderr, "ironclaw run: backend %s (%s)\n", o.vm.backend->name, backend_why);
	signal(SIGPIPE, SIG_IGN);
	uv_loop_t loop;
	uv_loop_init(&loop);
	uv_signal_t sigs[2];
	struct run_outcome outcome = { .code = AGENT_SANDBOX_FAILED, .json = o.json, .sigs = sigs };
	uv_signal_init(&loop, &sigs[0]);
	uv_signal_init(&loop, &sigs[1]);
	uv_signal_start(&sigs[0], run_on_signal, SIGINT);
	uv_signal_start(&sigs[1], run_on_signal, SIGTERM);
	if (agent_run(&loop, &o, run_on_done, &outcome, &run_current, &e) < 0) {
		fprintf(stderr, "ironclaw run: %s\n", e.msg);
		uv_close((uv_handle_t *)&sigs[0], NULL);
		uv_close((uv_handle_t *)&sigs[1], NULL);
		outcome.code = AGENT_SANDBOX_FAILED;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	rc = outcome.code;
out:
	image_info_free(&image);
	json_decref(mc.root);
	free(cfg_path);
	return rc;
}
