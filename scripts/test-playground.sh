#!/usr/bin/env bash
# Browser tests of the playground: builds the bundle and canaryc (which embeds it), then runs
# playground/tests/*.test.mjs with node's test runner in Debian's headless Chromium through playwright-core.
# Chromium (Debian) and playwright-core (npm, under build/node) come from the setup step (scripts/setup.sh);
# the two setup scripts run here again, silently when nothing is missing, so this script also works alone.
# The tests start `canaryc playground` themselves and stop it when they end; the trap below is a backstop.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup-packages.sh
scripts/setup-node.sh

scripts/build-playground.sh
cargo build -p canaryc
mkdir -p build/artifacts

# The tests write the server's pid here; should they die without stopping it, stop it by that id.
pidfile="build/artifacts/playground-server.pid"
cleanup() {
  if [[ -s "$pidfile" ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  rm -f "$pidfile"
}
trap cleanup EXIT
CANARYC="${CANARYC:-$root/target/debug/canaryc}" SERVER_PIDFILE="$root/$pidfile" node --test --test-concurrency=1 playground/tests/
echo "screenshot: build/artifacts/playground.png"
