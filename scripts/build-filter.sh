#!/usr/bin/env bash
# Builds the proxy-wasm filter: build/canary_filter.wasm (wasm32-unknown-unknown, `wasm` profile, wasm-opt -Oz).
# Idempotent: installs the rust target and binaryen (npm, project-local under build/node) only when missing.
# Debian's binaryen package is not used: its wasm-opt is broken.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
binaryen_version=132
out="build/canary_filter.wasm"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

cargo build -p canary-filter --target wasm32-unknown-unknown --profile wasm
raw="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/wasm/canary_filter.wasm"

wasm_opt="build/node/node_modules/.bin/wasm-opt"
if [[ ! -x "$wasm_opt" ]] || [[ "$("$wasm_opt" --version 2>/dev/null)" != *"version ${binaryen_version}"* ]]; then
  mkdir -p build/node
  npm install --silent --no-audit --no-fund --prefix build/node "binaryen@${binaryen_version}"
fi

mkdir -p build
# Envoy's V8 supports these post-MVP features; rustc emits them for wasm32-unknown-unknown by default
# (SIMD because .cargo/config.toml asks for it).
"$wasm_opt" -Oz --converge --enable-simd --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
  --enable-multivalue --enable-reference-types --strip-debug --strip-producers "$raw" -o "$out.tmp"
mv "$out.tmp" "$out"

kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
raw_size=$(stat -c %s "$raw")
out_size=$(stat -c %s "$out")
echo "canary_filter.wasm: ${raw_size} bytes ($(kib "$raw_size")) from cargo, ${out_size} bytes ($(kib "$out_size")) after wasm-opt -> $out"
# 512 KiB since `~` runs on regex-automata's lazy DFA (issue 24: 371.9 KiB; 232.5 KiB with regex-lite before).
budget=$((512 * 1024))
if (( out_size > budget )); then
  echo "warning: the module is over its ${budget}-byte (512 KiB) budget; BENCHMARKS.md \"Module size\" says what it holds" >&2
fi
