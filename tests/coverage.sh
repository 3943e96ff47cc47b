#!/usr/bin/env bash
# Line coverage of src/ from the coverage build (build/cov), after its tests ran.
#   tests/coverage.sh          print the report
#   tests/coverage.sh --gate   also fail when coverage is below coverage-baseline.txt
# The baseline may be raised freely; lowering it needs a reason in the commit message.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls build/cov/obj >/dev/null 2>&1; then
	echo "coverage: no coverage build (hint: run \`make check\` first)" >&2
	exit 1
fi
# --gcov-ignore-parse-errors: tests kill processes on purpose (ironclaw by
# SIGKILL, stand-ins by their own seccomp filter), and one killed while it
# writes its counters can leave a .gcda half written; gcov then prints negative
# branch counts (seen once in src/jail/seccomp.c) that gcovr refuses to parse.
# Line counts are unaffected, so those lines are skipped, not the report.
summary=$(gcovr -r . --object-directory build/cov/obj --filter 'src/' \
	--exclude 'src/guest/' --gcov-ignore-parse-errors --print-summary \
	-o build/cov/coverage.txt 2>/dev/null | grep '^lines:')
pct=$(sed -E 's/^lines: ([0-9.]+)%.*/\1/' <<<"$summary")
baseline=$(tr -d ' \n' < coverage-baseline.txt)
echo "coverage: $summary (baseline ${baseline}%)"
if [ "${1:-}" = "--gate" ]; then
	if awk -v p="$pct" -v b="$baseline" 'BEGIN { exit !(p + 0.05 < b) }'; then
		echo "coverage: ${pct}% is below the baseline ${baseline}% (hint: add tests, or lower coverage-baseline.txt with a reason in the commit message)" >&2
		exit 1
	fi
fi
