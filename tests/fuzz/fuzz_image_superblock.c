/* libFuzzer target: the ext4 superblock check done before a VM gets an image
 * file (src/image/check.c). Any input: no crash, and an accepted one really
 * has the magic and fits the claimed size. The input's first 8 bytes are the
 * file size, the rest the superblock. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/check.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t file_bytes = 0;
	struct err e = { 0 };
	if (size < 8)
		return 0;
	memcpy(&file_bytes, data, 8);
	const unsigned char *sb = data + 8;
	size_t n = size - 8;
	if (image_check_superblock(sb, n, file_bytes, &e) == 0) {
		if (n < EXT4_SB_SIZE || (sb[56] | sb[57] << 8) != EXT4_MAGIC)
			abort();
		uint64_t blocks = le32(sb + 4);
		if (le32(sb + 96) & EXT4_INCOMPAT_64BIT)
			blocks |= (uint64_t)le32(sb + 0x150) << 32;
		if (blocks == 0 || (blocks << (10 + le32(sb + 24))) > file_bytes)
			abort();
	} else if (!e.msg[0]) {
		abort();
	}
	return 0;
}
