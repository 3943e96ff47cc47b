#!/usr/bin/env bash
# Client under test for the official MCP conformance suite: the suite runs this
# with the server URL as the last argument and the scenario in
# MCP_CONFORMANCE_SCENARIO; we drive the real `ironclaw mcp` binary
# ($IRONCLAW_BIN) the way a user would for that scenario.
set -uo pipefail
url=${!#}
bin=${IRONCLAW_BIN:?IRONCLAW_BIN must name the ironclaw binary}
scenario=${MCP_CONFORMANCE_SCENARIO:-}
mcp() { "$bin" mcp "$1" --url "$url" --timeout 10000 "${@:2}"; }
case "$scenario" in
initialize)
	mcp list-tools ;;
tools_call)
	mcp call add_numbers a=2 b=3 ;;
sse-retry)
	mcp call test_reconnection ;;
elicitation-sep1034-client-defaults)
	mcp call --elicit-defaults -- test_client_elicitation_defaults ;;
*)
	# Other scenarios (auth/*): list the tools, which is what any use begins with.
	mcp list-tools ;;
esac
