#!/usr/bin/env bash
# Big tables in Envoy: instructions per request under callgrind for N exact-header rules written as a route list,
# a matcher tree (`--native-tables tree`) and the canary filter (bench/envoy_tables.py). Extra arguments go to
# the script, e.g.
#   bench/envoy-tables.sh --sizes 3,4 --forms list,tree      # where the tree starts to pay
#   bench/envoy-tables.sh --sizes 10,1000,10000 --miss       # also a request no rule takes
# Results: a markdown table on stdout; BENCHMARKS.md "Big tables".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/setup.sh
bench_setup
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  scripts/build-filter.sh
  cargo build -p canaryc
fi
cd /tmp  # the repository's yaml/ crate directory would shadow PyYAML on the script's path
exec "$root/$python" "$root/bench/envoy_tables.py" --envoy "$envoy" "$@"
