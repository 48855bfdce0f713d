#!/usr/bin/env bash
# Builds the JavaScript unit-conversion transformer into a Wasm component of
# the `wasmeter:plugin/transformer` world with ComponentizeJS.
#
#   bash plugins/unit-conversion-js/build.sh OUT_WASM
#
# Needs node ≥ 18 and npm. Installs the exact versions of package-lock.json
# into this folder's node_modules with `npm ci` when they are missing or the
# lock changed (a stamp file holds the lock's SHA-256).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUT_WASM" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$1"
case "$out" in
  /*) ;;
  *) out="$PWD/$out" ;;
esac

stamp="$here/node_modules/.wasmeter-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ ! -x "$here/node_modules/.bin/componentize-js" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund)
  echo "$want" >"$stamp"
fi

mkdir -p "$(dirname "$out")"
# Only stdio is kept: an uncaught exception (a bug) is then written to stderr,
# which the host logs, before the trap. The plugin needs no outgoing HTTP
# (fetch), no incoming-request handler, no clocks (Date.now, timers) and no
# random (Math.random stays, deterministic). `--disable` of all five gives a
# component that imports only wasmeter:plugin, but traps without a message.
(cd "$here" && node_modules/.bin/componentize-js unit-conversion.js \
  --wit "$repo/wit" --world-name transformer \
  --disable http fetch-event clocks random \
  --out "$out")
echo "built $out ($(stat -c %s "$out") bytes)"
