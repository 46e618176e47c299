#!/usr/bin/env bash
# Install the Node.js validators the tests use (scripts/node-tools/package.json, pinned by its package-lock.json):
# the official AsyncAPI 3.0 JSON Schema (@asyncapi/specs) and parser (@asyncapi/parser) for docs/asyncapi.yaml,
# and the KEDA / Prometheus Operator CRD models for the chart's custom resources. Into
# ${LEADPIPE_NODE_TOOLS:-~/.cache/leadpipe/node-tools}; idempotent (skipped while the lock file is unchanged).
# Prints the node_modules path. Without npm it says so and exits 1; the tests that need these then skip
# (outside CI) or fail (CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${LEADPIPE_NODE_TOOLS:-${HOME}/.cache/leadpipe/node-tools}"
lock=scripts/node-tools/package-lock.json
want="$(sha256sum scripts/node-tools/package.json "$lock" | sha256sum | cut -d' ' -f1)"
if [ -f "${dest}/.installed" ] && [ "$(cat "${dest}/.installed")" = "$want" ] && [ -d "${dest}/node_modules" ]; then
  echo "${dest}/node_modules"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "ensure-node-tools: npm is not installed (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
fi
mkdir -p "$dest"
cp scripts/node-tools/package.json "$lock" "$dest/"
(cd "$dest" && npm ci --silent --no-audit --no-fund --ignore-scripts >&2)
echo "$want" > "${dest}/.installed"
echo "${dest}/node_modules"
