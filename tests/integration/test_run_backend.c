/* `ironclaw run --backend`: the option parses as on `ironclaw exec`, a wrong
 * value is a usage error naming the choices, --help lists it, and an explicit
 * `--backend firecracker` where no firecracker binary exists reaches the
 * Firecracker backend (not QEMU) and ends the run as a sandbox failure (125)
 * with the backend's own reason (VM directories are machine-wide and others
 * boot VMs meanwhile: test_fc_backend checks cleanup per VM). The model endpoint
 * is a port nobody listens on: the run must end on the sandbox, never on it. */
#include "test_run_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static struct rt t;

static void setup(void)
{
	rt_setup(&t, NULL);
	/* A port that was free a moment ago: bind, read it, close. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
	close(s);
	snprintf(t.mock.url, sizeof(t.mock.url), "http://127.0.0.1:%d", ntohs(a.sin_port));
}

static void teardown(void)
{
	rt_teardown(&t);
}

TestSuite(run_backend, .init = setup, .fini = teardown, .timeout = 120);

Test(run_backend, help_lists_the_option)
{
	char *argv[] = { (char *)harness_ironclaw(), "run", "--help", NULL };
	struct run_result r;
	cr_assert_eq(harness_run(argv, "", 0, 30000, &r), 0);
	cr_assert_eq(r.exit_code, 0);
	cr_expect(strstr(r.out, "--backend B") && strstr(r.out, "firecracker") && strstr(r.out, "auto"),
		  "--help: %s", r.out);
	harness_result_free(&r);
}

Test(run_backend, an_unknown_backend_is_a_usage_error_naming_the_choices)
{
	struct run_result r = rt_run(&t, "openai", "hi", "--backend", "xen", NULL);
	cr_assert_eq(r.exit_code, 2, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect(strstr(r.err, "unknown backend 'xen'") && strstr(r.err, "qemu, firecracker or auto"),
		  "stderr: %s", r.err);
	harness_result_free(&r);
}

Test(run_backend, firecracker_without_a_binary_fails_with_the_reason_and_125)
{
	/* Wherever a firecracker binary exists, this names one that does not. */
	setenv("IRONCLAW_FIRECRACKER", "/nonexistent/ironclaw-test/firecracker", 1);
	struct run_result r = rt_run(&t, "openai", "hi", "--approve", "deny", "--backend", "firecracker", NULL);
	unsetenv("IRONCLAW_FIRECRACKER");
	cr_assert_eq(r.exit_code, 125, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_expect(strstr(r.err, "backend firecracker"), "the choice is said: %s", r.err);
	cr_expect(strstr(r.err, "no firecracker binary") && strstr(r.err, "IRONCLAW_FIRECRACKER"),
		  "the reason, with the fix: %s", r.err);
	cr_expect_eq(r.out_len, 0);
	harness_result_free(&r);
}
