#!/usr/bin/env bash
# Regenerates the weather app's Istio manifests for S1–S6 from examples/*.canary:
#   examples/istio/<scenario>/{wasmplugin,envoyfilter,istio-routes}.yaml            (the filter decides)
#   examples/istio/<scenario>/auto-{wasmplugin,istio-routes}.yaml                   (--backend auto)
# These are the exact command lines; `cargo test -p canaryc --test manifest` checks the files are what
# they print (and validates them against the Istio CRDs).
#
# Usage: examples/istio/generate.sh [OUT_DIR]      (default: next to this script)
#        CANARYC=path/to/canaryc examples/istio/generate.sh   (default: cargo run)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
policies="$here/.."
if [[ -n "${CANARYC:-}" ]]; then
  canaryc=("$CANARYC")
else
  canaryc=(cargo run --quiet --manifest-path "$here/../../Cargo.toml" -p canaryc --)
fi

# The module as the sidecars see it: mounted into istio-proxy at this path (see README.md). A file:// URL keeps
# these files independent of a particular build; with an https:// or oci:// URL add --sha256.
module=file:///var/local/lib/wasm-filters/canary_filter.wasm

# frontend → forecast → recommendation behind the ingress gateway (Gateway resource `weather-gateway`);
# every service has pods labelled version=v1 and version=v2.
http=(--namespace weather --service frontend --service forecast --service recommendation --subsets v1,v2
      --edge frontend --gateway weather-gateway)
# tcp-echo listens on 9000, as in Istio's tcp-echo sample.
tcp=(--namespace weather --port tcp-echo=9000 --subsets v1,v2)

generate() {
  local scenario=$1
  shift
  mkdir -p "$out/$scenario"
  for kind in wasmplugin envoyfilter istio-routes; do
    "${canaryc[@]}" manifest "$policies/$scenario.canary" --kind "$kind" --wasm-url "$module" "$@" \
      >"$out/$scenario/$kind.yaml"
  done
  # --backend auto: native VirtualService routes where exact, the filter (and its plugin) only where not.
  for kind in wasmplugin istio-routes; do
    "${canaryc[@]}" manifest "$policies/$scenario.canary" --kind "$kind" --backend auto --wasm-url "$module" "$@" \
      >"$out/$scenario/auto-$kind.yaml"
  done
}

generate s1-all-v1 "${http[@]}"
generate s2-forecast-50 "${http[@]}"
generate s2-forecast-100 "${http[@]}"
generate s3-chrome "${http[@]}"
generate s4-android-split "${http[@]}"
generate s5-tester-chain "${http[@]}"
generate s6-tcp-split "${tcp[@]}"
