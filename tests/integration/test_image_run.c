/* `ironclaw run --image`: the agent's commands run in a Debian image. aimock
 * is the model (tests/peers/aimock/image-tests.json): its second answer is
 * gated on the tool result containing "tools-ok", which only a VM with
 * python3 and git can print, so a run on the busybox image fails. The image is
 * `make image-test`'s (test_image.c builds it when run alone). */
#include "test_run_util.h"

#include "image/image.h"

static struct rt t;

static void setup(void)
{
	char store[IMAGE_PATH_MAX];
	snprintf(store, sizeof(store), "%s/build/images", harness_root());
	setenv("IRONCLAW_IMAGES", store, 1);
	struct image_info info;
	if (image_lookup("ci-small", &info, NULL) < 0)
		cr_skip_test("no ci-small image (run `make image-test` first)");
	image_info_free(&info);
	rt_setup(&t, NULL);
	rt_mock(&t, "image-tests.json");
}

static void teardown(void)
{
	rt_teardown(&t);
}

TestSuite(image_run, .init = setup, .fini = teardown, .timeout = 300);

Test(image_run, a_task_that_needs_python3)
{
	struct run_result r = rt_run(&t, "openai", "image: compute with python", "--image", "ci-small",
				     "--approve", "deny", NULL);
	cr_assert_eq(r.exit_code, 0, "exit %d; stderr:\n%s", r.exit_code, r.err);
	cr_assert_str_eq(r.out, "python3 says 42.\n", "%s", r.out);
	json_t *j = aimock_journal(&t.mock, NULL, NULL);
	cr_assert(j, "%s", t.mock.why);
	const char *res = rt_tool_result(j, "p1");
	cr_assert(res && strstr(res, "42") && strstr(res, "tools-ok"), "run_command result: %s", res);
	json_decref(j);
	harness_result_free(&r);
}

/* The same task on the default image: no python3, so the gated fixture never
 * matches and the run fails; and the hint about richer images is printed. */
Test(image_run, the_busybox_default_cannot_and_says_so)
{
	struct run_result r = rt_run(&t, "openai", "image: compute with python", "--approve", "deny", NULL);
	cr_assert_neq(r.exit_code, 0, "stdout: %s", r.out);
	cr_assert(strstr(r.err, "ironclaw image build dev"), "%s", r.err);
	harness_result_free(&r);
}
