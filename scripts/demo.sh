#!/usr/bin/env bash
# `make demo`: show the compiler on the weather policy, then run every scenario in real Envoys.
set -euo pipefail
cd "$(dirname "$0")/.."
CANARYC=target/release/canaryc

# Prints the command as one could paste it (arguments with spaces quoted), then runs it.
step() {
  local shown="" arg
  for arg in "$@"; do
    if [[ $arg == *[[:space:]]* ]]; then shown+=" '$arg'"; else shown+=" $arg"; fi
  done
  printf '\n\033[1m$%s\033[0m\n' "$shown"
  "$@"
}

echo "== canaryc: the policy language, compiled and evaluated =="
step cat examples/s5-tester-chain.canary
step "$CANARYC" check examples/s5-tester-chain.canary
step "$CANARYC" eval examples/s5-tester-chain.canary --service frontend --cookie user=tester --json
step "$CANARYC" eval examples/s5-tester-chain.canary --service forecast --source version=v2
step "$CANARYC" simulate examples/s4-android-split.canary -n 100000 \
  --header 'user-agent: Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36'
step "$CANARYC" eval examples/s5-tester-chain.canary --service frontend --cookie user=alice --explain
step "$CANARYC" diff examples/s2-forecast-50.canary examples/s2-forecast-100.canary
step "$CANARYC" compile examples/s6-tcp-split.canary

echo
echo "== the weather mesh in real Envoys (scenarios S1-S6), then canaryc rollout =="
# canary-mesh, not canary-tests: the demo needs no wasmtime (the tests' proxy-wasm host), which is most of a build.
cargo build --release -q -p canary-mesh --bin demo
# The demo ends with two `canaryc rollout` runs (a bad forecast v2 rolled back, a good one promoted); it runs
# this canaryc on the terminal, so its live view shows.
CANARYC="$CANARYC" target/release/demo

# `make demo` built the playground bundle into canaryc: say how to open it.
echo
printf '\033[1mThe playground\033[0m (the same compiler and evaluator in your browser):\n'
printf '  %s playground    # then open http://127.0.0.1:8787/\n' "$CANARYC"
