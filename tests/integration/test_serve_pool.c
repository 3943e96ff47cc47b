/* The warm pool beyond the default shape: `--pool-image NAME` keeps VMs of an
 * image of the local store ready beside the default ones, each lane restored
 * from its own template (per image, cpus and memory); `POST /v1/sandboxes
 * {"image": NAME or id}` takes one; an unknown image or a path is a 400
 * naming the field. The image is `make image-test`'s ci-small (python3 in a
 * Debian root; the busybox default has none), found as test_image_run finds
 * it. Each run has its own template cache (XDG_CACHE_HOME under build/), kept
 * between runs so that only the first one builds the templates; the KVM
 * verdict in it is not kept (see setup). Waits poll
 * /metrics: no event tells another process that a pool VM is ready. */
#include "test_serve_util.h"
#include "image/image.h"
#include "integration/lib/vmrun.h"

static char image_id[IMAGE_ID_HEX + 1];

static void setup(void)
{
	char store[4200], cache[4200];
	snprintf(store, sizeof(store), "%s/build/images", harness_root());
	setenv("IRONCLAW_IMAGES", store, 1);
	struct image_info info;
	if (image_lookup("ci-small", &info, NULL) < 0)
		cr_skip_test("no ci-small image (run `make image-test` first)");
	snprintf(image_id, sizeof(image_id), "%s", info.id);
	image_info_free(&info);
	snprintf(cache, sizeof(cache), "%s/build/test-cache/serve-pool", harness_root());
	setenv("XDG_CACHE_HOME", cache, 1);
	/* No cached KVM verdict: the two lanes' template lookups then probe at
	 * once on the thread pool, which is how a probe shared across threads
	 * crashed the daemon (src/vm/accel.c; one probe boot per run). */
	char accel[4300];
	snprintf(accel, sizeof(accel), "%s/ironclaw/accel.json", cache);
	unlink(accel);
	vmrun_use_checkout_image();
}

TestSuite(serve_pool, .init = setup, .timeout = 900);

static void pool_wait_ready(struct serve_d *d, double want)
{
	for (int i = 0; i < 6000 && metric(d, "ironclaw_pool_ready") < want; i++) {
		cr_assert_eq(metric(d, "ironclaw_pool_failures_total"), 0, "a pool VM failed; see %s",
			     d->log);
		usleep(100000);
	}
	cr_assert_geq(metric(d, "ironclaw_pool_ready"), want, "the pool never filled; see %s",
		      d->log);
}

static void create_refused(struct serve_d *d, const char *body, const char *why)
{
	struct http_ans a;
	http_do(d, "POST", "/v1/sandboxes", "/v1/sandboxes", body, -1, NULL, &a);
	cr_assert_eq(a.status, 400, "%s: %ld %s", body, a.status, a.body);
	cr_assert_str_eq(json_string_value(json_object_get(a.json, "field")), "image", "%s",
			 a.body);
	cr_assert(strstr(a.body, why), "%s: %s", body, a.body);
	http_free(&a);
}

Test(serve_pool, image_lane_beside_the_default_and_bad_images_refused)
{
	struct serve_d d;
	serve_d_start(&d, (char *[]){ "--pool", "1", "--pool-image", "ci-small", "--memory", "256",
				      NULL });
	/* One ready VM per lane: the default's and ci-small's. */
	pool_wait_ready(&d, 2);
	char made[16], *out;
	int code;
	char *img = sb_create(&d, "{\"image\":\"ci-small\"}", made, sizeof(made));
	cr_assert_str_eq(made, "pool", "the image lane's VM was not taken");
	json_t *j = sb_get_json(&d, img);
	cr_assert_str_eq(json_string_value(json_object_get(j, "image")), "ci-small");
	char vm[64];
	snprintf(vm, sizeof(vm), "%s", json_string_value(json_object_get(j, "vm")));
	json_decref(j);
	/* Its root is the image's: python3 is there. */
	out = sb_exec(&d, img, "[\"python3\",\"-c\",\"print(6*7)\"]", &code, NULL);
	cr_assert_eq(code, 0, "python3 in the image sandbox: %d", code);
	cr_assert_str_eq(out, "42\n");
	free(out);
	/* The default lane still hands out the busybox image, which has none. */
	char *def = sb_create(&d, "{}", made, sizeof(made));
	cr_assert_str_eq(made, "pool", "the default lane's VM was not taken");
	out = sb_exec(&d, def, "[\"sh\",\"-c\",\"command -v python3 || echo none\"]", &code, NULL);
	cr_assert_str_eq(out, "none\n", "the default sandbox got the image's root");
	free(out);
	/* By id, the same image. */
	char body[256];
	snprintf(body, sizeof(body), "{\"image\":\"%s\"}", image_id);
	char *byid = sb_create(&d, body, NULL, 0);
	out = sb_exec(&d, byid, "[\"python3\",\"-c\",\"print(1)\"]", &code, NULL);
	cr_assert_eq(code, 0);
	free(out);
	/* Unknown names and ids, and paths (the daemon runs as root: a client
	 * never names a file for it to boot), are 400s naming the field. */
	create_refused(&d, "{\"image\":\"no-such-image\"}", "no image named 'no-such-image'");
	create_refused(&d, "{\"image\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
		       "no image with id");
	char path_body[4400];
	snprintf(path_body, sizeof(path_body), "{\"image\":\"%s/build/images/ids/%s/rootfs.ext4\"}",
		 harness_root(), image_id);
	create_refused(&d, path_body, "not a path");
	create_refused(&d, "{\"image\":7}", "must be a string");
	sb_delete(&d, img);
	sb_delete(&d, def);
	sb_delete(&d, byid);
	free(img);
	free(def);
	free(byid);
	sb_wait_torn_down(&d);
	cr_assert_not(vm_dir_exists(vm), "the image sandbox's VM left %s", vm);
	/* Both lanes refill, each from its own template once built. */
	pool_wait_ready(&d, 2);
	serve_d_stop(&d);
	cr_assert_eq(vmm_count(d.pid), 0, "a VMM outlived the daemon");
}
