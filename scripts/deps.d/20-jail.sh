#!/usr/bin/env bash
# Kernel pieces the jail and its tests use: the tun device (the VM's NIC), veth
# pairs, network namespaces and nf_tables with conntrack and NAT. The Debian
# packages (iproute2, nftables, libseccomp, libnftables) are in the base list.
# Modules are loaded when they are modules; built-in ones make modprobe a no-op.
# Idempotent.
set -euo pipefail
for m in tun veth nf_tables nft_ct nft_chain_nat nft_masq nf_conntrack; do
	modprobe -q "$m" 2>/dev/null || true
done
if [ ! -c /dev/net/tun ]; then
	mkdir -p /dev/net
	mknod -m 0666 /dev/net/tun c 10 200
fi
# Report what is missing instead of letting the tests find out later.
[ -c /dev/net/tun ] || echo "deps: warning: /dev/net/tun missing; VMs with --net cannot start" >&2
ip netns list >/dev/null 2>&1 || echo "deps: warning: ip netns unusable; VMs with --net cannot start" >&2
