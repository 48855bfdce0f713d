#!/usr/bin/env bash
# Builds the plugin into build/{{name}}.wasm (cargo, target wasm32-wasip2,
# installed by rust-toolchain.toml).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2 --quiet
target="${CARGO_TARGET_DIR:-target}"
mkdir -p build
cp "$target/wasm32-wasip2/release/{{name_snake}}.wasm" build/{{name}}.wasm
