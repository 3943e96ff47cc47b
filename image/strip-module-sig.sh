#!/usr/bin/env bash
# Removes the appended signature from kernel modules, in place:
#   image/strip-module-sig.sh FILE.ko...
# Why: the guest kernel checks a module's signature on every load, and that RSA
# verification is slow under TCG (measured: the four modules a console-only VM
# loads took 187 ms signed, 117 ms unsigned). The guest is untrusted by design,
# so the check protects nothing of ours; Debian's kernel does not enforce
# signatures (no module.sig_enforce), it only marks itself tainted.
# Layout at the end of a signed module: ... signature, then a 12-byte
# struct module_signature whose last 4 bytes are the big-endian signature
# length, then the 28-byte magic "~Module signature appended~\n".
set -euo pipefail
magic='~Module signature appended~'
for f in "$@"; do
	size=$(stat -c %s "$f")
	[ "$size" -gt 40 ] || continue
	[ "$(tail -c 28 "$f" | head -c 27)" = "$magic" ] || continue
	read -r b0 b1 b2 b3 < <(tail -c 32 "$f" | head -c 4 | od -An -tu1)
	siglen=$(( (b0 << 24) | (b1 << 16) | (b2 << 8) | b3 ))
	keep=$(( size - 28 - 12 - siglen ))
	if [ "$keep" -le 0 ]; then
		echo "image: error: $f has a malformed signature trailer" >&2
		exit 1
	fi
	truncate -s "$keep" "$f"
done
