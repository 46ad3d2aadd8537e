#!/usr/bin/env bash
# `make fuzz`: the libFuzzer targets in fuzz/ (cargo-fuzz, nightly), for one wall-clock budget, printing the
# executions each ran. The oracles are canary-checks (checks/), which `make test` also runs over tests/corpus/.
#
#   FUZZ_SECS       wall-clock budget for the whole run (default 600). Two lanes run side by side, one per core:
#                   lane 1 gives parse_compile the whole budget; lane 2 gives config_json 15 % of it (at its
#                   31–32k executions a second, 2.8–2.9 million in 600 s), eval_vs_filter and import_yaml 10 % each,
#                   then a second parse_compile process (same corpus directory, so the two share what they
#                   find) the remaining 65 %.
#   FUZZ_SANITIZER  none (default) or address. ASan finds nothing safe Rust can do wrong and costs executions;
#                   use it when unsafe code changes.
#   FUZZ_TRACE_CMP  0 (default) builds without `-sanitizer-coverage-trace-compares`: the comparison hooks cost
#                   half the executions (FLEET.md, "Fuzzing", has both rates) while the dictionaries below carry
#                   the literals they would discover. 1 builds with them (into target/fuzz-cmp).
#   FUZZ_TARGETS    a subset, e.g. "parse_compile config_json" (each keeps its lanes, shares and input limits).
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
fuzz=(cargo +nightly fuzz)
# Inside the worktree's target directory; each instrumentation has its own (their flags differ for every crate).
if [[ "${FUZZ_TRACE_CMP:-0}" == 1 ]]; then
  flags=(-s "$sanitizer" --target-dir target/fuzz-cmp)
else
  flags=(-s "$sanitizer" --no-trace-compares --target-dir target/fuzz)
fi

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
# Every mapping key of the Istio examples and import corpus (`http:`, `destination:`, …) as YAML writes it.
find examples/istio tests/corpus/imports -name '*.yaml' -exec grep -ho '^[ -]*[A-Za-z][A-Za-z0-9_]*:' {} + 2>/dev/null \
  | sed 's/^[ -]*//' | sort -u | sed 's/.*/"&"/' >fuzz/seeds/import.dict

declare -A dict=([parse_compile]=fuzz/seeds/policy.dict [config_json]=fuzz/seeds/config.dict
  [import_yaml]=fuzz/seeds/import.dict)
declare -A max_len=([config_json]=4096 [eval_vs_filter]=4096 [import_yaml]=4096)
# Each lane runs its (target, percent of FUZZ_SECS[, max_len]) in order; a target may run in both lanes at once.
# The parser's two processes differ in input length: a policy's cost is linear in its length, and libFuzzer
# lets inputs grow to the limit, so at 2048 bytes the parser ran at half the rate of 512 (FLEET.md); the
# 1024-byte process keeps inputs long enough to reach the nesting (32) and condition depth (64) limits.
lane1=(parse_compile:100:512)
lane2=(config_json:15 eval_vs_filter:10 import_yaml:10 parse_compile:65:1024)

echo "fuzz: building (nightly, sanitizer $sanitizer, ${flags[*]:2}; release optimisations with debug assertions)"
if ! "${fuzz[@]}" build "${flags[@]}" >"target/fuzz-build.log" 2>&1; then
  tail -n 40 target/fuzz-build.log
  echo "fuzz: the build failed (log: target/fuzz-build.log)" >&2
  exit 1
fi
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin="${flags[-1]}/$triple/release"

logs="$(mktemp -d -t canary-fuzz.XXXXXX)"
trap 'rm -rf "$logs"' EXIT

# One target for `percent` of the budget in `lane`; its log is $logs/TARGET.LANE.log.
run() {
  local t="$1" percent="$2" len="$3" lane="$4"
  local args=(-max_total_time="$((secs * percent / 100))" -print_final_stats=1 -max_len="$len" -rss_limit_mb=2048)
  [[ -n "${dict[$t]:-}" ]] && args+=(-dict="${dict[$t]}")
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # The binary cargo fuzz built above, run directly (what `cargo fuzz run` would do, minus a rebuild check).
  "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -artifact_prefix="fuzz/artifacts/$t/" "${args[@]}" \
    >"$logs/$t.$lane.log" 2>&1
}

# A lane runs its selected targets one after the other; a crash ends that lane.
lane_run() {
  local lane="$1" entry t percent len
  shift
  for entry in "$@"; do
    IFS=: read -r t percent len <<<"$entry"
    if [[ " $targets " == *" $t "* ]]; then
      run "$t" "$percent" "${len:-${max_len[$t]}}" "$lane" || return 1
    fi
  done
}
# The first match of `pattern` in the files (or nothing; never fails: absent statistics are reported).
first() { grep -ho "$@" 2>/dev/null | head -n1 || true; }
fuzz_stat() { first "stat::$1: *[0-9]*" "${@:2}" | grep -o "[0-9]*$" || true; }

# Minimise each corpus that has grown past 10,000 files (libFuzzer keeps every new input as a file, so
# run after run the directory grows while its coverage does not; every process re-executes all of it at start,
# which at 36,000 files took the parser 15 s). Done before the clock starts; the longest input limit is kept.
for t in $targets; do
  dir="fuzz/corpus/$t"
  if [[ -d "$dir" ]] && (($(find "$dir" -type f | wc -l) > 10000)); then
    rm -rf "$dir.min"
    mkdir -p "$dir.min"
    before="$(find "$dir" -type f | wc -l)"
    if "$bin/$t" -merge=1 -max_len="${max_len[$t]:-1024}" "$dir.min" "$dir" >"$logs/$t.merge" 2>&1; then
      rm -rf "$dir" && mv "$dir.min" "$dir"
      echo "fuzz: $t corpus minimised: $before files -> $(find "$dir" -type f | wc -l)"
    else
      rm -rf "$dir.min"
      echo "fuzz: $t corpus kept as is (the merge failed: $(tail -n 1 "$logs/$t.merge"))"
    fi
  fi
done

echo "fuzz: running for ${secs}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
lane_run 1 "${lane1[@]}" & one=$!
lane_run 2 "${lane2[@]}" & two=$!
status=0
wait "$one" || status=1
wait "$two" || status=1
echo "fuzz: load average after $(cut -d' ' -f1-3 /proc/loadavg)"

printf '%-15s %10s %14s %10s %s\n' target core-s executions exec/s result
for t in $targets; do
  shopt -s nullglob
  files=("$logs/$t".*.log)
  shopt -u nullglob
  ((${#files[@]})) || continue
  n=0 seconds=0 missing=0 artifact=""
  for log in "${files[@]}"; do
    lane="${log%.log}"
    lane="${lane##*.}"
    units="$(fuzz_stat number_of_executed_units "$log")"
    [[ -z "$units" ]] && missing=1
    n=$((n + ${units:-0}))
    for entry in $( ((lane == 1)) && echo "${lane1[@]}" || echo "${lane2[@]}"); do
      IFS=: read -r name percent _ <<<"$entry"
      [[ "$name" == "$t" ]] && seconds=$((seconds + secs * percent / 100))
    done
    a="$(first 'Test unit written to [^ ]*' "$log" | sed 's/Test unit written to //')"
    [[ -n "$a" ]] && artifact="$a"
  done
  result=ok
  [[ -n "$artifact" ]] && result="CRASH $artifact"
  if ((missing)) && [[ -z "$artifact" ]]; then
    result="FAILED (no statistics)"
    status=1
  fi
  printf '%-15s %10s %14s %10s %s\n' "$t" "$seconds" "$n" "$((seconds ? n / seconds : 0))" "$result"
done

declare -A dest=([parse_compile]="policies/NAME.canary" [config_json]="configs/NAME.json"
  [import_yaml]="imports/NAME.yaml" [eval_vs_filter]="cases/NAME.json (the JSON printed above, not the raw bytes)")
for log in "$logs"/*.log; do
  [[ -f "$log" ]] || continue
  name="$(basename "$log" .log)"
  t="${name%.*}"
  artifact="$(first 'Test unit written to [^ ]*' "$log" | sed 's/Test unit written to //')"
  if [[ -n "$artifact" ]] || ! grep -q 'stat::number_of_executed_units' "$log"; then
    echo
    echo "=== $name: last lines of libFuzzer's log ==="
    tail -n 40 "$log"
  fi
  if [[ -n "$artifact" ]]; then
    echo "fuzz: $t crashed on $artifact"
    echo "  minimise: cargo +nightly fuzz tmin ${flags[*]} $t $artifact"
    echo "  then copy the minimised input to tests/corpus/${dest[$t]} (replayed by corpus_replay in make test) and fix the bug"
  fi
done
exit "$status"
