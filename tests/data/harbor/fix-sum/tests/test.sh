#!/bin/sh
# Verifier: sum.sh adds, and only sum.sh's loop changed.
cd "$(dirname "$0")/.." || exit 1
ok=1
[ "$(sh sum.sh 2 3 4)" = 9 ] || ok=0
[ "$(sh sum.sh)" = 0 ] || ok=0
[ "$(sh sum.sh -5 5 100)" = 100 ] || ok=0
[ "$(grep -c '' sum.sh)" = 7 ] || ok=0
[ -d /logs/verifier ] && echo $ok > /logs/verifier/reward.txt
[ $ok = 1 ] && echo "verifier: pass" || echo "verifier: FAIL"
[ $ok = 1 ]
