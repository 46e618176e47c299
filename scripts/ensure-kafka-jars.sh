#!/usr/bin/env bash
# Make sure the local Kafka launcher can run: Java >= 17 and Maven (installed from Debian's packages when missing
# and we are root), then resolve the broker jars into the cache (`leadpipe kafka fetch`). Idempotent.
# Start a broker for development with `.venv/bin/leadpipe kafka up` (and stop it with `leadpipe kafka down`).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "ensure-kafka-jars: $*" >&2; }

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\.\{0,1\}\([0-9]*\).*/\1 \2/p' | head -n 1 |
  awk '{ if ($1 == 1) print $2; else print $1 }'; }
need=()
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi
if ! command -v mvn >/dev/null 2>&1; then need+=(maven); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    say "missing ${need[*]}: install them (Debian/Ubuntu: apt-get install -y ${need[*]})"
    exit 1
  fi
fi
.venv/bin/leadpipe kafka fetch
