#!/usr/bin/env bash
# Packages the VS Code extension (editors/vscode/) as build/canary-policy.vsix with @vscode/vsce (pinned in its
# package-lock.json; installed by scripts/setup-editors.sh). Needs only the npm registry. The .vsix is a build
# output, never committed. Install it with `code --install-extension build/canary-policy.vsix`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup-editors.sh
mkdir -p build
# vsce runs `vscode:prepublish` first: esbuild bundles extension.js and vscode-languageclient into dist/extension.js,
# so the package holds one script and no node_modules (--no-dependencies). No LICENSE file or repository URL in
# the extension folder: say so instead of letting vsce prompt.
(cd editors/vscode && npx --no-install vsce package --no-dependencies --skip-license --allow-missing-repository \
  --out "$root/build/canary-policy.vsix")
# The bundle must load and export the extension entry points (`vscode` exists only inside the editor: a stub).
node -e 'const M = require("module"), load = M._load;
M._load = function (r, ...a) { return r === "vscode" ? new Proxy({}, { get: () => class {} }) : load.call(this, r, ...a); };
const e = require("./editors/vscode/dist/extension.js");
if (typeof e.activate !== "function" || typeof e.deactivate !== "function") throw new Error("no activate/deactivate");'
ls -l build/canary-policy.vsix
