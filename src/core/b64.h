/* Standard base64 (RFC 4648, with padding). Binary payloads (exec output, file
 * contents) cross the JSON channel this way. */
#ifndef IRONCLAW_CORE_B64_H
#define IRONCLAW_CORE_B64_H

#include <stddef.h>
#include <stdint.h>

/* Encoded length for n input bytes, excluding the NUL. */
size_t b64_encoded_len(size_t n);
/* Writes b64_encoded_len(n) chars plus a NUL into out. */
void b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly n chars (n % 4 == 0, padding only at the end). out must hold
 * n / 4 * 3 bytes. Returns the decoded length or -EINVAL on any bad character. */
long b64_decode(const char *in, size_t n, uint8_t *out);

#endif
