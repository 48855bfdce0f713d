#!/usr/bin/env bash
# Builds the plugin into build/{{name}}.wasm with ComponentizeJS (the exact
# version in package.json, installed by `npm install` on the first build;
# COMPONENTIZE_JS may name an installed componentize-js instead).
set -euo pipefail
cd "$(dirname "$0")"
cjs="${COMPONENTIZE_JS:-node_modules/.bin/componentize-js}"
if [ -z "${COMPONENTIZE_JS:-}" ] && [ ! -x "$cjs" ]; then
  npm install --no-audit --no-fund --silent
fi
mkdir -p build
# No outgoing HTTP and no incoming requests: leave those out.
"$cjs" plugin.js --wit wit --world-name {{world}} --disable http fetch-event \
  --out build/{{name}}.wasm > /dev/null
