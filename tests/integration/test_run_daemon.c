/* `ironclaw run` over the daemon (issue 10, "Ordinary users"): a real
 * `ironclaw serve --group G` on a temp socket, and `ironclaw run` started as
 * an unprivileged uid in G (fork, setgroups, setgid, setuid to a uid and gid
 * no account uses), against aimock (tests/peers/aimock/run-daemon.json, whose
 * steps are gated on the previous tool result, so a result that did not reach
 * the model fails the run). The task edits a file and creates one: the applied
 * files have the content the model wrote and belong to that uid, not root; the
 * VM was the daemon's, and nothing of it is left afterwards. A denied run
 * leaves the workspace byte for byte as it was. The workspace endpoints
 * (PUT/GET /v1/sandboxes/{id}/workspace) are checked against docs/api.yaml. */
#include "test_run_util.h"
#include "test_serve_util.h"

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <time.h>

#include "image/image.h"

#define TASK "daemon: edit notes and add a file"

static struct rt t;
static struct serve_d d;
static uid_t U;
static gid_t G;

/* A uid and gid no account or group has (the range nobody hands out here). */
static void pick_ids(void)
{
	for (unsigned id = 62000 + (unsigned)getpid() % 1000; id < 65000; id++) {
		if (!getpwuid(id) && !getgrgid(id)) {
			U = id;
			G = id;
			return;
		}
	}
	cr_assert_fail("no unused uid in 62000-65000");
}

/* The ironclaw the user runs (sb_binary_for: the checkout's, or a copy in
 * the user's own tree when U cannot walk to the checkout). */
static char user_bin[600];
static int user_bin_copied;

static void setup_with(char *const *extra)
{
	rt_setup(&t, NULL);
	rt_mock(&t, "run-daemon.json");
	pick_ids();
	/* The user's own tree: the workspace, the config, the runs directory. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "chown -R %u:%u '%s'", (unsigned)U, (unsigned)G, t.dir);
	cr_assert_eq(system(cmd), 0);
	sb_binary_for(U, G, t.dir, user_bin, sizeof(user_bin), &user_bin_copied);
	char gid[16];
	snprintf(gid, sizeof(gid), "%u", (unsigned)G);
	char *argv[8] = { "--group", gid, "--no-snapshot" };
	for (int i = 0; extra && extra[i] && i < 4; i++)
		argv[3 + i] = extra[i];
	serve_d_start(&d, argv);
}

static void setup(void)
{
	setup_with(NULL);
	cr_assert_eq(vmm_count(d.pid), 0);
}

/* A daemon that caps every TTL at 6 s: the run's keep-alive, which asks
 * for 120 s, renews on what it was given (every 2 s). */
static void setup_short_ttl(void)
{
	setup_with((char *[]){ "--max-ttl", "6", NULL });
}

/* A daemon whose image store holds the tests' ci-small (make image-test);
 * the user's own store (under its HOME) holds nothing. */
static void setup_images(void)
{
	char store[IMAGE_PATH_MAX];
	snprintf(store, sizeof(store), "%s/build/images", harness_root());
	setenv("IRONCLAW_IMAGES", store, 1);
	struct image_info info;
	if (image_lookup("ci-small", &info, NULL) < 0)
		cr_skip_test("no ci-small image (run `make image-test` first)");
	image_info_free(&info);
	setup_with(NULL);
	unsetenv("IRONCLAW_IMAGES");   /* the daemon has it; the user does not */
}

/* A daemon with a warm pool of one. */
static void setup_pool(void)
{
	setup_with((char *[]){ "--pool", "1", NULL });
}

static void teardown(void)
{
	serve_d_stop(&d);
	json_decref(d.doc);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.dir);
	cr_assert_eq(system(cmd), 0);
	rt_teardown(&t);
}

TestSuite(run_daemon, .init = setup, .fini = teardown, .timeout = 600);

struct as_user {
	int code;       /* exit status, or -1 */
	char *out, *err;
};

static int stay_root;   /* run_as_user keeps root (the pool test) */

/* Starts `ironclaw ARGS...` as U:G (G its only group), stdin /dev/null, with
 * the daemon's socket in $IRONCLAW_SOCKET; stdout and stderr to files in the
 * daemon's directory. */
static pid_t spawn_as_user(char *const *args)
{
	char *argv[RT_ARGS_MAX + 2];
	int n = 0;
	argv[n++] = stay_root ? (char *)harness_ironclaw() : user_bin;
	for (size_t i = 0; args[i] && n < RT_ARGS_MAX; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	char op[160], ep[160];
	snprintf(op, sizeof(op), "%s/user.out", d.dir);
	snprintf(ep, sizeof(ep), "%s/user.err", d.dir);
	pid_t p = fork();
	cr_assert_geq(p, 0);
	if (p == 0) {
		int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);
		if (o < 0 || e < 0 || in < 0)
			_exit(97);
		dup2(in, 0);
		dup2(o, 1);
		dup2(e, 2);
		gid_t groups[1] = { G };
		if (!stay_root && (setgroups(1, groups) || setgid(G) || setuid(U) || getuid() != U))
			_exit(99);
		setenv("IRONCLAW_SOCKET", d.sock, 1);
		setenv("HOME", t.dir, 1);
		if (user_bin_copied && !stay_root) {
			/* A coverage build's counters: where the copy may write them. */
			char gcov[700];
			snprintf(gcov, sizeof(gcov), "%s/gcov", t.dir);
			setenv("GCOV_PREFIX", gcov, 1);
		}
		if (chdir(t.dir) < 0)
			_exit(96);
		execv(argv[0], argv);
		_exit(98);
	}
	return p;
}

static struct as_user wait_user(pid_t p, const char *what)
{
	char op[160], ep[160];
	snprintf(op, sizeof(op), "%s/user.out", d.dir);
	snprintf(ep, sizeof(ep), "%s/user.err", d.dir);
	struct as_user r = { .code = -1 };
	int st = harness_wait(p, RT_RUN_MS, NULL);
	cr_assert_geq(st, 0, "ironclaw %s did not finish", what);
	r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.out = rt_read(op);
	r.err = rt_read(ep);
	cr_assert(r.out && r.err);
	return r;
}

static struct as_user run_as_user(char *const *args)
{
	return wait_user(spawn_as_user(args), args[0]);
}

static void as_user_free(struct as_user *r)
{
	free(r->out);
	free(r->err);
}

static pid_t spawn_task(const char *approve, const char *task)
{
	static char base[160];
	snprintf(base, sizeof(base), "%s/v1", t.mock.url);
	return spawn_as_user((char *[]){ "run", "--workspace", t.ws, "--provider", "openai",
					 "--base-url", base, "--model", "test-model", "--approve",
					 (char *)approve, (char *)task, NULL });
}

static struct as_user run_task(const char *approve)
{
	return wait_user(spawn_task(approve, TASK), "run");
}

/* The VM the progress line names ("sandbox NAME ready: MADE, via daemon"). */
static void sandbox_of(const char *err, char *vm, size_t n, char *made, size_t mn)
{
	const char *p = strstr(err, "sandbox ");
	vm[0] = made[0] = 0;
	while (p && !strstr(p, " ready: "))
		p = strstr(p + 1, "sandbox ");
	cr_assert(p, "no sandbox line: %s", err);
	sscanf(p, "sandbox %63s ready: %15[a-z],", vm, made);
	(void)n;
	(void)mn;
}

/* After a run: the daemon holds no sandbox, no VMM runs under it, the VM's
 * directory is gone, and the sandbox was deleted (not left to expire). A 204
 * to DELETE comes before the teardown ends, so first wait for the daemon to
 * say none is still being torn down. */
static void nothing_left(const char *vm, double deleted_before)
{
	sb_wait_torn_down(&d);
	struct http_ans a;
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 0, "left: %s", a.body);
	http_free(&a);
	cr_assert_eq(vmm_count(d.pid), 0, "a VMM outlived the run");
	cr_assert_not(vm_dir_exists(vm), "/run/ironclaw/%s is left", vm);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_deleted_total"), deleted_before + 1);
}

/* The whole path: a group member without root runs the task; the applied
 * files are the model's and the user's. */
Test(run_daemon, group_member_runs_and_owns_the_applied_files)
{
	double deleted = metric(&d, "ironclaw_sandboxes_deleted_total");
	struct as_user r = run_task("yes");
	cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
	cr_expect_str_eq(r.out, "Edited notes.txt and made made/new.txt.\n");
	if (getenv("RUN_DAEMON_SHOW"))
		fprintf(stderr, "%s", r.err);
	char vm[64], made[16];
	sandbox_of(r.err, vm, sizeof(vm), made, sizeof(made));
	cr_assert(strstr(r.err, ", via daemon ("), "the sandbox came from the daemon: %s", r.err);
	cr_assert(!strcmp(made, "cold") || !strcmp(made, "pool") || !strcmp(made, "snapshot"),
		  "made: %s", made);
	/* The applied files: the content the model wrote ... */
	char *notes = rt_readf(t.ws, "notes.txt"), *made_f = rt_readf(t.ws, "made/new.txt");
	cr_assert_str_eq(notes, "hello\nfrom the daemon\n");
	cr_assert(made_f, "made/new.txt was not applied: %s", r.err);
	cr_assert_str_eq(made_f, "made over the daemon\n");
	free(notes);
	free(made_f);
	/* ... owned by the user who ran it, not by root (the daemon's uid). */
	const char *paths[] = { "made", "made/new.txt", "notes.txt" };
	for (size_t i = 0; i < 3; i++) {
		char p[256];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", t.ws, paths[i]);
		cr_assert_eq(lstat(p, &st), 0, "%s", p);
		cr_assert_eq(st.st_uid, U, "%s belongs to uid %u, not the user's %u", paths[i],
			     (unsigned)st.st_uid, (unsigned)U);
		cr_assert_eq(st.st_gid, G, "%s: gid %u", paths[i], (unsigned)st.st_gid);
	}
	/* Every tool result reached the model, and the in-VM files were read back. */
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	cr_assert_eq(aimock_journal_count(j, "/v1/chat/completions"), 4, "%s", r.err);
	const char *r1 = rt_tool_result(j, "d1"), *r3 = rt_tool_result(j, "d3");
	cr_assert(r1 && strstr(r1, "replaced 1 occurrence"), "%s", r1);
	cr_assert(r3 && strstr(r3, "hello\nfrom the daemon\nmade over the daemon\nd3-done"), "%s", r3);
	json_decref(j);
	nothing_left(vm, deleted);
	as_user_free(&r);

	/* exec as the same user goes through the daemon too. */
	r = run_as_user((char *[]){ "exec", "--", "sh", "-c", "echo exec-as-user", NULL });
	cr_assert_eq(r.code, 0, "exec: %s", r.err);
	cr_assert_str_eq(r.out, "exec-as-user\n");
	as_user_free(&r);
	/* --no-daemon: the in-process VM, which this user may not make. */
	r = run_as_user((char *[]){ "run", "--no-daemon", "--model", "m", "--base-url",
				    "http://127.0.0.1:9/v1", TASK, NULL });
	cr_assert_eq(r.code, 125, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "must run as root"), "%s", r.err);
	as_user_free(&r);
}

/* Denied over the daemon: exit 3 and the tree byte for byte as it was. The
 * workspace holds 6 MiB more, so the copy-in is several chunks (the upload
 * pauses while the pool reads the next) and the copy-out a stream of many. */
Test(run_daemon, denied_run_leaves_the_workspace_untouched)
{
	double deleted = metric(&d, "ironclaw_sandboxes_deleted_total");
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "head -c 6291456 /dev/urandom > '%s/big.bin' && chown %u:%u '%s/big.bin'",
		 t.ws, (unsigned)U, (unsigned)G, t.ws);
	cr_assert_eq(system(cmd), 0);
	char *before = rt_tree(t.ws);
	struct as_user r = run_task("deny");
	cr_assert_eq(r.code, 3, "exit %d; stderr:\n%s", r.code, r.err);
	cr_assert(strstr(r.err, ", via daemon ("), "%s", r.err);
	cr_assert(strstr(r.err, "workspace copied in: 6 entries, 6.0 MiB"), "%s", r.err);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "denied: the workspace is unchanged byte for byte");
	char vm[64], made[16];
	sandbox_of(r.err, vm, sizeof(vm), made, sizeof(made));
	nothing_left(vm, deleted);
	free(before);
	free(after);
	as_user_free(&r);
}

static char *slurp(const char *path, size_t *n)
{
	char *p = NULL;
	cr_assert_eq(io_read_file(path, 64u << 20, &p, n), 0, "%s", path);
	return p;
}

/* The endpoints themselves, every answer checked against docs/api.yaml: a tar
 * in, the same files out; a body that is not a tar is the unpacker's 400; an
 * unknown sandbox is a 404. */
Test(run_daemon, workspace_endpoints_follow_the_api)
{
	struct http_ans a;
	char cmd[2048], path[128], tarp[160], outd[160];
	snprintf(tarp, sizeof(tarp), "%s/in.tar", d.dir);
	snprintf(outd, sizeof(outd), "%s/out", d.dir);
	snprintf(cmd, sizeof(cmd), "tar -C '%s' -cf '%s' notes.txt src run.sh && mkdir '%s'",
		 t.ws, tarp, outd);
	cr_assert_eq(system(cmd), 0);
	size_t n = 0;
	char *tar = slurp(tarp, &n);
	char *id = sb_create(&d, "{}", NULL, 0);
	json_t *sj = sb_get_json(&d, id);
	cr_assert_str_eq(json_string_value(json_object_get(sj, "state")), "ready");
	json_decref(sj);
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/workspace", id);
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/workspace", tar, (long)n, "application/x-tar", &a);
	cr_assert_eq(a.status, 204, "%ld %s", a.status, a.body);
	http_free(&a);
	int code;
	char *ls = sb_exec(&d, id, "[\"cat\",\"/workspace/notes.txt\",\"/workspace/src/main.c\"]", &code,
			   NULL);
	cr_assert_eq(code, 0);
	cr_assert_str_eq(ls, "hello\nint main(void) { return 0; }\n");
	free(ls);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}/workspace", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 200, "%ld %s", a.status, a.body);
	cr_assert_str_eq(a.ctype, "application/x-tar");
	snprintf(tarp, sizeof(tarp), "%s/out.tar", d.dir);
	FILE *f = fopen(tarp, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(a.body, 1, a.len, f), a.len);
	fclose(f);
	http_free(&a);
	snprintf(cmd, sizeof(cmd), "tar -C '%s' -xf '%s/out.tar' && cmp '%s/notes.txt' '%s/notes.txt' && "
		 "cmp '%s/run.sh' '%s/run.sh' && test -x '%s/run.sh'", outd, d.dir, t.ws, outd, t.ws,
		 outd, outd);
	cr_assert_eq(system(cmd), 0, "the archive out has the files that went in");
	/* Not a tar: the guest's unpacker refuses it. */
	static const char junk[] = "this is not a tar archive, not even close; 0123456789abcdef";
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/workspace", junk, sizeof(junk) - 1,
		"application/x-tar", &a);
	cr_assert_eq(a.status, 400, "%ld %s", a.status, a.body);
	cr_assert(strstr(a.body, "unpacker"), "%s", a.body);
	http_free(&a);
	/* The sandbox is still usable after the refusal. */
	ls = sb_exec(&d, id, "[\"true\"]", &code, NULL);
	cr_assert_eq(code, 0);
	free(ls);
	/* 24 MiB: three times the exec's stdin queue, so the body waits on the
	 * guest's credit (the connection suspended and resumed) and still
	 * arrives byte for byte. */
	snprintf(cmd, sizeof(cmd), "mkdir '%s/big' && head -c 25165824 /dev/urandom > '%s/big/blob' && "
		 "tar -C '%s/big' -cf '%s/big.tar' blob && sha256sum '%s/big/blob' | cut -c1-64 > '%s/big.sha'",
		 d.dir, d.dir, d.dir, d.dir, d.dir, d.dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(tarp, sizeof(tarp), "%s/big.tar", d.dir);
	size_t bn = 0;
	char *big = slurp(tarp, &bn);
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/workspace", big, (long)bn, "application/x-tar", &a);
	cr_assert_eq(a.status, 204, "%ld %s", a.status, a.body);
	http_free(&a);
	free(big);
	ls = sb_exec(&d, id, "[\"sh\",\"-c\",\"sha256sum /workspace/blob | cut -c1-64\"]", &code, NULL);
	cr_assert_eq(code, 0);
	snprintf(tarp, sizeof(tarp), "%s/big.sha", d.dir);
	size_t sn = 0;
	char *sha = slurp(tarp, &sn);
	cr_assert_str_eq(ls, sha, "the 24 MiB file arrived byte for byte");
	free(sha);
	free(ls);
	sb_delete(&d, id);
	http_do(&d, "PUT", path, "/v1/sandboxes/{id}/workspace", tar, (long)n, "application/x-tar", &a);
	cr_assert_eq(a.status, 404, "%ld %s", a.status, a.body);
	http_free(&a);
	http_do(&d, "GET", path, "/v1/sandboxes/{id}/workspace", NULL, 0, NULL, &a);
	cr_assert_eq(a.status, 404, "%ld %s", a.status, a.body);
	http_free(&a);
	free(id);
	free(tar);
	cr_assert_eq(vmm_count(d.pid), 0);
}

/* With a warm pool the run's sandbox is a pool VM, and the progress line says
 * so; it is used once (deleted after the run, never back in the pool). This
 * one runs as root: root takes the daemon's sandbox too when one answers (the
 * same rule as exec), and its counters reach the coverage report (a process
 * of another uid cannot write build/cov's). */
Test(run_daemon, a_pool_vm_serves_the_run, .init = setup_pool)
{
	stay_root = 1;
	/* The event: the pool has its VM ready (polled: no event crosses the
	 * process boundary for it). */
	for (int i = 0; i < 3000 && metric(&d, "ironclaw_pool_ready") < 1; i++)
		usleep(20000);
	cr_assert_eq(metric(&d, "ironclaw_pool_ready"), 1, "the pool did not fill");
	double deleted = metric(&d, "ironclaw_sandboxes_deleted_total");
	struct as_user r = run_task("yes");
	cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
	cr_assert(strstr(r.err, " ready: pool, via daemon ("), "%s", r.err);
	char *made_f = rt_readf(t.ws, "made/new.txt");
	cr_assert_str_eq(made_f, "made over the daemon\n");
	free(made_f);
	struct http_ans a;
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 0, "left: %s", a.body);
	http_free(&a);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_deleted_total"), deleted + 1);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_created_total{made=\"pool\"}"), 1);
	as_user_free(&r);
}

/* Ctrl-C while a command runs in the daemon's sandbox: the run stops (exit 3,
 * nothing applied), the command in flight ends with the sandbox, and the
 * sandbox is deleted, not left to its TTL. */
Test(run_daemon, an_interrupted_run_deletes_its_sandbox)
{
	double deleted = metric(&d, "ironclaw_sandboxes_deleted_total");
	char *before = rt_tree(t.ws);
	pid_t p = spawn_task("yes", "daemon: a slow command");
	/* The event: the daemon started the command (the run's only exec: the
	 * workspace travels by PUT, not by exec). Polled: no event crosses the
	 * process boundary for it. */
	for (int i = 0; i < 6000 && metric(&d, "ironclaw_execs_total") < 1; i++)
		usleep(20000);
	cr_assert_eq(metric(&d, "ironclaw_execs_total"), 1, "the command never started");
	struct http_ans a;
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	cr_assert_eq(json_array_size(json_object_get(a.json, "sandboxes")), 1, "%s", a.body);
	http_free(&a);
	cr_assert_eq(kill(p, SIGINT), 0);
	struct as_user r = wait_user(p, "run");
	cr_assert_eq(r.code, 3, "exit %d; stderr:\n%s", r.code, r.err);
	cr_assert(strstr(r.err, "interrupted"), "%s", r.err);
	char vm[64], made[16];
	sandbox_of(r.err, vm, sizeof(vm), made, sizeof(made));
	nothing_left(vm, deleted);
	char *after = rt_tree(t.ws);
	cr_assert_str_eq(after, before, "interrupted: nothing was applied");
	free(after);
	free(before);
	as_user_free(&r);
}

/* `exec --image NAME` as a group member goes through the daemon, which finds
 * NAME in its own store (the user's has none): python3 runs, which the
 * busybox image lacks. A name the daemon lacks is its 400 with a hint, exit
 * 125, never a fall back to a VM made here. */
Test(run_daemon, exec_and_run_with_an_image_go_through_the_daemon, .init = setup_images)
{
	double cold = metric(&d, "ironclaw_sandboxes_created_total{made=\"cold\"}");
	struct as_user r = run_as_user((char *[]){ "exec", "--image", "ci-small", "--", "python3",
						   "-c", "import sys; print(sys.version_info[0] * 14)",
						   NULL });
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_assert_str_eq(r.out, "42\n", "%s", r.err);
	as_user_free(&r);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_created_total{made=\"cold\"}"), cold + 1,
		     "the daemon made the VM");
	sb_wait_torn_down(&d);
	cr_assert_eq(vmm_count(d.pid), 0);

	r = run_as_user((char *[]){ "exec", "--image", "no-such-image", "--", "true", NULL });
	cr_assert_eq(r.code, 125, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "(400)"), "the daemon's answer: %s", r.err);
	cr_assert(strstr(r.err, "no-such-image"), "%s", r.err);
	cr_assert(strstr(r.err, "its own store") && strstr(r.err, "ironclaw image ls"), "%s", r.err);
	cr_assert_null(strstr(r.err, "must run as root"), "fell back to in-process: %s", r.err);
	as_user_free(&r);

	static char base[160];
	snprintf(base, sizeof(base), "%s/v1", t.mock.url);
	r = run_as_user((char *[]){ "run", "--workspace", t.ws, "--provider", "openai", "--base-url",
				    base, "--model", "test-model", "--image", "no-such-image", TASK,
				    NULL });
	cr_assert_neq(r.code, 0, "%s", r.err);
	cr_assert(strstr(r.err, "answered 400") && strstr(r.err, "its own store"), "%s", r.err);
	cr_assert_null(strstr(r.err, "must run as root"), "fell back to in-process: %s", r.err);
	as_user_free(&r);
	cr_assert_eq(metric(&d, "ironclaw_sandboxes"), 0);
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The run's sandbox lives on a short TTL that the run renews (PATCH) while it
 * lives: the sandbox outlives its first expiry and expires_at moves. After
 * `kill -9` of the CLI (no DELETE) it expires within one TTL and the daemon
 * destroys it with its VM. */
Test(run_daemon, a_killed_runs_sandbox_expires_in_one_short_ttl, .init = setup_short_ttl)
{
	double expired = metric(&d, "ironclaw_sandboxes_expired_total");
	pid_t p = spawn_task("yes", "daemon: a slow command");
	/* The event: the command (sleep 300) started. Polled, as above. */
	for (int i = 0; i < 6000 && metric(&d, "ironclaw_execs_total") < 1; i++)
		usleep(20000);
	cr_assert_eq(metric(&d, "ironclaw_execs_total"), 1, "the command never started");
	struct http_ans a;
	http_do(&d, "GET", "/v1/sandboxes", "/v1/sandboxes", NULL, 0, NULL, &a);
	json_t *sb = json_array_get(json_object_get(a.json, "sandboxes"), 0);
	cr_assert(sb, "%s", a.body);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sb, "labels"), "ironclaw")),
			 "run");
	cr_assert_leq(json_integer_value(json_object_get(sb, "ttl_s")), 6, "%s", a.body);
	char path[128], vm[64];
	snprintf(path, sizeof(path), "/v1/sandboxes/%s", json_string_value(json_object_get(sb, "id")));
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(sb, "vm")));
	double at0 = json_number_value(json_object_get(sb, "expires_at")), at = at0;
	cr_assert_gt(at0, 0, "%s", a.body);
	http_free(&a);
	/* Past its first expiry (and the sweep's second), the sandbox is still
	 * there, renewed. */
	while (wall_s() < at0 + 2) {
		http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
		cr_assert_eq(a.status, 200, "the live run's sandbox expired: %s", a.body);
		double v = json_number_value(json_object_get(a.json, "expires_at"));
		at = v > at ? v : at;
		http_free(&a);
		usleep(100000);
	}
	cr_assert_gt(at, at0 + 1, "expires_at never moved (%f, %f)", at0, at);
	cr_assert_eq(kill(p, SIGKILL), 0);
	int st;
	cr_assert_eq(waitpid(p, &st, 0), p);
	/* No DELETE comes now: the TTL takes it, within 6 s and the sweep's. */
	long status = 200;
	for (int i = 0; i < 600 && status == 200; i++) {
		http_do(&d, "GET", path, "/v1/sandboxes/{id}", NULL, 0, NULL, &a);
		status = a.status;
		http_free(&a);
		if (status == 200)
			usleep(50000);
	}
	cr_assert_eq(status, 404, "the killed run's sandbox did not expire within 30 s");
	cr_assert_eq(metric(&d, "ironclaw_sandboxes_expired_total"), expired + 1);
	sb_wait_torn_down(&d);
	cr_assert_eq(vmm_count(d.pid), 0, "a VMM outlived the expiry");
	cr_assert_not(vm_dir_exists(vm), "/run/ironclaw/%s is left", vm);
}
