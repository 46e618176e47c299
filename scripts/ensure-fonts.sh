#!/usr/bin/env bash
# Make sure the fonts access copies (PDF) are written in are installed: Debian's DejaVu Sans (Latin, Greek, Cyrillic,
# Arabic, Hebrew, ...) and Droid Sans Fallback (Chinese, Japanese, Korean); without them a person's name in another
# script is written as \uXXXX escapes. The image carries the same two fonts (Dockerfile). Idempotent; needs root
# (apt-get) the first time.
set -euo pipefail
say() { echo "ensure-fonts: $*" >&2; }
missing=()
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || missing+=(fonts-droid-fallback)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "missing ${missing[*]} and cannot install them (needs root and apt-get): apt-get install ${missing[*]}"
  exit 1
fi
say "installing ${missing[*]} (once)"
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
