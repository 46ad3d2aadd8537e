#!/usr/bin/env bash
# Installs everything the build, tests and demo need, before any of them starts; safe to run again (each step
# checks first, and a run that finds everything in place prints only Envoy's version and path):
#   * Debian packages: wrk, chromium, chromium-driver, prometheus (scripts/setup-packages.sh);
#   * the Rust wasm32 target, clippy, rustfmt;
#   * Envoy 1.40 in the project's virtualenv .venv (scripts/setup-envoy.sh);
#   * npm packages under build/node: playwright-core, @kubernetes-models/istio (scripts/setup-node.sh);
#   * the editor tests' pytest-lsp in .venv and editors/vscode's npm packages (scripts/setup-editors.sh).
# binaryen (npm) and wasm-bindgen-cli (cargo) are installed by the build scripts that use them.
# `--demo` (`make setup-demo`, what `make demo` and the builds run) installs only what they use: the Rust
# target and components and Envoy; the Debian packages, npm packages and editor tools are the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."

demo_only=false
[[ "${1:-}" == "--demo" ]] && demo_only=true

$demo_only || scripts/setup-packages.sh

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

scripts/setup-envoy.sh
if ! $demo_only; then
  scripts/setup-node.sh
  scripts/setup-editors.sh
fi
