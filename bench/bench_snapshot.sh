#!/usr/bin/env bash
# Snapshot bench (build/bench/snapshot_bench, see bench/snapshot_bench.c):
# restore-to-ready vs cold-boot-to-ready in one run, and the idle memory of a
# clone vs a cold VM. Exits 1 if the ratio target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
export IRONCLAW_ROOT=$PWD
exec build/bench/snapshot_bench
