#!/usr/bin/env bash
# Builds the plugin, runs it once with `wasmeter plugin test` on test/ and
# compares its output with the expected file. Exit 0 when they match.
# WASMETER names the wasmeter binary (default: `wasmeter` on PATH, else the
# one that made this project).
set -euo pipefail
cd "$(dirname "$0")"
WASMETER="${WASMETER:-$(command -v wasmeter || echo '{{wasmeter}}')}"
export WASMETER
./build.sh
"$WASMETER" plugin test build/{{name}}.wasm {{test_args}}
