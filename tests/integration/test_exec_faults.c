/* Faults: a VMM killed mid-boot, a guest that sends garbage or an oversized
 * frame, a guest that ignores the command's timeout or goes quiet in the middle
 * of a frame, and an ironclaw killed with SIGKILL. The host must report each
 * quickly and clearly, survive, and leave nothing behind. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/harness.h"

static char tmpdir[64];

/* Other engineers and CI jobs boot VMs on the same machine, so counting
 * /run/ironclaw would race with them: each test looks for its own VM only,
 * whose id the debug log names. */
static void own_vm_id(const char *log, char *id, size_t n)
{
	const char *p = strstr(log, "vm-");
	cr_assert_not_null(p, "no VM id in the log: %s", log);
	size_t len = strspn(p, "vm-abcdefghijklmnopqrstuvwxyz0123456789");
	cr_assert_lt(len, n);
	memcpy(id, p, len);
	id[len] = '\0';
}

static void assert_own_vm_gone(const char *log)
{
	char id[64], path[128];
	own_vm_id(log, id, sizeof(id));
	snprintf(path, sizeof(path), "/run/ironclaw/%s", id);
	cr_assert_neq(access(path, F_OK), 0, "VM directory %s left behind", path);
}

static void faults_setup(void)
{
	setenv("IRONCLAW_LOG", "debug", 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ironclaw-faults-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void faults_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

/* Default initramfs + an appended cpio whose /init is the hostile script with
 * the given payloads (printf escapes). The kernel unpacks concatenated
 * archives in order, so the later /init wins. */
static void make_hostile_initrd2(const char *payload, const char *after, char *out, size_t len)
{
	snprintf(out, len, "%s/hostile.cpio", tmpdir);
	char cmd[8192];
	snprintf(cmd, sizeof(cmd),
		 "set -e; d=%s/overlay; mkdir -p $d; "
		 "{ echo '#!/bin/sh'; printf '%%s\\n' 'HOSTILE_PAYLOAD=\"%s\"' 'HOSTILE_AFTER_REQUEST=\"%s\"'; "
		 "cat %s/tests/data/guests/hostile-init.sh; } > $d/init; "
		 "chmod 755 $d/init; cp %s/build/image/initramfs.cpio %s; "
		 "(cd $d && echo init | cpio -o -H newc --quiet) >> %s",
		 tmpdir, payload, after, harness_root(), harness_root(), out, out);
	cr_assert_eq(system(cmd), 0, "could not build the hostile initramfs");
}

static void make_hostile_initrd(const char *payload, char *out, size_t len)
{
	make_hostile_initrd2(payload, "", out, len);
}

/* printf escapes for one frame holding json (every byte as \ooo, so nothing
 * needs quoting on the way into the guest's shell); with cut > 0, only the
 * first cut bytes of the frame. */
static void frame_escapes(const char *json, size_t cut, char *out, size_t len)
{
	size_t n = strlen(json), o = 0;
	unsigned char frame[512];
	cr_assert_lt(n + 4, sizeof(frame));
	frame[0] = frame[1] = 0;
	frame[2] = (unsigned char)(n >> 8);
	frame[3] = (unsigned char)n;
	memcpy(frame + 4, json, n);
	size_t total = cut ? cut : n + 4;
	for (size_t i = 0; i < total; i++) {
		cr_assert_lt(o + 5, len);
		o += (size_t)snprintf(out + o, len - o, "\\%03o", frame[i]);
	}
	out[o] = '\0';
}

static void run_hostile(const char *payload, const char *expect)
{
	char initrd[256];
	make_hostile_initrd(payload, initrd, sizeof(initrd));
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--initrd", initrd, "--", "true", NULL };
	struct run_result r;
	cr_assert_eq(harness_run(argv, NULL, 0, 120000, &r), 0);
	cr_assert_not(r.timed_out, "host hung on a hostile guest; stderr: %s", r.err);
	cr_assert_eq(r.exit_code, 125, "exit %d; stderr: %s", r.exit_code, r.err);
	cr_assert(strstr(r.err, expect), "stderr lacks '%s': %s", expect, r.err);
	cr_assert_eq(WIFSIGNALED(r.status), 0, "ironclaw crashed");
	assert_own_vm_gone(r.err);
	pid_t pids[4];
	cr_assert_eq(harness_find_processes("qemu-system-x86_64", getpid(), pids, 4), 0,
		     "QEMU left running");
	harness_result_free(&r);
}

#define HELLO "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"version\":2,\"kernel\":\"hostile\"}}"
#define STARTED "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"pid\":42}}"

/* `ironclaw exec --timeout 4 -- sleep 100` against a guest that starts the
 * command (as far as the host can tell) and then never ends it: the host's own
 * deadline must end the run with 124. */
static void run_never_stops(const char *after)
{
	char hello[2048], initrd[256];
	frame_escapes(HELLO, 0, hello, sizeof(hello));
	make_hostile_initrd2(hello, after, initrd, sizeof(initrd));
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--timeout", "4", "--initrd", initrd,
			 "--", "sleep", "100", NULL };
	struct run_result r;
	double t0 = harness_now_ms();
	cr_assert_eq(harness_run(argv, NULL, 0, 120000, &r), 0);
	double took = harness_now_ms() - t0;
	cr_assert_not(r.timed_out, "host hung on a guest that never stops; stderr: %s", r.err);
	cr_assert_eq(r.exit_code, 124, "exit %d; stderr: %s", r.exit_code, r.err);
	cr_assert(strstr(r.err, "did not stop the command"), "stderr: %s", r.err);
	/* Boot (seconds under TCG on a loaded host) + 4 s timeout + 2 s grace +
	 * destroy; a hang would reach the 120 s bound above. */
	cr_assert_lt(took, 60000, "took %.0f ms", took);
	assert_own_vm_gone(r.err);
	harness_result_free(&r);
}

TestSuite(faults, .init = faults_setup, .fini = faults_teardown);

Test(faults, guest_sends_oversized_frame)
{
	/* A length of 16 MiB + 1: rejected from the header alone. */
	run_hostile("\\001\\000\\000\\001", "over the 16 MiB limit");
}

Test(faults, guest_sends_garbage)
{
	run_hostile("\\000\\000\\000\\010garbage!", "not valid UTF-8 JSON");
}

Test(faults, guest_answers_an_unknown_id)
{
	run_hostile("\\000\\000\\000\\045{\\\"jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":99,\\\"result\\\":{}}",
		    "never sent");
}

Test(faults, guest_ignores_the_timeout)
{
	char after[2048];
	frame_escapes(STARTED, 0, after, sizeof(after));
	run_never_stops(after);
}

Test(faults, guest_sends_half_a_frame_and_goes_quiet)
{
	char after[4096], half[2048];
	frame_escapes(STARTED, 0, after, sizeof(after));
	frame_escapes("{\"jsonrpc\":\"2.0\",\"method\":\"exec.exit\"}", 12, half, sizeof(half));
	strncat(after, half, sizeof(after) - strlen(after) - 1);
	run_never_stops(after);
}

Test(faults, qemu_killed_mid_boot_fails_fast)
{
	char out[128], err[128];
	snprintf(out, sizeof(out), "%s/out", tmpdir);
	snprintf(err, sizeof(err), "%s/err", tmpdir);
	/* A cold boot: a template of this shape (`ironclaw snapshot create` on
	 * this machine) would make the guest ready before the kill lands. */
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--no-snapshot", "--", "true", NULL };
	pid_t pid = harness_spawn(argv, out, err);
	pid_t qemu = harness_await_process("qemu-system-x86_64", pid, 5000);
	cr_assert_gt(qemu, 0, "QEMU never started");
	usleep(300000); /* mid-boot: the guest needs seconds to reach userspace */
	double t0 = harness_now_ms();
	kill(qemu, SIGKILL);
	int status = harness_wait(pid, 10000, NULL);
	double waited = harness_now_ms() - t0;
	cr_assert_geq(status, 0, "ironclaw did not exit after QEMU died");
	char buf[16384] = "";
	FILE *f = fopen(err, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 125, "status %#x; stderr: %s", status, buf);
	/* The bound is 100 ms from QEMU's exit; allow scheduling noise on a
	 * 2-core host, but far less than any timeout would take. */
	cr_assert_lt(waited, 1000, "took %.0f ms to notice QEMU died", waited);
	cr_assert(strstr(buf, "QEMU was killed by signal 9"), "stderr: %s", buf);
	cr_assert(strstr(buf, "before the guest was ready"), "stderr: %s", buf);
	assert_own_vm_gone(buf);
}

Test(faults, sigkill_of_ironclaw_takes_the_vmm_down)
{
	char out[128], err[128];
	snprintf(out, sizeof(out), "%s/out", tmpdir);
	snprintf(err, sizeof(err), "%s/err", tmpdir);
	char *argv[] = { (char *)harness_ironclaw(), "exec", "--", "sleep", "600", NULL };
	pid_t pid = harness_spawn(argv, out, err);
	pid_t qemu = harness_await_process("qemu-system-x86_64", pid, 5000);
	cr_assert_gt(qemu, 0, "QEMU never started");
	char log[16384] = "";
	for (int i = 0; i < 500 && !strstr(log, "vm-"); i++) {
		FILE *lf = fopen(err, "r");
		if (lf) {
			log[fread(log, 1, sizeof(log) - 1, lf)] = '\0';
			fclose(lf);
		}
		if (!strstr(log, "vm-"))
			usleep(10000); /* the log line follows the spawn by microseconds */
	}
	kill(pid, SIGKILL);
	harness_wait(pid, 5000, NULL);
	int alive = 1;
	for (int i = 0; i < 300 && alive; i++) {
		alive = kill(qemu, 0) == 0;
		char path[64], state[256] = "";
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)qemu);
		FILE *f = fopen(path, "r");
		if (f) {
			if (fgets(state, sizeof(state), f) && strstr(state, ") Z "))
				alive = 0; /* a zombie waiting for its reaper is dead */
			fclose(f);
		}
		if (alive)
			usleep(10000);
	}
	cr_assert_not(alive, "QEMU outlived the ironclaw that started it");
	/* The next ironclaw run cleans up what the killed one could not. */
	char *gc_argv[] = { (char *)harness_ironclaw(), "exec", "--", "true", NULL };
	struct run_result r;
	cr_assert_eq(harness_run(gc_argv, NULL, 0, 120000, &r), 0);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
	assert_own_vm_gone(log);
	harness_result_free(&r);
}
