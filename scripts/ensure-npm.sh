#!/usr/bin/env bash
# Make sure npm is on PATH (Debian's nodejs + npm, installed when missing; needs root and apt-get the first time).
# Used by the scripts that fetch from the npm registry (ensure-node-tools.sh, vendor-console-assets.sh). Exits 1,
# saying why, when npm is missing and cannot be installed.
set -euo pipefail
if command -v npm >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  exit 0
fi
echo "ensure-npm: npm is not installed (Debian: apt-get install nodejs npm)" >&2
exit 1
