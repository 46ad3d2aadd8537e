#!/usr/bin/env bash
# `make bench-scale`: what N = 10 … 10,000 rules of each kind cost one Envoy in each backend form
# (instructions per request under callgrind, time to ready, push → applied, RSS), what `--backend auto` picks,
# and the goals; see bench/bench_scale.py and BENCHMARKS.md ("Scale"). Long: the 10,000-route lists under
# callgrind take most of it (≈ 1 h on a busy 2-core machine). Extra arguments go to bench_scale.py, e.g.
#   bench/bench-scale.sh --kinds header,cookie --sizes 10,10000 --skip-instructions
# Results: bench/results/scale-<time>.json, the report on stdout, the plot in bench/results/scale-<time>.svg.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/setup.sh
bench_setup
"$python" -c 'import matplotlib' 2>/dev/null ||
  "$python" -m pip install --quiet --disable-pip-version-check 'matplotlib>=3.8,<4'
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  scripts/build-filter.sh
  cargo build --release -p canaryc
fi
mkdir -p bench/results
stamp=$(date +%Y%m%d-%H%M%S)
"$python" bench/bench_scale.py --envoy "$envoy" --json "bench/results/scale-$stamp.json" "$@"
"$python" bench/scale_report.py "bench/results/scale-$stamp.json" --svg "bench/results/scale-$stamp.svg"
