/* A stand-in for the `firecracker` process in the backend's failure tests
 * (tests/integration/test_fc_backend.c), run by the real launcher in the real
 * jail under Firecracker's seccomp policy, as `firecracker --api-sock PATH
 * --id ID` would be. It is static, like Firecracker's release builds.
 *
 * It serves Firecracker's API on PATH the way Firecracker answers (204 for
 * accepted configuration, 400 with fault_message), logs each request to
 * /run/vm/console.log (where the backend points Firecracker's logger), and
 * follows /run/vm/peer-script, read when the first request arrives:
 *   "die N"         exit(1) when request N arrives, logging the monotonic time
 *                   of its exit first ("exit-at-ns <t>")
 *   "fault N MSG"   answer request N with 400 and fault_message MSG
 *   "hang"          accept and never answer
 * On PUT /snapshot/load it logs what it sees of the snapshot bound at
 * /vm/snapshot ("snapshot vmstate=readable mem=readable writable=no").
 * It cannot boot a guest: success paths are for the real-binary test. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void logf_line(const char *what, const char *detail)
{
	FILE *f = fopen("/run/vm/console.log", "a");
	if (!f)
		return;
	fprintf(f, "fc-peer: %s %s\n", what, detail);
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *api = NULL;
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--api-sock"))
			api = argv[i + 1];
	if (!api)
		return 2;
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", api);
	unlink(api);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 8))
		return 3;
	char script[256] = "";
	int loaded = 0;
	for (int idx = 0;; idx++) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return 4;
		if (!loaded++) {
			FILE *f = fopen("/run/vm/peer-script", "r");
			if (f) {
				if (!fgets(script, sizeof(script), f))
					script[0] = '\0';
				fclose(f);
			}
			script[strcspn(script, "\n")] = '\0';
		}
		char req[16384];
		size_t have = 0;
		while (have < sizeof(req) - 1) {
			ssize_t n = read(c, req + have, sizeof(req) - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			req[have] = '\0';
			char *end = strstr(req, "\r\n\r\n");
			char *cl = strcasestr(req, "content-length:");
			if (end && (!cl || have >= (size_t)(end + 4 - req) + strtoul(cl + 15, NULL, 10)))
				break;
		}
		req[have] = '\0';
		if (have == 0) {
			/* A connection that only checked the socket exists (the backend's). */
			close(c);
			idx--;
			continue;
		}
		char line[160];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(req, "\r\n"), req);
		logf_line("request", line);
		if (!strncmp(line, "PUT /snapshot/load ", 19)) {
			/* open, not access: the VMM's seccomp policy has no access(2). */
			int fv = open("/vm/snapshot/vmstate", O_RDONLY | O_CLOEXEC);
			int fm = open("/vm/snapshot/mem", O_RDONLY | O_CLOEXEC);
			int fw = open("/vm/snapshot/mem", O_WRONLY | O_CLOEXEC);
			char seen[128];
			snprintf(seen, sizeof(seen), "vmstate=%s mem=%s writable=%s", fv >= 0 ? "readable" : "missing",
				 fm >= 0 ? "readable" : "missing", fw >= 0 ? "yes" : "no");
			if (fv >= 0)
				close(fv);
			if (fm >= 0)
				close(fm);
			if (fw >= 0)
				close(fw);
			logf_line("snapshot", seen);
		}
		int n_at = -1;
		char msg[200] = "";
		if (!strcmp(script, "hang"))
			for (;;)   /* keeps c open, never answers (pause() is not in the policy) */
				accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (sscanf(script, "die %d", &n_at) == 1 && n_at == idx) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			char t[64];
			snprintf(t, sizeof(t), "%lld", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
			logf_line("exit-at-ns", t);
			_exit(1);
		}
		const char *resp = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
		char buf[512];
		if (sscanf(script, "fault %d %199[^\n]", &n_at, msg) == 2 && n_at == idx) {
			char body[300];
			int bl = snprintf(body, sizeof(body), "{\"fault_message\":\"%s\"}", msg);
			snprintf(buf, sizeof(buf),
				 "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
				 "Connection: close\r\n\r\n%s", bl, body);
			resp = buf;
		}
		if (send(c, resp, strlen(resp), MSG_NOSIGNAL) < 0)
			return 5;
		close(c);
	}
}
