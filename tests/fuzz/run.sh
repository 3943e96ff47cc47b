#!/usr/bin/env bash
# Builds each tests/fuzz/fuzz_<name>.c as a libFuzzer binary (clang) and runs it
# for FUZZ_SECONDS (default 60) over its corpus, adding new finds to the corpus.
# FUZZ_ONLY=name (without fuzz_) runs one target. The host code (everything but
# src/cli and src/guest) and the guest agent (src/guest without its main) are
# compiled once, instrumented, into two archives; a fuzz_guest_* target links
# the guest's first, so each target pulls only the objects it needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
out=build/fuzz
flags=(-std=c17 -D_GNU_SOURCE -Isrc -g -O1)
san=-fsanitize=address,undefined
libs=(-ljansson -lcurl -lmicrohttpd -lseccomp -lnftables -lmnl -luv -larchive -lgit2 -lcrypto -lpthread)
mkdir -p "$out/obj"

# Compiles the given sources into $out/obj and archives them as $1.
build_archive() {
	local lib=$1
	shift
	local objs=()
	for c in "$@"; do
		local o=$out/obj/${c//\//_}.o
		if [ ! -e "$o" ] || [ "$c" -nt "$o" ]; then
			clang "${flags[@]}" -fsanitize=fuzzer-no-link $san -c -o "$o" "$c"
		fi
		objs+=("$o")
	done
	rm -f "$lib"
	ar rcs "$lib" "${objs[@]}"
}

echo "fuzz: building the instrumented host and guest code"
mapfile -t host_src < <(find src -name '*.c' -not -path 'src/cli/*' -not -path 'src/guest/*' | sort)
mapfile -t guest_src < <(find src/guest -name '*.c' -not -name main.c | sort)
build_archive "$out/libhost.a" "${host_src[@]}"
build_archive "$out/libguest.a" "${guest_src[@]}"

for f in tests/fuzz/fuzz_*.c; do
	name=$(basename "$f" .c)
	if [ -n "${FUZZ_ONLY:-}" ] && [ "$name" != "fuzz_$FUZZ_ONLY" ]; then
		continue
	fi
	corpus=tests/fuzz/corpus/${name#fuzz_}
	mkdir -p "$corpus"
	archives=("$out/libhost.a")
	case $name in fuzz_guest_*) archives=("$out/libguest.a" "$out/libhost.a") ;; esac
	echo "fuzz: building $name"
	clang "${flags[@]}" -fsanitize=fuzzer $san -o "$out/$name" "$f" "${archives[@]}" "${libs[@]}"
	echo "fuzz: running $name for ${secs}s"
	"$out/$name" -max_total_time="$secs" -max_len=$((1 << 20)) "$corpus"
done
