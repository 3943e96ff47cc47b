#!/bin/sh
set -e
cd "$(dirname "$0")/.."
sed -i 's/goodbye/hello/' bin/greet
chmod 0755 bin/greet
