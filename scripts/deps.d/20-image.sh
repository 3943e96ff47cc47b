#!/usr/bin/env bash
# Guest image tools beyond the base list: lz4 decompresses the Debian kernel's
# payload (image/extract-vmlinux.sh), so QEMU can boot the uncompressed ELF.
set -euo pipefail
if ! command -v lz4 >/dev/null; then
	echo "deps: installing lz4"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lz4 ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lz4; }
fi
