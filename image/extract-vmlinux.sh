#!/usr/bin/env bash
# Extracts the uncompressed kernel ELF from an x86 bzImage, using the boot
# protocol header rather than scanning for magic numbers: setup_sects (0x1f1)
# says where the protected-mode part starts, payload_offset/payload_length
# (0x248/0x24c, boot protocol >= 2.08) where the compressed kernel lies in it.
# The ELF carries a PVH note, so QEMU can boot it directly with -kernel.
# Usage: extract-vmlinux.sh BZIMAGE OUT
set -euo pipefail
in=$1 out=$2
u8() { od -An -tu1 -j "$1" -N1 "$in" | tr -d ' '; }
u32() { od -An -tu4 -j "$1" -N4 "$in" | tr -d ' '; }
[ "$(od -An -c -j $((0x202)) -N4 "$in" | tr -d ' ')" = HdrS ] ||
	{ echo "extract-vmlinux: $in is not a bzImage (no HdrS header)" >&2; exit 1; }
setup=$(u8 $((0x1f1)))
[ "$setup" -ne 0 ] || setup=4
start=$(( (setup + 1) * 512 + $(u32 $((0x248))) ))
len=$(u32 $((0x24c)))
magic=$(od -An -tx1 -j "$start" -N6 "$in" | tr -d ' \n')
payload() { tail -c +$((start + 1)) "$in" | head -c "$len"; }
case "$magic" in
1f8b*) dec=(gzip -dc) ;;
fd377a585a00) dec=(xz -dc --single-stream) ;;
28b52ffd*) dec=(zstd -dc) ;;
02214c18*) dec=(lz4 -dc) ;;
5d0000*) dec=(xz -dc --format=lzma) ;;
425a68*) dec=(bzip2 -dc) ;;
*) echo "extract-vmlinux: unknown kernel compression (magic $magic)" >&2; exit 1 ;;
esac
command -v "${dec[0]}" >/dev/null ||
	{ echo "extract-vmlinux: ${dec[0]} not found (hint: run \`make deps\`)" >&2; exit 1; }
# The payload ends with the uncompressed size (4 bytes), which some tools
# report as trailing garbage: judge the result, not the exit status.
payload | "${dec[@]}" >"$out" 2>/dev/null || true
[ "$(od -An -tx1 -N4 "$out" | tr -d ' ')" = 7f454c46 ] ||
	{ echo "extract-vmlinux: decompressing with ${dec[0]} gave no ELF" >&2; exit 1; }
