#!/bin/sh
# Verifier: bin/greet is executable and greets.
cd "$(dirname "$0")/.." || exit 1
ok=1
[ -x bin/greet ] || ok=0
[ "$(./bin/greet world 2>/dev/null)" = "hello, world" ] || ok=0
[ "$(./bin/greet 'Ada L' 2>/dev/null)" = "hello, Ada L" ] || ok=0
[ -d /logs/verifier ] && echo $ok > /logs/verifier/reward.txt
[ $ok = 1 ] && echo "verifier: pass" || echo "verifier: FAIL"
[ $ok = 1 ]
