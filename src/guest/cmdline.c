/* The agent's options on the kernel command line. The host writes them, but
 * they end up as arguments to busybox ip, so they are checked character by
 * character, and a malformed one is refused as a whole.
 *
 *   ironclaw.poweroff=1          power off right after the mounts (boot bench)
 *   ironclaw.ip=ADDR/PREFIX      configure eth0 with busybox ip
 *   ironclaw.gw=ADDR             default route through ADDR
 *   ironclaw.root=1              switch root to the image disk (boot.c)
 *   ironclaw.scratch=1           its writable layer is the scratch disk */
#include "guest/guest.h"

#include <errno.h>
#include <string.h>

/* Copies the value of word (without the key) when it is exactly key=value. */
static int guest_boot_opt(const char *word, size_t wlen, const char *key, char *out, size_t n)
{
	size_t klen = strlen(key);
	if (wlen <= klen || strncmp(word, key, klen))
		return 0;
	if (wlen - klen >= n)
		return -EINVAL;
	memcpy(out, word + klen, wlen - klen);
	out[wlen - klen] = '\0';
	return 1;
}

static int guest_boot_valid_addr(const char *s, int with_prefix)
{
	int slashes = 0;
	if (!*s)
		return 0;
	for (const char *p = s; *p; p++) {
		if (*p == '/')
			slashes++;
		else if (!(*p >= '0' && *p <= '9') && *p != '.' && *p != ':' &&
			 !(*p >= 'a' && *p <= 'f') && !(*p >= 'A' && *p <= 'F'))
			return 0;
	}
	return with_prefix ? slashes == 1 : slashes == 0;
}

int guest_boot_parse_cmdline(const char *cmdline, struct guest_boot_opts *o)
{
	char flag[8];
	memset(o, 0, sizeof(*o));
	for (const char *p = cmdline; *p;) {
		size_t len = strcspn(p, " \t\n");
		if (len == 0) {
			p++;
			continue;
		}
		if (guest_boot_opt(p, len, "ironclaw.poweroff=", flag, sizeof(flag)) > 0)
			o->poweroff = !strcmp(flag, "1");
		if (guest_boot_opt(p, len, "ironclaw.root=", flag, sizeof(flag)) > 0)
			o->root = !strcmp(flag, "1");
		if (guest_boot_opt(p, len, "ironclaw.scratch=", flag, sizeof(flag)) > 0)
			o->scratch = !strcmp(flag, "1");
		if (guest_boot_opt(p, len, "ironclaw.ip=", o->ip, sizeof(o->ip)) < 0 ||
		    guest_boot_opt(p, len, "ironclaw.gw=", o->gw, sizeof(o->gw)) < 0)
			return -EINVAL;
		p += len;
	}
	if ((o->ip[0] && !guest_boot_valid_addr(o->ip, 1)) ||
	    (o->gw[0] && !guest_boot_valid_addr(o->gw, 0)))
		return -EINVAL;
	return 0;
}
