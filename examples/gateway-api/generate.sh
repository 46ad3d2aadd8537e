#!/usr/bin/env bash
# Regenerates the weather app's Gateway API manifests from examples/*.canary (README "Gateway API"):
#   s2-forecast-50.yaml, s3-chrome.yaml    the forecast service as mesh (GAMMA) HTTPRoutes, decided by the routes
#   s4-android-split.yaml                  frontend at the Gateway: `android` needs the filter (a negation), so
#                                          --backend auto writes the header routes + an EnvoyExtensionPolicy
#   s5-tester-chain.yaml                   mesh routes on Istio: cookie and `source` need the filter (WasmPlugin)
#   s6-tcp-split.yaml                      a TCPRoute, 80/20 per connection
# `cargo test -p canaryc --test gateway_api` checks that these are what the commands print and validates them.
#
# Usage: examples/gateway-api/generate.sh [OUT_DIR]   CANARYC=path/to/canaryc examples/gateway-api/generate.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
policies="$here/.."
if [[ -n "${CANARYC:-}" ]]; then
  canaryc=("$CANARYC")
else
  canaryc=(cargo run --quiet --manifest-path "$here/../../Cargo.toml" -p canaryc --)
fi
# A published module and its digest (Envoy Gateway verifies an HTTP module's sha256).
url=https://registry.example.com/canary/canary_filter.wasm
sha=0000000000000000000000000000000000000000000000000000000000000000
ports=(--port frontend=8000 --port forecast=8000 --port tcp-echo=9000)
mesh=(--namespace weather --parent service --subsets v1,v2 "${ports[@]}")
edge=(--namespace weather --parent gateway/weather-gateway --edge-host weather.example.com --subsets v1,v2 "${ports[@]}")

"${canaryc[@]}" manifest "$policies/s2-forecast-50.canary" --kind gateway-api --backend native "${mesh[@]}" \
  --implementation istio >"$out/s2-forecast-50.yaml"
"${canaryc[@]}" manifest "$policies/s3-chrome.canary" --kind gateway-api --backend native "${mesh[@]}" \
  --implementation istio >"$out/s3-chrome.yaml"
"${canaryc[@]}" manifest "$policies/s4-android-split.canary" --kind gateway-api --backend auto "${edge[@]}" \
  --service frontend --wasm-url "$url" --sha256 "$sha" >"$out/s4-android-split.yaml" 2>/dev/null
"${canaryc[@]}" manifest "$policies/s5-tester-chain.canary" --kind gateway-api --backend auto "${mesh[@]}" \
  --implementation istio --wasm-url oci://registry.example.com/canary/canary-filter:0.1.0 --sha256 "$sha" \
  >"$out/s5-tester-chain.yaml" 2>/dev/null
"${canaryc[@]}" manifest "$policies/s6-tcp-split.canary" --kind gateway-api --backend native \
  --namespace weather --parent gateway/tcp-echo-gateway --port tcp-echo=9000 >"$out/s6-tcp-split.yaml"
