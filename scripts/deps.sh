#!/usr/bin/env bash
# Installs every dependency IronClaw needs on Debian 12, without questions.
# Idempotent: packages already present are skipped by apt; each scripts/deps.d/*.sh
# adds one group (npm test peers, ...), in name order.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
	build-essential pkg-config clang libclang-rt-14-dev gcovr
	qemu-system-x86 busybox-static cpio zstd xz-utils kmod
	libjansson-dev libcurl4-openssl-dev libseccomp-dev libnftables-dev libmnl-dev libuv1-dev
	libcriterion-dev libyaml-dev libarchive-dev libgit2-dev libssl-dev libmicrohttpd-dev bubblewrap
	nftables iproute2 netcat-openbsd procps
	curl jq
	mmdebstrap uidmap e2fsprogs umoci skopeo
)

missing=()
# Node may come from elsewhere (with its own npm); only add Debian's when absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "deps: all Debian packages present"
fi

for part in scripts/deps.d/*.sh; do
	[ -e "$part" ] || continue
	echo "deps: $part"
	bash "$part"
done
