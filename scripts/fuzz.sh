#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target in tests/tests/fuzz_targets.rs (proptest at scale, stable Rust) for a fixed
# time budget and prints the executions each ran. FUZZ_SECS (default 60) is the budget per target; set
# PROPTEST_CASES instead (and FUZZ_SECS=0) for a fixed number of cases. A failure prints the shrunk input: add it
# under tests/corpus/ (replayed by `corpus_replay` in `make test`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${FUZZ_SECS:-60}"
log="$(mktemp -t canary-fuzz.XXXXXX)"
trap 'rm -f "$log"' EXIT

if [[ "$secs" != "0" ]]; then
  export CANARY_FUZZ_SECS="$secs"
fi
status=0
cargo test -p canary-tests --test fuzz_targets fuzz_ -- --nocapture --test-threads 1 >"$log" 2>&1 || status=$?
if [[ $status -ne 0 ]]; then
  cat "$log"
  echo "fuzz: FAILED (see the shrunk input above)" >&2
  exit "$status"
fi
echo "fuzz: executions per target (budget ${secs}s each):"
grep -o 'fuzz [a-z_]*: [0-9]* executions.*' "$log"
