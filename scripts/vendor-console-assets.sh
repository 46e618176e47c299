#!/usr/bin/env bash
# The console's browser code comes from the npm registry, pinned, through npm itself (no CDN, no build chain):
# htmx (served by the console, committed under pipeline/console/static/vendor/ so an installed leadpipe needs no
# npm) and axe-core (the browser tests' accessibility checker, cached under ~/.cache/leadpipe/npm, never served).
#
#   scripts/vendor-console-assets.sh          # check the committed htmx is the pinned one; fetch axe-core if missing
#   scripts/vendor-console-assets.sh --update # re-vendor htmx at HTMX_VERSION
#
# `npm pack` checks each tarball against the registry's integrity hash; the committed file's SHA-256 is checked here
# against the tarball's, so a hand-edited vendor file fails the check. Prints axe-core's path as the only stdout line.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "vendor-console-assets: $*" >&2; }

HTMX_VERSION=2.0.8
AXE_VERSION=4.14.1
vendor=pipeline/console/static/vendor
cache="${LEADPIPE_CACHE_DIR:-${HOME}/.cache/leadpipe}/npm"

unpack() {  # unpack NAME VERSION DIR: the package's tarball from the registry, unpacked into DIR/package
  local name="$1" version="$2" dir="$3"
  scripts/ensure-npm.sh || { say "needs npm to fetch ${name}@${version} from the npm registry"; exit 1; }
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "${name}@${version}" >/dev/null && tar -xzf ./*.tgz)
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ "${1:-}" = "--update" ] || [ ! -f "${vendor}/htmx.min.js" ]; then
  unpack htmx.org "$HTMX_VERSION" "$tmp/htmx"
  mkdir -p "$vendor"
  cp "$tmp/htmx/package/dist/htmx.min.js" "${vendor}/htmx.min.js"
  cp "$tmp/htmx/package/LICENSE" "${vendor}/htmx.LICENSE"
  echo "htmx.org@${HTMX_VERSION} $(sha256sum "${vendor}/htmx.min.js" | cut -d' ' -f1)" > "${vendor}/VERSIONS"
  say "vendored htmx.org@${HTMX_VERSION} into ${vendor}"
else
  want="$(awk '$1 ~ /^htmx.org@/ {print $1" "$2}' "${vendor}/VERSIONS")"
  have="htmx.org@${HTMX_VERSION} $(sha256sum "${vendor}/htmx.min.js" | cut -d' ' -f1)"
  if [ "$want" != "$have" ]; then
    say "${vendor}/htmx.min.js is not htmx.org@${HTMX_VERSION} as vendored (run with --update)"
    exit 1
  fi
fi

axe="${cache}/axe-core-${AXE_VERSION}/axe.min.js"
if [ ! -f "$axe" ]; then
  unpack axe-core "$AXE_VERSION" "$tmp/axe"
  mkdir -p "$(dirname "$axe")"
  cp "$tmp/axe/package/axe.min.js" "$axe.$$" && mv "$axe.$$" "$axe"
  say "fetched axe-core@${AXE_VERSION} into ${axe}"
fi
echo "$axe"
