#!/usr/bin/env bash
# Client under test for the official MCP conformance suite (both pinned
# releases): the suite runs this with the server URL as the last argument, the
# scenario in MCP_CONFORMANCE_SCENARIO and, for some scenarios, the calls to make
# in MCP_CONFORMANCE_CONTEXT (JSON). We drive the real `ironclaw mcp` binary
# ($IRONCLAW_BIN) the way a user would for that scenario; what the client does
# on the wire (discovery, headers, multi-round-trip requests, tool filtering)
# is the library's, never this script's.
set -uo pipefail
url=${!#}
bin=${IRONCLAW_BIN:?IRONCLAW_BIN must name the ironclaw binary}
scenario=${MCP_CONFORMANCE_SCENARIO:-}
target=(--url "$url")
# Authorization scenarios: a private config dir (the token file lands there),
# a config entry carrying what the suite hands a client (a pre-registered
# client in its context; its client ID metadata document URL), and a
# "browser" that follows the authorization URL the way a person's would:
# the suite's authorization server redirects at once, to our loopback listener.
if [[ $scenario == auth/* ]]; then
	home=$(mktemp -d)
	trap 'rm -rf "$home"' EXIT
	export XDG_CONFIG_HOME=$home IRONCLAW_BROWSER="curl -fsS -L -o /dev/null --max-redirs 1"
	ctx=${MCP_CONFORMANCE_CONTEXT:-'{}'}
	export CONFORMANCE_CLIENT_SECRET
	CONFORMANCE_CLIENT_SECRET=$(jq -r '.client_secret // empty' <<<"$ctx")
	jq -n --arg url "$url" --argjson ctx "$ctx" '{mcpServers: {conformance: {url: $url,
		oauth: ({clientMetadataUrl: "https://conformance-test.local/client-metadata.json"}
			+ (if $ctx.client_id and $ctx.client_secret and ($ctx.private_key_pem | not)
			   then {clientId: $ctx.client_id, clientSecretEnv: "CONFORMANCE_CLIENT_SECRET"}
			   else {} end))}}}' >"$home/config.json"
	target=(--config "$home/config.json" --server conformance)
fi
mcp() { "$bin" mcp "$1" "${target[@]}" --timeout 10000 "${@:2}"; }
# Every tool the client keeps (malformed ones are skipped by the library), each
# called with a string for every required argument.
call_every_listed_tool() {
	local tools rc=0
	tools=$(mcp list-tools --json) || return 1
	while IFS=$'\t' read -r name args; do
		mcp call --json "$name" "$args" >/dev/null || rc=1
	done < <(jq -r '.[] | [.name, ((.inputSchema.required // []) | map({(.): "x"}) | add // {} | tojson)] | @tsv' <<<"$tools")
	return $rc
}
case "$scenario" in
initialize|request-metadata|json-schema-ref-no-deref|http-standard-headers)
	mcp list-tools ;;
tools_call)
	mcp call add_numbers a=2 b=3 ;;
sse-retry)
	mcp call test_reconnection ;;
elicitation-sep1034-client-defaults)
	mcp call --elicit-defaults -- test_client_elicitation_defaults ;;
sep-2322-client-request-state)
	rc=0
	for t in test_mrtr_echo_state test_mrtr_no_state test_mrtr_unrelated test_mrtr_no_result_type; do
		mcp call --elicit-defaults "$t" || rc=1
	done
	exit $rc ;;
http-custom-headers)
	# The suite names the calls (tool and arguments) in its context.
	rc=0
	while IFS=$'\t' read -r name args; do
		mcp call --json "$name" "$args" >/dev/null || rc=1
	done < <(jq -r '.toolCalls[] | [.name, (.arguments | tojson)] | @tsv' <<<"${MCP_CONFORMANCE_CONTEXT:-{\}}")
	exit $rc ;;
http-invalid-tool-headers)
	call_every_listed_tool ;;
json-schema-2020-12-preservation)
	# Hand the focal tool's schema back exactly as the client received it.
	tools=$(mcp list-tools --json) || exit 1
	schema=$(jq -c '{schema: (.[] | select(.name == "json_schema_2020_12_tool") | .inputSchema)}' <<<"$tools")
	mcp call json_schema_echo "$schema" ;;
auth/scope-step-up)
	# Listing needs one scope, calling another: a step-up in one session.
	mcp call test-tool ;;
*)
	# Other scenarios (auth/*): list the tools, which is what any use begins with.
	mcp list-tools ;;
esac
