#!/usr/bin/env bash
# Packages the VS Code extension (editors/vscode/) as build/canary-policy.vsix with @vscode/vsce (pinned in its
# package-lock.json; installed by scripts/setup-editors.sh). Needs only the npm registry. The .vsix is a build
# output, never committed. Install it with `code --install-extension build/canary-policy.vsix`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-editors.sh
mkdir -p build
# No LICENSE file or repository URL in the extension folder: say so instead of letting vsce prompt.
(cd editors/vscode && npx --no-install vsce package --skip-license --allow-missing-repository \
  --out "$root/build/canary-policy.vsix")
ls -l build/canary-policy.vsix
