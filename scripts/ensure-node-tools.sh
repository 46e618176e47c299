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
scripts/ensure-npm.sh
mkdir -p "$dest"
cp scripts/node-tools/package.json "$lock" "$dest/"
(cd "$dest" && npm ci --silent --no-audit --no-fund --ignore-scripts >&2)
echo "$want" > "${dest}/.installed"
echo "${dest}/node_modules"
