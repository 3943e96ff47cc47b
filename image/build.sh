#!/usr/bin/env bash
# Builds the default guest image from Debian packages only (DESIGN.md §5):
#   build/image/vmlinuz         the kernel of linux-image-cloud-amd64, as shipped
#   build/image/vmlinux         the same kernel, decompressed (ELF with a PVH note);
#                               QEMU boots it without the ~1 s TCG decompression
#   build/image/initramfs.cpio  uncompressed newc: /init (= ironclaw-guest),
#                               busybox-static and the virtio/vsock modules
#   build/image/modules/        modules outside the initramfs: overlay.ko, which
#                               `ironclaw image build` injects into Debian images
#                               (only an image boot needs it: the busybox boot
#                               stays as small as before)
#   build/image/manifest.json   versions and hashes of every input and output
# The kernel .deb is fetched with `apt-get download` into build/image/cache and is
# never installed on the host. Rebuilds only when an input's hash changes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${IRONCLAW_IMAGE_OUT:-$ROOT/build/image}
CACHE=$OUT/cache
META_PKG=linux-image-cloud-amd64
BUSYBOX=${IRONCLAW_BUSYBOX:-/bin/busybox}
GUEST=$ROOT/build/ironclaw-guest
# Modules in the image, as name:when. "always" loads at boot; a number is a virtio
# device ID (virtio spec 5: 1 net, 2 block, 3 console, 19 vsock): the module loads
# only when such a device exists, as udev would do, minus udev. Dependencies come
# from modules.dep and inherit the tag of the first module that pulls them in.
WANT_MODULES=(virtio_mmio:always virtio_console:3 virtio_blk:2 vsock:19
	vmw_vsock_virtio_transport:19 virtio_net:1)

say() { echo "image: $*"; }
die() { echo "image: error: $*" >&2; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found (hint: $2)"
}
need apt-cache "this script needs Debian's apt"
need dpkg-deb "this script needs Debian's dpkg"
need cpio "run \`make deps\` (installs cpio)"
need depmod "run \`make deps\` (installs kmod)"
need sha256sum "install coreutils"
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (hint: run \`make deps\`, it installs busybox-static)"
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is dynamically linked (hint: install busybox-static, not busybox)"
[ -x "$GUEST" ] || die "$GUEST missing (hint: run \`make\` first)"
file_is_static "$GUEST" || die "$GUEST is not static (hint: rebuild it with \`make build/ironclaw-guest\`)"

mkdir -p "$CACHE"

# --- 1. Resolve and fetch the kernel package --------------------------------
# The meta-package only depends on the versioned one (linux-image-6.1.0-NN-cloud-amd64).
resolve() {
	apt-cache depends "$META_PKG" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }' || true
}
pkg=$(resolve)
# Fresh machines often come with empty apt lists: refresh them once, as root.
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ] &&
	[ -z "$(find "$CACHE" -maxdepth 1 -name 'linux-image-*-cloud-amd64_*.deb' | head -n 1)" ]; then
	say "apt does not know $META_PKG; running apt-get update"
	apt-get update -q >/dev/null 2>&1 || true
	pkg=$(resolve)
fi
deb=
if [ -n "$pkg" ]; then
	ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')
	[ -n "$ver" ] || die "apt knows $pkg but not its version (hint: run \`apt-get update\`)"
	deb=$CACHE/${pkg}_${ver//:/%3a}_amd64.deb
	if [ ! -s "$deb" ]; then
		say "downloading $pkg $ver"
		rm -f "$CACHE"/"$pkg"_*.deb.part
		(cd "$CACHE" && apt-get download -q "$pkg=$ver" >/dev/null 2>"$CACHE/apt.err") ||
			die "apt-get download $pkg failed: $(tail -n 1 "$CACHE/apt.err") (hint: check the Debian mirror in /etc/apt/sources.list and run \`apt-get update\`)"
		[ -s "$deb" ] || die "apt-get download did not produce $deb"
	fi
else
	# Offline, or apt lists missing: fall back to a deb fetched earlier.
	deb=$(find "$CACHE" -maxdepth 1 -name 'linux-image-*-cloud-amd64_*.deb' | sort -V | tail -n 1)
	[ -n "$deb" ] || die "cannot resolve $META_PKG (hint: run \`apt-get update\`; the package lives in Debian 12 main)"
	say "apt cannot resolve $META_PKG; using cached $(basename "$deb")"
	pkg=$(dpkg-deb -f "$deb" Package)
	ver=$(dpkg-deb -f "$deb" Version)
fi

# --- 2. Skip the work when nothing changed ----------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
deb_sha=$(sha "$deb")
busybox_sha=$(sha "$BUSYBOX")
guest_sha=$(sha "$GUEST")
script_sha=$(cat "$ROOT"/image/*.sh | sha256sum | cut -d' ' -f1)
input_hash=$(printf '%s\n' "$deb_sha" "$busybox_sha" "$guest_sha" "$script_sha" "${WANT_MODULES[*]}" |
	sha256sum | cut -d' ' -f1)
if [ -s "$OUT/manifest.json" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/vmlinux" ] &&
	[ -s "$OUT/modules/overlay.ko" ] &&
	[ -s "$OUT/initramfs.cpio" ] && grep -q "\"input_hash\": \"$input_hash\"" "$OUT/manifest.json"; then
	say "up to date ($pkg $ver)"
	exit 0
fi

work=$(mktemp -d "$OUT/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- 3. Unpack the kernel package and index its modules ---------------------
say "unpacking $pkg $ver"
dpkg-deb -x "$deb" "$work/deb"
kver=$(find "$work/deb/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | head -n 1)
if [ -z "$kver" ] || [ ! -f "$work/deb/boot/vmlinuz-$kver" ]; then
	die "$deb holds no kernel (is it a linux-image package?)"
fi
moddir=$work/deb/lib/modules/$kver
# The .deb ships no modules.dep (postinst runs depmod); build it in the unpacked tree.
depmod -b "$work/deb" "$kver" || die "depmod failed on $kver"

declare -A mod_path=()   # module name -> path relative to $moddir
declare -A mod_deps=()   # module name -> space-separated dependency names
modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }
while IFS= read -r line; do
	target=${line%%:*}
	deps=${line#*:}
	name=$(modname "$target")
	mod_path[$name]=$target
	d=
	for dep in $deps; do d+="$(modname "$dep") "; done
	mod_deps[$name]=$d
done <"$moddir/modules.dep"

# Depth-first: every dependency is listed before the module that needs it.
declare -A seen=()
declare -A mod_tag=()
order=()
visit() {
	local m=$1 tag=$2 d
	[ -n "${seen[$m]:-}" ] && return 0
	seen[$m]=1
	mod_tag[$m]=$tag
	[ -n "${mod_path[$m]:-}" ] || {
		grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null && return 0
		die "module $m not found in $kver"
	}
	for d in ${mod_deps[$m]}; do visit "$d" "$tag"; done
	order+=("$m")
}
for w in "${WANT_MODULES[@]}"; do visit "${w%%:*}" "${w#*:}"; done

# --- 4. Stage the initramfs tree --------------------------------------------
stage=$work/root
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,root,etc/ironclaw,lib/modules/"$kver"}
chmod 1777 "$stage/tmp"
cp "$GUEST" "$stage/init"
# DWARF is of no use in the guest and is a fifth of the agent: less to unpack.
if command -v strip >/dev/null; then strip --strip-debug "$stage/init"; fi
ln -s ../init "$stage/sbin/ironclaw-guest"
cp "$BUSYBOX" "$stage/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	[ "$applet" = busybox ] || [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
: >"$stage/etc/ironclaw/modules"
: >"$stage/etc/ironclaw/modules.when"
# Compressed modules are expanded here so that the guest needs no decompressor.
for m in "${order[@]}"; do
	src=$moddir/${mod_path[$m]}
	dst=$stage/lib/modules/$kver/$m.ko
	case "$src" in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -q -dc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*) die "unknown module format: $src" ;;
	esac
	bash "$ROOT/image/strip-module-sig.sh" "$dst"
	# modules: every path, for scripts; modules.when: when the agent loads it.
	echo "/lib/modules/$kver/$m.ko" >>"$stage/etc/ironclaw/modules"
	echo "${mod_tag[$m]} /lib/modules/$kver/$m.ko" >>"$stage/etc/ironclaw/modules.when"
done
echo "ironclaw" >"$stage/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"

nfiles=$(find "$stage" | wc -l)
# Fixed times and owners: the same inputs give the same bytes.
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --reproducible --quiet) >"$work/initramfs.cpio"
size=$(stat -c %s "$work/initramfs.cpio")
say "packing initramfs ($nfiles files, $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"

# --- 5. Kernel: the bzImage as shipped, plus its decompressed ELF -------------
cp "$work/deb/boot/vmlinuz-$kver" "$work/vmlinuz"
bash "$ROOT/image/extract-vmlinux.sh" "$work/vmlinuz" "$work/vmlinux" ||
	die "could not extract vmlinux from vmlinuz-$kver"

# --- 5b. Modules for image boots (loaded from the image, not the initramfs) ---
overlay_src=$moddir/${mod_path[overlay]:-}
[ -n "${mod_path[overlay]:-}" ] || die "module overlay not found in $kver"
case "$overlay_src" in
*.ko) cp "$overlay_src" "$work/overlay.ko" ;;
*.ko.xz) xz -dc "$overlay_src" >"$work/overlay.ko" ;;
*.ko.zst) zstd -q -dc "$overlay_src" >"$work/overlay.ko" ;;
*) die "unknown module format: $overlay_src" ;;
esac
bash "$ROOT/image/strip-module-sig.sh" "$work/overlay.ko"

# --- 6. Publish atomically and write the manifest ---------------------------
mkdir -p "$OUT/modules"
mv -f "$work/overlay.ko" "$OUT/modules/overlay.ko"
for f in vmlinuz vmlinux initramfs.cpio; do mv -f "$work/$f" "$OUT/$f"; done
mods_json=
for m in "${order[@]}"; do mods_json+="{\"name\": \"$m\", \"load\": \"${mod_tag[$m]}\"},"; done
cat >"$OUT/manifest.json.tmp" <<EOF
{
  "input_hash": "$input_hash",
  "kernel_package": "$pkg",
  "kernel_package_version": "$ver",
  "kernel_version": "$kver",
  "kernel_deb_sha256": "$deb_sha",
  "busybox_sha256": "$busybox_sha",
  "busybox_version": "$("$BUSYBOX" 2>&1 | head -n 1 | sed 's/ multi-call binary.*//; s/"//g')",
  "ironclaw_guest_sha256": "$guest_sha",
  "build_script_sha256": "$script_sha",
  "modules": [${mods_json%,}],
  "vmlinuz_sha256": "$(sha "$OUT/vmlinuz")",
  "vmlinux_sha256": "$(sha "$OUT/vmlinux")",
  "initramfs_sha256": "$(sha "$OUT/initramfs.cpio")",
  "overlay_ko_sha256": "$(sha "$OUT/modules/overlay.ko")",
  "initramfs_files": $nfiles,
  "initramfs_bytes": $size
}
EOF
mv -f "$OUT/manifest.json.tmp" "$OUT/manifest.json"
say "done: $OUT (kernel $kver, ${#order[@]} modules)"
