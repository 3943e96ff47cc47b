/* Parsers for Firecracker's API responses and vsock handshake: see fc_parse.h. */
#include "vm/fc_parse.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int fc_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return 0;
	return 1;
}

/* Copies a fault message verbatim but printable: it ends up in a terminal. */
static void fc_copy_fault(char *dst, size_t cap, const char *src, size_t n)
{
	size_t keep = n < cap - 1 ? n : cap - 4;
	for (size_t i = 0; i < keep; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (keep < n)
		memcpy(dst + keep, "...", 3), keep += 3;
	dst[keep] = '\0';
}

int fc_api_parse_reply(long status, const char *body, size_t len, struct fc_api_reply *r,
		       struct err *e)
{
	memset(r, 0, sizeof(*r));
	r->status = status;
	if (len > FC_API_BODY_MAX)
		return err_set(e, -EPROTO, "Firecracker's response is over %u bytes", FC_API_BODY_MAX);
	if (status < 100 || status > 599)
		return err_set(e, -EPROTO, "Firecracker answered with HTTP status %ld", status);
	if (status == 204) {
		if (!fc_blank(body, len))
			return err_set(e, -EPROTO, "Firecracker's 204 response has a body");
		return 0;
	}
	json_error_t je;
	json_t *j = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return err_set(e, -EPROTO, "Firecracker's HTTP %ld response is not a JSON object", status);
	}
	if (status >= 200 && status < 300) {
		json_decref(j);
		return 0;
	}
	json_t *fm = json_object_get(j, "fault_message");
	if (fm && !json_is_string(fm)) {
		json_decref(j);
		return err_set(e, -EPROTO, "Firecracker's error has a fault_message that is not a string");
	}
	if (fm)
		fc_copy_fault(r->fault, sizeof(r->fault), json_string_value(fm), json_string_length(fm));
	json_decref(j);
	if (r->fault[0])
		return err_set(e, -EREMOTEIO, "%s", r->fault);
	return err_set(e, -EREMOTEIO, "HTTP %ld without a fault_message", status);
}

int fc_vsock_parse_ok(const char *p, size_t n, uint32_t *port)
{
	const char *nl = memchr(p, '\n', n < FC_VSOCK_LINE_MAX ? n : FC_VSOCK_LINE_MAX);
	if (!nl)
		return n < FC_VSOCK_LINE_MAX ? 0 : -EPROTO;
	size_t len = (size_t)(nl - p);
	/* Exactly "OK " then 1..10 decimal digits, no sign, no leading zero. */
	if (len < 4 || memcmp(p, "OK ", 3) != 0 || len > 3 + 10)
		return -EPROTO;
	uint64_t v = 0;
	for (size_t i = 3; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EPROTO;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if ((p[3] == '0' && len > 4) || v > UINT32_MAX)
		return -EPROTO;
	*port = (uint32_t)v;
	return (int)len + 1;
}
