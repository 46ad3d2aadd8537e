#!/usr/bin/env bash
# Build figures for BENCHMARKS.md "Build times": a clean `cargo build --release` of canaryc, then an
# incremental rebuild after touching one file of the importer, the language server and the core.
# Usage: scripts/build-times.sh TREE [TARGET_DIR]   (TREE: a checkout of this repository, before or after the
# crate split: both layouts are recognised). Prints one line per build: what, wall seconds, CPU seconds
# (user+sys, which moves less than wall time on a shared machine).
set -euo pipefail
tree=$(realpath "$1")
target=${2:-$tree/target-build-times}
cd "$tree"
if [ -d canaryc ]; then
  pkg=canaryc
  importer=import/src/virtual_service.rs lsp=lsp/src/hover.rs core=compiler/src/lower.rs
else
  pkg=canary-compiler
  importer=compiler/src/import/virtual_service.rs lsp=compiler/src/lsp/hover.rs core=compiler/src/lower.rs
fi
measure() {
  local what=$1 wall user sys
  if ! /usr/bin/time -o /tmp/build-times.t -f '%e %U %S' cargo build -q --release -p "$pkg" --bin canaryc >/dev/null 2>/tmp/build-times.err; then
    cat /tmp/build-times.err >&2
    exit 1
  fi
  read -r wall user sys </tmp/build-times.t
  printf '%-44s wall %7.1f s   cpu %7.1f s\n' "$what" "$wall" "$(echo "$user + $sys" | bc)"
}
export CARGO_TARGET_DIR=$target
rm -rf "$target"
cargo fetch -q
measure "clean"
for f in "$importer" "$lsp" "$core"; do
  touch "$f"
  measure "touch $f"
done
