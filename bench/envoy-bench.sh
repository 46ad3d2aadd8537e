#!/usr/bin/env bash
# Envoy benchmark: native header routing vs the canary filter (S3, S4, S5, a 100-rule policy, a default-only
# policy) vs a hand-written Lua filter (S3, S4) vs the same job as an idiomatic proxy-wasm SDK filter
# (bench/sdk-filter: S3, S4) vs a no-op wasm module, measured in alternation in one run.
# Builds what it needs (idempotent), then runs bench/envoy_bench.py; extra arguments go to it, e.g.
#   bench/envoy-bench.sh --rounds 3 --duration 5 --configs native,canary-s3,lua-s3
#   bench/envoy-bench.sh --instructions          # instructions per request under callgrind instead of wrk
#   bench/envoy-bench.sh --instructions --configs scenarios   # S1–S6 as proxies serve them: native lowering
#                                                # vs hand-written routes (bench/native/) vs filter/Lua/floor
# Results: a markdown table on stdout, raw numbers in bench/results/envoy-<date>.json. See BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

source bench/setup.sh
bench_setup wrk
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  scripts/build-filter.sh
  bench/sdk-filter/build.sh  # after build-filter.sh, which installs wasm-opt
  cargo build --release -p canaryc
fi
mkdir -p bench/results
kind=envoy
[[ " $* " == *" --instructions "* ]] && kind=instructions
exec "$python" bench/envoy_bench.py --envoy "$envoy" --json "bench/results/$kind-$(date +%Y%m%d-%H%M%S).json" "$@"
