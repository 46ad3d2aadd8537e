#!/usr/bin/env bash
# Installs what the editor-support tests and the VS Code package need; safe to run again (each step checks first):
#   * the LSP test client (pytest-lsp and its pinned dependencies, editors/lsp-test/requirements.txt) into .venv;
#   * the extension's npm packages exactly as editors/vscode/package-lock.json pins them (`npm ci`), redone only
#     when the lock file changes (its hash is stamped into node_modules). The lock pins versions and integrity
#     hashes without `resolved` URLs (npm resolves them against the configured registry); after an
#     `npm install` there, strip them again: node -e 'const f="package-lock.json",l=require("./"+f);
#     for (const p of Object.values(l.packages)) delete p.resolved; require("fs").writeFileSync(f, JSON.stringify(l, null, 2)+"\n")'
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
requirements="editors/lsp-test/requirements.txt"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup-editors: creating $venv" >&2
  python3 -m venv "$venv"
fi
wanted="$(sed -n 's/^pytest-lsp==//p' "$requirements")"
installed="$("$venv/bin/python" -m pip show pytest-lsp 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "$installed" != "$wanted" ]]; then
  echo "setup-editors: installing $requirements into .venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
fi

lock="editors/vscode/package-lock.json"
stamp="editors/vscode/node_modules/.canary-lock-sha256"
hash="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]]; then
  echo "setup-editors: npm ci in editors/vscode" >&2
  (cd editors/vscode && npm ci --silent --no-audit --no-fund)
  echo "$hash" > "$stamp"
fi
