#!/usr/bin/env bash
# Browser tests of the playground: builds the bundle and canaryc (which embeds it), then runs
# playground/tests/*.test.mjs with node's test runner in Debian's headless Chromium through playwright-core.
# Idempotent: installs Chromium (apt) and playwright-core (npm, project-local under build/node) only when missing.
# The tests start `canaryc playground` themselves and stop it when they end; the trap below is a backstop.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
playwright_version=1.65.1

if [[ ! -x /usr/bin/chromium ]]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi
if [[ "$(node -p "require('./build/node/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$playwright_version" ]]; then
  mkdir -p build/node
  npm install --silent --no-audit --no-fund --prefix build/node "playwright-core@${playwright_version}"
fi

scripts/build-playground.sh
cargo build -p canary-compiler --bin canaryc
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
