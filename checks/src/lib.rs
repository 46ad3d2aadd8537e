//! What every input must satisfy, as plain functions returning `Err(why)`: the libFuzzer targets in `fuzz/`
//! (nightly, instrumented) panic on an `Err`, and the stable corpus replay (`tests/tests/fuzz_targets.rs`,
//! `make test`) calls the same functions on `tests/corpus/`, so a crash the fuzzer found, once minimised and
//! copied there, is checked on every test run with exactly the fuzzer's oracle.
//!
//! Nothing here needs wasmtime, so the fuzzers run at native speed: the filter's engine (everything behind
//! the proxy-wasm ABI: lazy reads, the header-map decoder, `trust_incoming`, header replacement) is linked
//! natively and driven through its `Host` trait ([`differential`]). The wasm module itself is compared with
//! the evaluator under wasmtime by the proptest targets in `make test`.

pub mod config;
pub mod corpus;
pub mod differential;
pub mod import;
pub mod policy;
mod request_host;

pub use config::check_config;
pub use differential::{check_scenario, Case, Scenario};
pub use import::check_import;
pub use policy::check_policy;
