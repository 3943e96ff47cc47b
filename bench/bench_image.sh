#!/usr/bin/env bash
# Images (bench/image_bench.c): cold exec on a Debian image vs the busybox
# initramfs in the same run, python3 round trips, the image's size and build
# time. The dev image from the user's store when `make image-dev` made one,
# else build/images (`make image-test`'s ci-small).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IRONCLAW_IMAGES:-}" ] && ! build/ironclaw image inspect dev >/dev/null 2>&1; then
	export IRONCLAW_IMAGES=$PWD/build/images
fi
build/bench/image_bench "$PWD/build/ironclaw" "${IMAGE_BENCH_RUNS:-7}"
