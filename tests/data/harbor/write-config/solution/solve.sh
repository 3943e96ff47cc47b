#!/bin/sh
set -e
cd "$(dirname "$0")/.."
mkdir -p config
printf '[server]\nport = 8080\nhost = 127.0.0.1\n\n[log]\nlevel = info\n' > config/app.ini
