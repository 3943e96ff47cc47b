#!/usr/bin/env bash
# Builds each tests/fuzz/fuzz_<name>.c as a libFuzzer binary (clang) and runs it
# for FUZZ_SECONDS (default 60) over its corpus, adding new finds to the corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p "$out"
src="$(find src/core src/proto src/mcp src/net src/llm -name '*.c' 2>/dev/null | sort) src/vm/fc_parse.c"
for f in tests/fuzz/fuzz_*.c; do
	name=$(basename "$f" .c)
	corpus=tests/fuzz/corpus/${name#fuzz_}
	mkdir -p "$corpus"
	echo "fuzz: building $name"
	# shellcheck disable=SC2086
	clang -std=c17 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined \
		-o "$out/$name" "$f" $src -ljansson -lcurl -luv -lcrypto -lpthread
	echo "fuzz: running $name for ${secs}s"
	"$out/$name" -max_total_time="$secs" -max_len=$((1 << 20)) "$corpus"
done
