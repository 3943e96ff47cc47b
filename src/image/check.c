/* A quick look at an image file before a VM is given it: the ext4 superblock's
 * magic and the size it claims. A truncated copy or a file that is not an
 * image would otherwise surface as a guest mount error on the serial console;
 * here it is a clear error with a hint, before QEMU starts.
 *
 * Why not libext2fs: three little-endian fields at fixed offsets of one
 * 1024-byte block (the ext4 on-disk layout, fs/ext4/ext4.h) are all it needs,
 * and the file is the user's own. The function that reads them takes a length
 * and is fuzzed (tests/fuzz/fuzz_image_superblock.c). */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXT4_SB_OFFSET 1024
#define EXT4_SB_SIZE 1024
#define EXT4_MAGIC 0xEF53
#define EXT4_INCOMPAT_64BIT 0x80

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int image_check_superblock(const unsigned char *sb, size_t len, uint64_t file_bytes, struct err *e)
{
	if (len < EXT4_SB_SIZE)
		return err_set(e, -EINVAL, "too short for an ext4 superblock");
	if ((sb[56] | sb[57] << 8) != EXT4_MAGIC)
		return err_set(e, -EINVAL, "not an ext4 filesystem (no superblock magic)");
	uint32_t log_block = le32(sb + 24);
	if (log_block > 6)
		return err_set(e, -EINVAL, "ext4 superblock claims a block size of 2^%u KiB", log_block);
	uint64_t blocks = le32(sb + 4);
	if (le32(sb + 96) & EXT4_INCOMPAT_64BIT)
		blocks |= (uint64_t)le32(sb + 0x150) << 32;
	uint64_t need = blocks << (10 + log_block);
	if (blocks == 0 || need >> (10 + log_block) != blocks)
		return err_set(e, -EINVAL, "ext4 superblock claims an impossible size");
	if (file_bytes < need)
		return err_set(e, -EINVAL, "truncated: %llu bytes, the filesystem needs %llu",
			       (unsigned long long)file_bytes, (unsigned long long)need);
	return 0;
}

int image_check_file(const char *path, struct err *e)
{
	unsigned char sb[EXT4_SB_SIZE];
	struct stat st;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "cannot open image %s: %s (hint: `ironclaw image ls` lists the images; build one with `ironclaw image build NAME`)",
			       path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = err_set(e, -EINVAL, "image %s is not a regular file", path);
		goto out;
	}
	ssize_t n = pread(fd, sb, sizeof(sb), EXT4_SB_OFFSET);
	struct err why = { 0 };
	if ((rc = image_check_superblock(sb, n > 0 ? (size_t)n : 0, (uint64_t)st.st_size, &why)) < 0)
		err_set(e, rc, "image %s is damaged: %s (hint: remove it with `ironclaw image rm NAME` and build or import it again)",
			path, why.msg);
out:
	close(fd);
	return rc;
}
