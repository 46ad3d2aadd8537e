#!/usr/bin/env bash
# Runs two canaryc binaries over every example policy and every `manifest --kind` (with the flags each kind
# takes, filter/auto/native backends, inline and pushed forms, YAML and JSON files) and compares stdout,
# stderr, exit code and any file written, byte for byte. For changes that must not change what canaryc
# writes (issue 26: serde_yaml → yaml_serde).
#
#   scripts/compare-manifests.sh OLD_CANARYC NEW_CANARYC
#
# Prints one line per difference and a count; exits 1 when anything differs.
set -euo pipefail

old=$(realpath "$1")
new=$(realpath "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mesh=(--namespace weather --service frontend --service forecast --service recommendation --service tcp-echo --subsets v1,v2)
edge=(--edge frontend --gateway weather-gateway --edge-host weather.example.com)
ports=(--port tcp-echo=9000 --port frontend=80 --port forecast=8080 --port recommendation=8080)
sha=$(printf '0%.0s' {1..64})
wasm=(--wasm-url oci://registry.example.com/canary/filter:1 --sha256 "$sha")
local_wasm=(--wasm-url https://example.com/canary_filter.wasm --sha256 "$sha")

# One flag set per line: kind, then flags ("@" stands for an absolute output file in the scratch directory).
cases() {
  local k
  for k in wasmplugin envoyfilter; do
    local url=("${wasm[@]}")
    [[ $k == envoyfilter ]] && url=("${local_wasm[@]}")
    for backend in filter auto; do
      echo "$k --backend $backend ${url[*]} ${mesh[*]} ${ports[*]}"
      echo "$k --backend $backend ${url[*]} ${mesh[*]} ${ports[*]} ${edge[*]} --access-log"
    done
  done
  for backend in filter auto native; do
    echo "istio-routes --backend $backend ${mesh[*]} ${ports[*]}"
    echo "istio-routes --backend $backend ${mesh[*]} ${ports[*]} ${edge[*]}"
  done
  for svc in frontend forecast recommendation tcp-echo; do
    local base="--service $svc --listen 127.0.0.1:10000 --cluster v1=127.0.0.1:8001 --cluster v2=127.0.0.1:8002"
    echo "envoy $base --wasm /tmp/canary_filter.wasm"
    echo "envoy $base --wasm /tmp/canary_filter.wasm --access-log --node-label version=v1"
    echo "envoy $base --wasm /tmp/canary_filter.wasm --ecds-path /tmp/canary/ecds.yaml"
    echo "envoy $base --backend native"
    echo "envoy $base --backend auto --wasm /tmp/canary_filter.wasm"
    echo "envoy $base --backend native --rds-path /tmp/canary/rds.yaml"
    echo "ecds --service $svc --subsets v1,v2 --wasm /tmp/canary_filter.wasm"
    echo "ecds --service $svc --subsets v1,v2 --wasm /tmp/canary_filter.wasm -o @.yaml"
    echo "ecds --service $svc --subsets v1,v2 --wasm /tmp/canary_filter.wasm -o @.json"
    echo "rds --service $svc --subsets v1,v2"
    echo "rds --service $svc --subsets v1,v2 -o @.yaml"
    echo "rds --service $svc --subsets v1,v2 -o @.json"
  done
}

run() { # BIN TAG POLICY KIND FLAGS… → $work/TAG.{out,err,code,file}
  local bin=$1 tag=$2 policy=$3 kind=$4
  shift 4
  local args=() a
  for a in "$@"; do args+=("${a//@/$work/$tag.file}"); done
  rm -f "$work/$tag.file".*
  set +e
  (cd "$root" && "$bin" manifest "$policy" --kind "$kind" "${args[@]}") >"$work/$tag.out" 2>"$work/$tag.err"
  echo $? >"$work/$tag.code"
  set -e
  cat "$work/$tag.file".* 2>/dev/null >"$work/$tag.written" || : >"$work/$tag.written"
  # The scratch directory's name is in messages about written files: make it the same for both.
  sed -i "s#$work/$tag.file#OUT#g" "$work/$tag.err" "$work/$tag.out"
}

same=0
differ=0
produced=0
declare -A written
while read -r policy; do
  while read -r kind flags; do
    # shellcheck disable=SC2086
    run "$old" old "$policy" "$kind" $flags
    # shellcheck disable=SC2086
    run "$new" new "$policy" "$kind" $flags
    if cmp -s "$work/old.out" "$work/new.out" && cmp -s "$work/old.err" "$work/new.err" &&
      cmp -s "$work/old.code" "$work/new.code" && cmp -s "$work/old.written" "$work/new.written"; then
      same=$((same + 1))
      if [[ $(cat "$work/old.code") == 0 ]]; then
        produced=$((produced + 1))
        written[$kind]=$((${written[$kind]:-0} + 1))
      fi
    else
      differ=$((differ + 1))
      echo "DIFFERS: $policy --kind $kind $flags"
      diff <(cat "$work/old.out" "$work/old.written" "$work/old.err") \
        <(cat "$work/new.out" "$work/new.written" "$work/new.err") | head -20 || true
    fi
  done < <(cases)
done < <(cd "$root" && ls examples/*.canary examples/rollout/*.canary 2>/dev/null)

echo "$same identical ($produced of them manifests written, the rest the same refusal), $differ different"
for kind in "${!written[@]}"; do echo "  $kind: ${written[$kind]} written, identical"; done | sort
[[ $differ == 0 ]]
