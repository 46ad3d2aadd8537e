#!/usr/bin/env bash
# npm packages the tests use, pinned, project-local under build/node (next to binaryen, which
# scripts/build-filter.sh installs there):
#   * playwright-core            drives Debian's Chromium in the playground's browser tests;
#   * @kubernetes-models/istio   Istio's CRD schemas (Istio 1.29.2's crd-all.gen.yaml) compiled to validators,
#                                against which canaryc/tests/manifest/validate.mjs checks every manifest;
#   * @kubernetes-models/gateway-api  the Gateway API's types compiled to validators: 2.0.0 is generated from
#                                Gateway API v1.5 (v1 ListenerSet and TLSRoute, TCPRoute only v1alpha2 — v1.6
#                                made TCPRoute v1), against which the same script checks `--kind gateway-api`.
# Idempotent: a package is installed only when build/node lacks that exact version; a run that finds both
# prints nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

declare -A pinned=(
  [playwright-core]=1.65.1
  [@kubernetes-models/istio]=3.0.1
  [@kubernetes-models/gateway-api]=2.0.0
)

for name in "${!pinned[@]}"; do
  version="${pinned[$name]}"
  have="$(node -p "require('./build/node/node_modules/${name}/package.json').version" 2>/dev/null || true)"
  if [[ "$have" != "$version" ]]; then
    echo "setup-node: installing ${name}@${version} into build/node" >&2
    mkdir -p build/node
    npm install --silent --no-audit --no-fund --prefix build/node "${name}@${version}"
  fi
done
