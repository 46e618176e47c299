#!/usr/bin/env bash
# Make sure the spam engine's programs are on this machine: rspamd and redis-server from Debian's packages.
# LEADPIPE_SPAM_SA_RULES=1 also installs SpamAssassin's stock rules (package spamassassin, without its recommends:
# rspamd loads the rules itself, no spamd runs; off by default, see docs/processing.md for what they cost and give).
# Idempotent; installing needs root. Starts nothing: the tests' fixture, `leadpipe spam engine up` and `make demo` start the engine
# (pipeline/spam/launcher.py) with an offline configuration under a directory of their own.
set -euo pipefail

say() { echo "ensure-spam-engine: $*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    say "need root for: $*"; exit 1
  fi
}

packages=()
command -v rspamd >/dev/null 2>&1 || packages+=(rspamd)
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
if [ "${LEADPIPE_SPAM_SA_RULES:-0}" = 1 ] && ! ls /usr/share/spamassassin/*.cf >/dev/null 2>&1; then
  packages+=(spamassassin)
fi
if [ ${#packages[@]} -gt 0 ]; then
  say "installing ${packages[*]} from Debian's packages"
  as_root apt-get update -qq
  # policy-rc.d exit 101: Debian's maintainer scripts must not start a system rspamd or Redis on the default ports
  # (the launcher starts its own, offline). Only when no policy-rc.d exists, and removed again whatever happens.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # No recommends: spamassassin's (sa-compile, spamc, ...) are for running spamd, which leadpipe does not.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
rspamd --version >&2
redis-server --version >&2
