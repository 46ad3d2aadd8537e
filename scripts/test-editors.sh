#!/usr/bin/env bash
# Editor support, end to end (a few seconds once installed):
#   1. `canaryc lsp` driven over stdio by a real LSP client (pytest-lsp, VS Code's capabilities): diagnostics on
#      open and change, hover on a family and a rule, completion, formatting, definition and rename of a `let`,
#      malformed messages (editors/lsp-test/);
#   2. the VS Code grammar on every example (vscode-tmgrammar-test, fixtures in editors/vscode/test/).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-editors.sh
cargo build -p canaryc
CANARYC="${CANARYC:-$root/target/debug/canaryc}" \
  .venv/bin/python -m pytest -q -p no:cacheprovider -c editors/lsp-test/pytest.ini editors/lsp-test
(cd editors/vscode && npm test --silent)
# Reached only when every fixture passed (set -e): the plain closing line CI logs are read for.
echo "grammar: $(ls editors/vscode/test/*.canary | wc -l) passed, 0 failed"
