#!/usr/bin/env bash
# Create .venv (Python >= 3.11) if missing and install leadpipe with its test extra. Idempotent: the install is
# skipped while pyproject.toml is unchanged since the last successful one.
set -euo pipefail
cd "$(dirname "$0")/.."

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; }

if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
  PY=""
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
      PY="$(command -v "$candidate")"
      break
    fi
  done
  if [ -z "$PY" ]; then
    echo "bootstrap: no python3 >= 3.11 on PATH (Debian 12: apt-get install -y python3 python3-venv)" >&2
    exit 1
  fi
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv's ensurepip separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      rm -rf .venv
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "bootstrap: '$PY -m venv' failed; install python3-venv" >&2
      exit 1
    fi
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  echo "bootstrap: created .venv with $("$PY" --version)" >&2
fi

stamp=.venv/.leadpipe-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/leadpipe ]; then
  echo "bootstrap: .venv up to date" >&2
  exit 0
fi
.venv/bin/python -m pip install -q -e '.[test]'
echo "$want" > "$stamp"
echo "bootstrap: installed leadpipe[test] into .venv" >&2
