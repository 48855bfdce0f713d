#!/usr/bin/env bash
# Builds the Python unit-conversion transformer into a Wasm component.
#   plugins/unit-conversion-py/build.sh OUT_WASM
#
# Needs only python3 (with venv and pip). componentize-py, pinned in
# requirements.txt, is installed once into target/polyglot/py-venv (again
# when requirements.txt changes). The WIT bindings are generated into a
# temporary folder at every build and never kept in the source tree. The
# output is not byte-reproducible (componentize-py snapshots a pre-initialised
# interpreter): two builds of the same source differ.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_WASM" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$1"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

venv="$root/target/polyglot/py-venv"
"$root/plugins/venv.sh" "$here/requirements.txt" "$venv"

work="$(mktemp -d "${TMPDIR:-/tmp}/unit-conversion-py.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# componentize-py generates the `transformer` world's bindings (`wit_world`,
# `componentize_py_types`) itself, in a temporary folder of its own; nothing
# generated is kept. The app is built from a copy so that no __pycache__ lands
# in the source tree, and VIRTUAL_ENV points at an empty environment: without
# it componentize-py adds the building machine's own site-packages to the
# guest's module path.
mkdir -p "$work/app" "$work/env/lib/python3/site-packages"
cp "$here/app.py" "$work/app/"
mkdir -p "$(dirname "$out")"
VIRTUAL_ENV="$work/env" "$venv/bin/componentize-py" -q -d "$root/wit" -w transformer \
  componentize -p "$work/app" app -o "$out.tmp"
mv "$out.tmp" "$out"
