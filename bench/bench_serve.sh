#!/usr/bin/env bash
# The daemon's bench (build/bench/serve_bench, see bench/serve_bench.c): warm
# pool sandbox + exec true + delete beside bwrap --unshare-all true, and
# sandboxes per second. Exits 1 if the target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
export IRONCLAW_ROOT=$PWD
command -v bwrap >/dev/null || { echo "bench_serve: bwrap missing (hint: make deps)"; exit 1; }
exec build/bench/serve_bench "${IRONCLAW_BIN:-$PWD/build/ironclaw}"
