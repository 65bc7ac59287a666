#!/usr/bin/env bash
# Runs the given command after making sure dependencies are installed.
# A fresh clone has no node_modules: install exactly what the lock file says.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[rbm-dispatch] installing dependencies (npm ci)..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
export PATH="$PWD/node_modules/.bin:$PATH"
exec "$@"
