#!/usr/bin/env bash
# `make fuzz`: the libFuzzer targets in fuzz/ (cargo-fuzz, nightly), for one wall-clock budget, printing the
# executions each ran. The oracles are canary-checks (checks/), which `make test` also runs over tests/corpus/.
#
#   FUZZ_SECS       wall-clock budget for the whole run (default 600). Two lanes run side by side, one per core:
#                   lane 1 gives parse_compile the whole budget; lane 2 gives config_json half of it, then
#                   eval_vs_filter and import_yaml a quarter each.
#   FUZZ_SANITIZER  none (default) or address. ASan finds nothing safe Rust can do wrong and costs executions
#                   (FLEET.md, "Fuzzing", has both rates); use it when unsafe code changes.
#   FUZZ_TARGETS    a subset, e.g. "parse_compile config_json" (each keeps its lane and share).
#
# libFuzzer's own corpus grows in fuzz/corpus/TARGET (kept between runs, not committed); seeds come from
# examples/ and tests/corpus/ on every run. A crash stops with the input's path: minimise it with the command
# printed, copy it into tests/corpus/ as printed, fix the bug. Exits non-zero on any crash.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_INCREMENTAL=0
secs="${FUZZ_SECS:-600}"
sanitizer="${FUZZ_SANITIZER:-none}"
targets="${FUZZ_TARGETS:-parse_compile config_json eval_vs_filter import_yaml}"
# The one target directory of the worktree; nightly + instrumentation keep their artifacts apart inside it.
fuzz=(cargo +nightly fuzz)
flags=(-s "$sanitizer" --target-dir target/fuzz)

# Toolchain, idempotently.
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Seeds and dictionaries, rebuilt from the sources every run.
rm -rf fuzz/seeds
mkdir -p fuzz/seeds/{parse_compile,config_json,eval_vs_filter,import_yaml} fuzz/artifacts
cp examples/*.canary tests/corpus/policies/*.canary fuzz/seeds/parse_compile/
cp examples/golden/*.json tests/corpus/configs/*.json fuzz/seeds/config_json/
find examples/istio tests/corpus/imports -name '*.yaml' 2>/dev/null | while read -r f; do
  cp "$f" "fuzz/seeds/import_yaml/$(echo "$f" | tr / _)"
done
# The grammar's literals (keywords, operators, punctuation), in libFuzzer's dictionary syntax.
grep -o '"\([^"\\]\|\\.\)*"' dsl/src/grammar.pest | sort -u | awk 'length($0) <= 12' \
  | sed -e 's/\\n/\\x0A/g' -e 's/\\r/\\x0D/g' -e 's/\\t/\\x09/g' >fuzz/seeds/policy.dict
# Every property name of the config's JSON Schema, quoted as it appears in JSON.
grep -o '"[a-z_]*": {' schema/config.v1.json | sed 's/: {$//' | sort -u | sed 's/"/\\"/g; s/.*/"&"/' \
  >fuzz/seeds/config.dict

declare -A dict=([parse_compile]=fuzz/seeds/policy.dict [config_json]=fuzz/seeds/config.dict)
declare -A max_len=([parse_compile]=2048 [config_json]=4096 [eval_vs_filter]=4096 [import_yaml]=4096)
declare -A lane=([parse_compile]=1 [config_json]=2 [eval_vs_filter]=2 [import_yaml]=2)
declare -A share=([parse_compile]=100 [config_json]=50 [eval_vs_filter]=25 [import_yaml]=25)

echo "fuzz: building (nightly, sanitizer $sanitizer; release optimisations with debug assertions)"
if ! "${fuzz[@]}" build "${flags[@]}" >"target/fuzz-build.log" 2>&1; then
  tail -n 40 target/fuzz-build.log
  echo "fuzz: the build failed (log: target/fuzz-build.log)" >&2
  exit 1
fi
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"

logs="$(mktemp -d -t canary-fuzz.XXXXXX)"
trap 'rm -rf "$logs"' EXIT

# One target for its share of the budget; its log is $logs/TARGET.log.
run() {
  local t="$1" budget=$((secs * ${share[$1]} / 100))
  local args=(-max_total_time="$budget" -print_final_stats=1 -max_len="${max_len[$t]}" -rss_limit_mb=2048)
  [[ -n "${dict[$t]:-}" ]] && args+=(-dict="${dict[$t]}")
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # The binary cargo fuzz built above, run directly (what `cargo fuzz run` would do, minus a rebuild check).
  "target/fuzz/$triple/release/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    "${args[@]}" >"$logs/$t.log" 2>&1
}

# The lanes: each runs its targets one after the other; a crash ends that lane.
lane_run() {
  local t
  for t in $targets; do
    if [[ "${lane[$t]:-}" == "$1" ]]; then
      run "$t" || return 1
    fi
  done
}
echo "fuzz: running for ${secs}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
lane_run 1 & one=$!
lane_run 2 & two=$!
status=0
wait "$one" || status=1
wait "$two" || status=1
echo "fuzz: load average after $(cut -d' ' -f1-3 /proc/loadavg)"

printf '%-15s %8s %14s %10s %s\n' target seconds executions exec/s result
for t in $targets; do
  log="$logs/$t.log"
  [[ -f "$log" ]] || continue
  n="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)"
  rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)"
  artifact="$(grep -o 'Test unit written to [^ ]*' "$log" | sed 's/Test unit written to //' | tail -n1)"
  result=ok
  [[ -n "$artifact" ]] && result="CRASH $artifact"
  if [[ -z "$n" && -z "$artifact" ]]; then
    result="FAILED (no statistics)"
    status=1
  fi
  printf '%-15s %8s %14s %10s %s\n' "$t" "$((secs * ${share[$t]} / 100))" "${n:-?}" "${rate:-?}" "$result"
done

for t in $targets; do
  log="$logs/$t.log"
  artifact="$( (grep -o 'Test unit written to [^ ]*' "$log" 2>/dev/null || true) | sed 's/Test unit written to //' | tail -n1)"
  if [[ -n "$artifact" ]] || { [[ -f "$log" ]] && ! grep -q 'stat::number_of_executed_units' "$log"; }; then
    echo
    echo "=== $t: last lines of libFuzzer's log ==="
    tail -n 40 "$log"
  fi
  if [[ -n "$artifact" ]]; then
    declare -A dest=([parse_compile]="policies/NAME.canary" [config_json]="configs/NAME.json"
      [import_yaml]="imports/NAME.yaml" [eval_vs_filter]="cases/NAME.json (the JSON printed above, not the raw bytes)")
    echo "fuzz: $t crashed on $artifact"
    echo "  minimise: cargo +nightly fuzz tmin ${flags[*]} $t $artifact"
    echo "  then copy the minimised input to tests/corpus/${dest[$t]} (replayed by corpus_replay in make test) and fix the bug"
  fi
done
exit "$status"
