#!/usr/bin/env bash
# Each crate's contract (the top of its lib.rs, ARCHITECTURE.md "Crates") names what it may not depend on;
# this checks it on the resolved dependency graph (`cargo tree`, normal dependencies), so a boundary that
# erodes fails `make lint` instead of being noticed in a review. Exit 1 naming the crate and the dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
yaml='serde_yaml|serde_norway|serde_yaml_ng|saphyr|saphyr-parser|yaml-rust2|marked-yaml|canary-yaml'
cli='clap|canaryc'
lsp='lsp-server|lsp-types|canary-lsp'
fail=0
forbid() {
  local crate=$1 pattern=$2 found
  found=$(cargo tree -p "$crate" -e normal --prefix none 2>/dev/null | tail -n +2 | awk '{print $1}' | grep -xE "$pattern" | sort -u || true)
  if [ -n "$found" ]; then
    echo "error: $crate depends on $(echo "$found" | paste -sd, -) (its contract forbids it)" >&2
    fail=1
  fi
}
# What runs in Envoy or in the browser: no CLI, YAML, LSP, manifests, importer or rollout.
for crate in canary-eval canary-filter canary-compiler canary-playground; do
  forbid "$crate" "$yaml|$cli|$lsp|canary-backends|canary-import|canary-rollout|canary-policy-tests|schemars"
done
forbid canary-dsl "canary-compiler|$yaml|$cli|$lsp"
forbid canary-lsp "$yaml|$cli|canary-backends|canary-import|canary-rollout"
forbid canary-backends "$cli|$lsp|canary-import|canary-rollout|canary-policy-tests"
forbid canary-import "$cli|$lsp|canary-backends|canary-rollout|canary-policy-tests"
forbid canary-policy-tests "$cli|$lsp|canary-backends|canary-import|canary-rollout"
forbid canary-rollout "canary-compiler|canary-backends|canary-import|$cli|$lsp"
forbid canary-durable "canary-[a-z-]+|canaryc"
forbid canary-yaml "canary-[a-z-]+|canaryc"
# The settings file reader: typed data for the backends, no crate of ours (the core must not need it).
forbid canary-settings "canary-[a-z-]+|canaryc"
[ $fail = 0 ] && echo "crate boundaries hold"
exit $fail
