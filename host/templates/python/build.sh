#!/usr/bin/env bash
# Builds the plugin into build/{{name}}.wasm with componentize-py (pinned in
# requirements.txt, installed once into .venv; PY_VENV may name another
# virtual environment that has it). componentize-py makes the bindings of
# wit/ itself, in a temporary folder; nothing generated is kept.
set -euo pipefail
cd "$(dirname "$0")"
venv="${PY_VENV:-.venv}"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Build from a copy (no __pycache__ here), and with VIRTUAL_ENV at an empty
# environment: otherwise componentize-py puts this machine's site-packages
# on the plugin's module path.
mkdir -p "$work/app" "$work/env/lib/python3/site-packages" build
cp ./*.py "$work/app/"
VIRTUAL_ENV="$work/env" "$venv/bin/componentize-py" -q -d wit -w {{world}} \
  componentize -p "$work/app" app -o build/{{name}}.wasm
