#!/usr/bin/env bash
# Make sure the browser the console's tests drive is installed: Debian's chromium (Playwright for Python drives it
# through executable_path; Playwright's own browser download cannot work here and is never used). Idempotent; needs
# root (apt-get) the first time. Prints the browser's path as the only line on stdout.
set -euo pipefail
say() { echo "ensure-chromium: $*" >&2; }
browser="${LEADPIPE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  echo "$browser"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "chromium is missing and cannot be installed (needs root and apt-get): apt-get install chromium"
  exit 1
fi
say "installing Debian's chromium (once)"
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
echo "$browser"
