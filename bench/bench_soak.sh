#!/usr/bin/env bash
# The soak (tests/integration/test_soak.c) as a benchmark: 100 VMs created and
# destroyed in one process, four at a time, each output hashed. Prints the
# process's open fds and RSS before, after a warm-up of 8 VMs and at the end,
# and the VMs per minute. It fails (as the test does) if fds or RSS grew past
# their margins, a run went wrong, or anything was left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/tests/integration/test_soak >/dev/null
export IRONCLAW_ROOT=$PWD IRONCLAW_SOAK_VMS=${IRONCLAW_SOAK_VMS:-100}
out=$(build/tests/integration/test_soak --jobs 1 2>&1) || { echo "$out" | tail -n 20; exit 1; }
echo "$out" | grep '^soak:'
