#!/bin/sh
# Verifier: config/app.ini has both sections with the right keys, in order.
cd "$(dirname "$0")/.." || exit 1
f=config/app.ini
ok=1
[ -f $f ] || ok=0
# key = value under each section (awk tracks the current section)
got=$(awk '/^\[/{s=$0; next} NF && !/^[;#]/{gsub(/[ \t]/, ""); print s $0}' $f 2>/dev/null | sort | tr '\n' ' ')
[ "$got" = "[log]level=info [server]host=127.0.0.1 [server]port=8080 " ] || ok=0
[ -d /logs/verifier ] && echo $ok > /logs/verifier/reward.txt
[ $ok = 1 ] && echo "verifier: pass" || echo "verifier: FAIL"
[ $ok = 1 ]
