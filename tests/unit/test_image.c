/* The image subsystem's pure parts: the ext4 superblock check (magic, block
 * size, 64-bit block counts, truncation), image names, and the SHA-256 text
 * helper against a known vector. */
#include <criterion/criterion.h>
#include <string.h>

#include "image/image.h"

static void sb_make(unsigned char sb[1024], uint32_t blocks_lo, uint32_t log_block, uint32_t hi, int is64)
{
	memset(sb, 0, 1024);
	sb[56] = 0x53;
	sb[57] = 0xEF;
	memcpy(sb + 4, &blocks_lo, 4);
	memcpy(sb + 24, &log_block, 4);
	if (is64) {
		uint32_t incompat = 0x80;
		memcpy(sb + 96, &incompat, 4);
		memcpy(sb + 0x150, &hi, 4);
	}
}

Test(image_check, accepts_a_sound_superblock_and_refuses_a_truncated_file)
{
	unsigned char sb[1024];
	struct err e = { 0 };
	sb_make(sb, 1000, 2, 0, 0); /* 1000 blocks of 4 KiB */
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 4096000, &e), 0, "%s", e.msg);
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 4096000 + 5, &e), 0);
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 4095999, &e), -EINVAL);
	cr_expect(strstr(e.msg, "truncated"), "%s", e.msg);
}

Test(image_check, refuses_no_magic_short_input_odd_sizes)
{
	unsigned char sb[1024];
	struct err e = { 0 };
	sb_make(sb, 1000, 2, 0, 0);
	sb[56] = 0;
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 1u << 30, &e), -EINVAL);
	cr_expect(strstr(e.msg, "not an ext4"), "%s", e.msg);
	sb_make(sb, 1000, 2, 0, 0);
	cr_expect_eq(image_check_superblock(sb, 100, 1u << 30, &e), -EINVAL);
	sb_make(sb, 1000, 40, 0, 0);
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), UINT64_MAX, &e), -EINVAL);
	sb_make(sb, 0, 2, 0, 0);
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), UINT64_MAX, &e), -EINVAL);
}

Test(image_check, counts_the_high_half_of_64_bit_block_counts)
{
	unsigned char sb[1024];
	struct err e = { 0 };
	sb_make(sb, 0, 2, 1, 1); /* 2^32 blocks of 4 KiB: 16 TiB */
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 1ull << 40, &e), -EINVAL);
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 1ull << 44, &e), 0, "%s", e.msg);
	/* Without the 64bit feature the high half is not a block count. */
	sb_make(sb, 10, 2, 1, 0);
	cr_expect_eq(image_check_superblock(sb, sizeof(sb), 40960, &e), 0, "%s", e.msg);
}

Test(image_names, valid_and_invalid)
{
	cr_expect(image_name_valid("dev"));
	cr_expect(image_name_valid("ci-small"));
	cr_expect(image_name_valid("py3.11_x"));
	cr_expect_not(image_name_valid(""));
	cr_expect_not(image_name_valid("-x"));
	cr_expect_not(image_name_valid(".hidden"));
	cr_expect_not(image_name_valid("../etc"));
	cr_expect_not(image_name_valid("a/b"));
	cr_expect_not(image_name_valid("Upper"));
	char longname[IMAGE_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_expect_not(image_name_valid(longname));
}

Test(image_id, sha256_of_text_matches_the_standard_vector)
{
	char hex[IMAGE_ID_HEX + 1];
	image_sha256_text("abc", 3, hex);
	cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
