/* Retry arithmetic: which statuses are transient, how long to wait, and what
 * a Retry-After header means. Servers send seconds or an HTTP date; curl
 * parses the dates. Backoff is capped exponential with jitter over the upper
 * half, so that a fleet of clients rejected together does not return
 * together, while no wait is ever shorter than half the schedule. */
#include "llm/wire.h"

#include <curl/curl.h>
#include <string.h>

int llm_status_retryable(long status)
{
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

long llm_backoff_ms(int attempt, long base, long max, double rnd)
{
	if (attempt < 2)
		return 0;
	long d = base;
	for (int i = 2; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	if (rnd < 0 || rnd >= 1)
		rnd = 0;
	return d / 2 + (long)((double)(d - d / 2) * rnd);
}

long llm_retry_after_parse(const char *v, size_t n, long long now)
{
	char tmp[128];
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	int digits = 1;
	for (size_t i = 0; i < n; i++)
		digits = digits && tmp[i] >= '0' && tmp[i] <= '9';
	if (digits) {
		if (n > 7)   /* over 115 days: nonsense, and it would overflow below */
			return -1;
		long s = 0;
		for (size_t i = 0; i < n; i++)
			s = s * 10 + (tmp[i] - '0');
		return s * 1000;
	}
	time_t t = curl_getdate(tmp, NULL);
	if (t == (time_t)-1)
		return -1;
	long long d = (long long)t - now;
	if (d < 0)
		d = 0;
	if (d > 10000000)
		return -1;
	return (long)(d * 1000);
}
