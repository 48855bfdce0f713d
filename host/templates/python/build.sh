#!/usr/bin/env bash
# Builds the plugin into build/{{name}}.wasm with componentize-py (pinned in
# requirements.txt, installed once into .venv; PY_VENV may name another
# virtual environment that has it). The bindings are generated at every
# build from wit/, outside the source tree.
set -euo pipefail
cd "$(dirname "$0")"
venv="${PY_VENV:-.venv}"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/componentize-py" -d wit -w {{world}} bindings "$work" > /dev/null
mkdir -p build
"$venv/bin/componentize-py" -d wit -w {{world}} componentize -p . -p "$work" app \
  -o build/{{name}}.wasm > /dev/null
