#!/usr/bin/env bash
# `make bench`: every benchmark, each comparing against a baseline measured in
# the same run. Exits non-zero if any target ratio is missed.
set -uo pipefail
cd "$(dirname "$0")/.."
export IRONCLAW_ROOT=$PWD
status=0
echo "== VM: cold exec vs raw QEMU boot, exec round-trip"
build/bench/vm_bench "$PWD/build/ironclaw" || status=1
for b in bench/bench_*.sh; do
	[ -e "$b" ] || continue
	echo
	echo "== $(basename "$b" .sh)"
	bash "$b" || status=1
done
exit $status
