#!/usr/bin/env bash
# Builds the SDK peer twice (header read with `_bytes`, and as `String` with --features utf8-header) and shows
# in real Envoy what a user agent that is not UTF-8 does to each (non-utf8.py). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
envoy="$(scripts/setup-envoy.sh 2>/dev/null | tail -n 1)"
OUT=build/sdk_filter_utf8.wasm bench/sdk-filter/build.sh --features utf8-header
bench/sdk-filter/build.sh
exec .venv/bin/python bench/sdk-filter/non-utf8.py --envoy "$envoy" --bytes-wasm build/sdk_filter.wasm \
  --string-wasm build/sdk_filter_utf8.wasm "$@"
