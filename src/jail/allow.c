/* Parsing `--net allow=CIDR[:PORT],...` (user input: strict, bounded).
 *
 * Grammar: "none" | "allow=" entry ("," entry)*, entry = A.B.C.D ["/" N] [":" PORT],
 * each octet 0..255 without leading "+"/"-", N 0..32, PORT 1..65535. Anything
 * else is an error that quotes the entry. At most `max` entries. */
#include "jail/jail.h"

#include <errno.h>
#include <string.h>

#define ALLOW_ENTRY_MAX 40   /* "255.255.255.255/32:65535" is 24 chars */

/* Reads a decimal number of at most `digits` digits from s[*i..len). */
static int allow_num(const char *s, size_t len, size_t *i, unsigned digits, unsigned long *out)
{
	unsigned long v = 0;
	size_t start = *i;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < digits)
		v = v * 10 + (unsigned long)(s[(*i)++] - '0');
	if (*i == start || (*i < len && s[*i] >= '0' && s[*i] <= '9'))
		return -EINVAL;
	*out = v;
	return 0;
}

static int allow_entry(const char *s, size_t len, struct jail_net_allow *a)
{
	size_t i = 0;
	uint32_t addr = 0;
	unsigned long v;
	for (int octet = 0; octet < 4; octet++) {
		if (octet && (i >= len || s[i++] != '.'))
			return -EINVAL;
		if (allow_num(s, len, &i, 3, &v) || v > 255)
			return -EINVAL;
		addr = addr << 8 | (uint32_t)v;
	}
	unsigned long prefix = 32, port = 0;
	if (i < len && s[i] == '/') {
		i++;
		if (allow_num(s, len, &i, 2, &prefix) || prefix > 32)
			return -EINVAL;
	}
	if (i < len && s[i] == ':') {
		i++;
		if (allow_num(s, len, &i, 5, &port) || port < 1 || port > 65535)
			return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	a->addr = addr;
	a->prefix = (uint8_t)prefix;
	a->port = (uint16_t)port;
	return 0;
}

int jail_net_parse_allow(const char *spec, size_t len, struct jail_net_allow *out, size_t max, size_t *n,
			 struct err *e)
{
	*n = 0;
	if (len == 4 && !memcmp(spec, "none", 4))
		return 0;
	if (len < 6 || memcmp(spec, "allow=", 6))
		return err_set(e, -EINVAL, "--net: expected allow=CIDR[:PORT],... or none (example: allow=10.0.0.0/8:443,1.1.1.1:53)");
	size_t i = 6;
	if (i == len)
		return err_set(e, -EINVAL, "--net allow=: empty list (hint: use --net none for no network)");
	while (i <= len) {
		size_t start = i;
		while (i < len && spec[i] != ',')
			i++;
		size_t elen = i - start;
		if (*n >= max)
			return err_set(e, -E2BIG, "--net: more than %zu allow entries", max);
		if (elen == 0 || elen > ALLOW_ENTRY_MAX || allow_entry(spec + start, elen, &out[*n])) {
			/* Quote the entry on one line: control bytes become '?'. */
			char shown[ALLOW_ENTRY_MAX + 1];
			size_t k;
			for (k = 0; k < elen && k < ALLOW_ENTRY_MAX; k++) {
				unsigned char ch = (unsigned char)spec[start + k];
				shown[k] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
			}
			shown[k] = 0;
			return err_set(e, -EINVAL,
				       "--net: bad entry '%s' (expected A.B.C.D[/N][:PORT], N 0..32, PORT 1..65535)", shown);
		}
		(*n)++;
		i++;   /* past ',' (or past the end, which ends the loop) */
	}
	return 0;
}
