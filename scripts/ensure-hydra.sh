#!/usr/bin/env bash
# Make sure the OpenID Connect provider the tests sign in with is built: Ory Hydra (an OpenID Certified OAuth2 and
# OIDC server), built with `go` from the Go module proxy into the cache, once. Idempotent; prints the binary's path
# as the only line on stdout.
#
# Why Hydra and not Dex: the Go module proxy this project reaches serves no Dex version that has PKCE (only
# v2.13.0+incompatible, from 2018). Hydra v2.3.0 is served; it is built from a tool module (scripts/hydra/go.mod,
# committed with go.sum, so the build is pinned) because `go install hydra@v2.3.0` refuses a module with replace
# directives, and Hydra's pop replacement is carried over here. `-tags sqlite` gives it an in-memory store
# (dsn: memory), so a test session needs no database for it. A fresh machine takes about 8 minutes on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "ensure-hydra: $*" >&2; }

version="$(awk '$1 == "github.com/ory/hydra/v2" {print $2}' scripts/hydra/go.mod)"
cache="${LEADPIPE_CACHE_DIR:-${HOME}/.cache/leadpipe}/hydra/${version}"
binary="${cache}/hydra"
stamp="${cache}/.built-from"
want="$(cat scripts/hydra/go.mod scripts/hydra/go.sum | sha256sum | cut -d' ' -f1)"

if [ -x "$binary" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$binary"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  say "needs Go (golang from Debian's packages, or the toolchain on PATH) to build Ory Hydra ${version}"
  exit 1
fi
if ! command -v gcc >/dev/null 2>&1; then
  say "needs gcc (cgo: Hydra's in-memory SQLite store); apt-get install -y gcc"
  exit 1
fi
mkdir -p "$cache"
say "building Ory Hydra ${version} with $(go version | cut -d' ' -f3) (once; cached in ${cache})"
started=$SECONDS
tmp="${binary}.$$.tmp"
(cd scripts/hydra && CGO_ENABLED=1 go build -trimpath -tags sqlite -o "$tmp" github.com/ory/hydra/v2)
mv "$tmp" "$binary"
echo "$want" > "$stamp"
say "built in $((SECONDS - started))s: ${binary}"
echo "$binary"
