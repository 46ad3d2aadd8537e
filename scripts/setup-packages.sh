#!/usr/bin/env bash
# The Debian packages the tests and the demo run, installed once here so that no test ever installs anything
# (several tests calling apt-get at once fail on dpkg's lock):
#   * wrk               load for the policy-push and Envoy tests (tests/src/reload.rs) and `make bench-envoy`;
#   * chromium,
#     chromium-driver   the playground's browser tests (scripts/test-playground.sh, through playwright-core);
#   * prometheus        /usr/bin/prometheus, which the rollout tests start themselves on ports they choose.
# Idempotent: `apt-get update` and `apt-get install` run only when a package is missing; a run that finds
# everything installed prints nothing. Debian's prometheus package comes with a system service (port 9090);
# it is never started on our behalf (services are kept from starting during the install) and is disabled,
# since every test runs its own server on its own port.
set -euo pipefail

packages=(wrk chromium chromium-driver prometheus)

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup-packages: missing Debian packages ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup-packages: installing ${missing[*]}" >&2
  # invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d whether a package may start its service;
  # exit 101 means no. Docker images ship one already; elsewhere one is put there for the install only.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# put here by canary scripts/setup-packages.sh for one apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (up to 10 minutes) rather than fail on its lock.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    # Not at boot either: the tests start their own servers.
    if command -v systemctl >/dev/null; then systemctl disable prometheus >/dev/null 2>&1 || true; fi
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
  for p in "${missing[@]}"; do
    installed "$p" || { echo "setup-packages: $p did not install" >&2; exit 1; }
  done
fi
