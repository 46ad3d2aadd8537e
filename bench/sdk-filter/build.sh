#!/usr/bin/env bash
# Builds the proxy-wasm SDK peer (bench/sdk-filter, its own workspace) into build/sdk_filter.wasm: cargo's
# release profile (the SDK's own), then wasm-opt -Oz with the flags scripts/build-filter.sh uses, so the two
# modules are optimized alike. Needs build/node's binaryen (scripts/build-filter.sh installs it). Idempotent.
# Extra arguments go to cargo, e.g. `--features utf8-header`; OUT names another output file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${OUT:-build/sdk_filter.wasm}"
# The project's target dir (one per work tree: the disk is shared), not one of the crate's own.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --target wasm32-unknown-unknown --manifest-path bench/sdk-filter/Cargo.toml "$@"
raw="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/sdk_filter.wasm"
wasm_opt="build/node/node_modules/.bin/wasm-opt"
[[ -x "$wasm_opt" ]] || { echo "no $wasm_opt: run scripts/build-filter.sh first" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$wasm_opt" -Oz --converge --enable-simd --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
  --enable-multivalue --enable-reference-types --strip-debug --strip-producers "$raw" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "sdk_filter.wasm: $(stat -c %s "$raw") bytes from cargo, $(stat -c %s "$out") bytes after wasm-opt -> $out"
