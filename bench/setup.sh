# shellcheck shell=bash
# Sourced by the bench scripts (from the repository root): what every Envoy bench needs before it runs.
#   bench_setup [TOOL…]   Debian's valgrind and each TOOL (e.g. wrk) if missing; sets $envoy (Envoy from .venv,
#                         scripts/setup-envoy.sh) and $python (the venv's, with PyYAML: the benches read canaryc's
#                         YAML bootstraps).
bench_setup() {
  local missing=() tool
  for tool in valgrind "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    apt-get update && apt-get install -y "${missing[@]}"
  fi
  envoy="$(scripts/setup-envoy.sh 2>/dev/null | tail -n 1)"
  python=.venv/bin/python
  "$python" -c 'import yaml' 2>/dev/null ||
    "$python" -m pip install --quiet --disable-pip-version-check 'PyYAML>=6,<7'
}
