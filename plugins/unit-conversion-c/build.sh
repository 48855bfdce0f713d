#!/usr/bin/env bash
# Builds the C unit-conversion plugin into a component:
#   1. bindings: `wasmeter plugin bindings --world transformer`
#   2. compile:  zig cc (PyPI `ziglang`, pinned in requirements.txt, in a
#                venv under target/polyglot) for wasm32-wasi as a reactor
#   3. wrap:     `wasmeter plugin componentize` (world + WASI adapter)
#
#   plugins/unit-conversion-c/build.sh OUT_WASM
# WASMETER names the wasmeter binary (default: `wasmeter` on PATH). CC may
# name another C compiler for wasm32-wasi (clang with a wasi-sysroot).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$1"
wasmeter="${WASMETER:-wasmeter}"
work="$root/target/polyglot/unit-conversion-c"
mkdir -p "$work" "$(dirname "$out")"

if [ -z "${CC:-}" ]; then
  venv="$root/target/polyglot/zig-venv"
  "$root/plugins/venv.sh" "$here/requirements.txt" "$venv"
  export ZIG_GLOBAL_CACHE_DIR="$root/target/polyglot/zig-cache"
  export ZIG_LOCAL_CACHE_DIR="$root/target/polyglot/zig-cache"
  cc=("$venv/bin/python" -m ziglang cc -target wasm32-wasi)
else
  read -ra cc <<< "$CC"
  cc+=(--target=wasm32-wasi)
fi

"$wasmeter" plugin bindings --world transformer -o "$work/bindings" > /dev/null
"${cc[@]}" -mexec-model=reactor -O2 -Wall -Werror -Wl,--strip-debug -Wl,-z,stack-size=1048576 \
  -I "$work/bindings" "$here/unit_conversion.c" "$work/bindings/transformer.c" \
  -o "$work/core.wasm"
"$wasmeter" plugin componentize "$work/core.wasm" --world transformer -o "$out" > /dev/null
