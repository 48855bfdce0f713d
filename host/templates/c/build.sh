#!/usr/bin/env bash
# Builds the plugin into build/{{name}}.wasm:
#   1. bindings: `wasmeter plugin bindings --world {{world}}` into build/
#   2. compile:  zig cc (PyPI `ziglang`, pinned in requirements.txt, in .venv;
#                PY_VENV may name another venv that has it) for wasm32-wasi,
#                as a reactor; or $CC (clang with a wasi-sysroot) when set
#   3. wrap:     `wasmeter plugin componentize` (the world + WASI adapter)
# WASMETER names the wasmeter binary (default: `wasmeter` on PATH, else the
# one that made this project).
set -euo pipefail
cd "$(dirname "$0")"
wasmeter="${WASMETER:-$(command -v wasmeter || echo '{{wasmeter}}')}"
if [ -z "${CC:-}" ]; then
  venv="${PY_VENV:-.venv}"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import ziglang" 2> /dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  fi
  cc=("$venv/bin/python" -m ziglang cc -target wasm32-wasi)
else
  read -ra cc <<< "$CC"
  cc+=(--target=wasm32-wasi)
fi
mkdir -p build/bindings
"$wasmeter" plugin bindings --world {{world}} -o build/bindings > /dev/null
"${cc[@]}" -mexec-model=reactor -O2 -Wall -Werror -Wl,--strip-debug -Wl,-z,stack-size=1048576 -I build/bindings \
  plugin.c build/bindings/{{world_snake}}.c -o build/core.wasm
"$wasmeter" plugin componentize build/core.wasm --world {{world}} -o build/{{name}}.wasm > /dev/null
