#!/usr/bin/env bash
# Every output `canaryc` gives on the examples, one file per command, so that a refactor can be checked
# byte for byte: `scripts/cli-outputs.sh CANARYC DIR` before and after, then `diff -r BEFORE AFTER`.
# Each file holds the command line, stdout, stderr and the exit status. Non-sticky splits are seeded, so
# every output is a function of the input alone.
set -uo pipefail
canaryc=$(realpath "$1")
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$out"
n=0

run() {
  local name=$1; shift
  n=$((n + 1))
  {
    echo "\$ canaryc $*"
    "$canaryc" "$@" 2>"$out/.stderr"
    echo "--- exit $?"
    echo "--- stderr"
    cat "$out/.stderr"
  } >"$out/$(printf '%03d' "$n")-$name.txt"
}

policies=(examples/*.canary examples/rollout/forecast.canary)
for p in "${policies[@]}"; do
  b=$(basename "$p" .canary)
  run "compile-$b" compile "$p"
  run "check-$b" check "$p"
  run "fmt-$b" fmt --check "$p"
  run "eval-$b" eval "$p" --explain --seed 7 --header 'user-agent: Mozilla/5.0 (Linux; Android 13) Chrome/120.0' --cookie user=tester --source version=v2
  run "simulate-$b" simulate "$p" -n 2000 --seed 7 --header 'user-agent: Mozilla/5.0 (Linux; Android 13) Chrome/120.0'
  for kind in istio-routes envoy rds; do
    for backend in filter native auto; do
      run "manifest-$kind-$backend-$b" manifest "$p" --kind "$kind" --backend "$backend" --port echo=9000 --port tcp-echo=9000 \
        --cluster v1=127.0.0.1:8001 --cluster v2=127.0.0.1:8002 --listen 127.0.0.1:8080 --wasm /tmp/canary.wasm
    done
  done
  run "manifest-istio-routes-136-$b" manifest "$p" --kind istio-routes --backend auto --envoy-version 1.36 --edge frontend --gateway weather-gateway --port tcp-echo=9000
  run "manifest-wasmplugin-$b" manifest "$p" --kind wasmplugin --wasm-url oci://example.com/canary:1 --sha256 "$(printf 'a%.0s' {1..64})" --port tcp-echo=9000 --edge frontend
  run "manifest-envoyfilter-$b" manifest "$p" --kind envoyfilter --wasm-url https://example.com/canary.wasm --sha256 "$(printf 'b%.0s' {1..64})" --port tcp-echo=9000
  run "manifest-ecds-$b" manifest "$p" --kind ecds --subsets v1,v2
  run "manifest-envoy-ecds-$b" manifest "$p" --kind envoy --wasm /tmp/canary.wasm --ecds-path /tmp/x/ecds.yaml --cluster v1=127.0.0.1:8001 --cluster v2=127.0.0.1:8002
  run "manifest-envoy-rds-$b" manifest "$p" --kind envoy --rds-path /tmp/x/rds.json --cluster v1=127.0.0.1:8001 --cluster v2=127.0.0.1:8002
  for t in examples/"$b".tests.yaml; do
    [ -f "$t" ] && run "test-$b" test "$p" "$t"
  done
done
for a in "${policies[@]}"; do
  for b in "${policies[@]}"; do
    [ "$a" = "$b" ] || run "diff-$(basename "$a" .canary)-$(basename "$b" .canary)" diff "$a" "$b"
  done
done
for y in examples/istio/lab/*.yaml examples/istio/*/istio-routes.yaml examples/istio/*/auto-istio-routes.yaml examples/rollout/istio-forecast.yaml; do
  run "import-$(echo "$y" | tr / _)" import "$y"
done
run schema schema
run help --help
for c in compile check eval simulate diff schema playground manifest test fmt import lsp rollout; do
  run "help-$c" "$c" --help
done
run "rollout-status" rollout status examples/rollout/forecast.yaml
run "rollout-bad-plan" rollout examples/rollout/forecast.canary --dry-run
rm -f "$out/.stderr"
echo "$n outputs in $out"
