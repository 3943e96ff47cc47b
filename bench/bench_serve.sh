#!/usr/bin/env bash
# The daemon's bench (build/bench/serve_bench, see bench/serve_bench.c): warm
# pool sandbox + exec true + delete beside bwrap --unshare-all true, and
# sandboxes per second. Exits 1 if the target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
export IRONCLAW_ROOT=$PWD
command -v bwrap >/dev/null || { echo "bench_serve: bwrap missing (hint: make deps)"; exit 1; }
bin="${IRONCLAW_BIN:-$PWD/build/ironclaw}"
# The pool restores from the 128 MiB shape's template: make sure it exists
# (a no-op when it does), so the pool is not filled by cold boots.
"$bin" snapshot create --memory 128 >/dev/null
exec build/bench/serve_bench "${IRONCLAW_BIN:-$PWD/build/ironclaw}"
