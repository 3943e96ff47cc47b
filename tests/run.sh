#!/usr/bin/env bash
# Runs every built test binary and prints one summary line: "N passed, N failed".
# Order: sanitized unit tests, then the coverage build's unit tests, fuzz corpus
# replays and integration tests, then the coverage gate. Criterion binaries print
# their own synthesis line; we add those up. A binary that crashes or exits non-zero
# without a synthesis line counts as one failure, so nothing is lost silently.
set -uo pipefail
cd "$(dirname "$0")/.."
export IRONCLAW_ROOT=$PWD
SAN=build/san-address-undefined
COV=build/cov
export IRONCLAW_BIN=$PWD/$COV/ironclaw
export IRONCLAW_GUEST=$PWD/build/ironclaw-guest
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

passed=0 failed=0 skipped=0
failures=()
log_dir=build/test-logs
mkdir -p "$log_dir"

run_one() {
	local bin=$1 name log rc
	name=$(echo "$bin" | tr / _)
	log=$log_dir/$name.log
	printf '%-60s ' "$bin"
	# A hung binary must not hang CI: each gets a generous bound of its own.
	timeout --kill-after=10 "${IRONCLAW_TEST_TIMEOUT:-1200}" "$bin" --jobs 1 >"$log" 2>&1
	rc=$?
	local line
	line=$(grep -a 'Synthesis: Tested:' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		local t p f c s
		t=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$line")
		p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
		f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
		c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
		s=$(grep -a -c '\[SKIP\]' "$log")
		# A suite skipped from its init (cr_skip_test there) reports nothing
		# tested; it prints "NAME: skipped: why" itself, which is counted.
		if [ "$t" -eq 0 ] && [ "$s" -eq 0 ]; then
			s=$(grep -a -c ': skipped: ' "$log")
		fi
		passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
		if [ "$s" -gt 0 ]; then echo "$p/$t passed, $s skipped"; else echo "$p/$t passed"; fi
		grep -a -E '\[SKIP\]|: skipped: ' "$log" | sed 's/^/    /'
		if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
			[ "$f" -gt 0 ] || failed=$((failed + 1))
			failures+=("$bin")
			grep -a -E '\[(FAIL|----)\]|ERROR|runtime error|Sanitizer' "$log" | head -n 40 | sed 's/^/    /'
		fi
		: "$c"
	else
		# Not a Criterion binary (fuzz replay): its exit code is the verdict.
		if [ "$rc" -eq 0 ]; then
			passed=$((passed + 1)); echo "ok"
		else
			failed=$((failed + 1)); failures+=("$bin"); echo "FAILED (exit $rc)"
			tail -n 20 "$log" | sed 's/^/    /'
		fi
	fi
}

for dir in "$SAN/tests/unit" "$COV/tests/unit" "$COV/tests/fuzz" "$COV/tests/integration"; do
	[ -d "$dir" ] || continue
	for bin in "$dir"/*; do
		[ -f "$bin" ] && [ -x "$bin" ] || continue
		run_one "$bin"
	done
done

if bash tests/coverage.sh --gate; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); failures+=("coverage gate")
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]} (logs in $log_dir/)"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
