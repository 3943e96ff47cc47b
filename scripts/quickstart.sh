#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the agent at work: installs the
# toolchain and every dependency, builds ironclaw and the guest image, boots a
# micro-VM and runs `uname -a` in it, then runs `ironclaw run` end to end
# against a scripted model on loopback (scripts/demo/run-demo.sh). Safe to run
# again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "quickstart: run as root: the jail needs namespaces, cgroups and nftables" >&2
	exit 1
fi
if ! command -v make >/dev/null; then
	echo "quickstart: installing make"
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make
fi
make deps
make -j"$(nproc)"
make image
echo "quickstart: booting a micro-VM and running 'uname -a' in it"
build/ironclaw exec -- uname -a
echo "quickstart: ironclaw run against a scripted model (aimock on loopback; no API key needed)"
scripts/demo/run-demo.sh
