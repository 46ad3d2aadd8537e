//! The regression corpus (`tests/corpus/`) through the libFuzzer targets' oracles, on stable: a crash the
//! fuzzer found, minimised and copied there, is checked exactly as the fuzzer checked it. (The wasm module
//! replays the same files in `tests/tests/fuzz_targets.rs`, `corpus_replay`.)
//!
//! | directory | target | content |
//! |---|---|---|
//! | `policies/*.canary` | `parse_compile` | policy text |
//! | `configs/*.json` | `config_json` | plugin configuration bytes |
//! | `imports/*.yaml` | `import_yaml` | `canaryc import` input |
//! | `cases/*.json` | `eval_vs_filter` | the scenario JSON the target prints on a failure |

use canary_checks::corpus::files as corpus;

#[test]
fn policies() {
    for path in corpus("policies", "canary") {
        let source = std::fs::read_to_string(&path).expect("policy file");
        canary_checks::check_policy(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn configs() {
    for path in corpus("configs", "json") {
        let json = std::fs::read(&path).expect("config file");
        canary_checks::check_config(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn imports() {
    for path in corpus("imports", "yaml") {
        let yaml = std::fs::read_to_string(&path).expect("YAML file");
        canary_checks::check_import(&yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn cases() {
    for path in corpus("cases", "json") {
        let text = std::fs::read_to_string(&path).expect("case file");
        let scenario = canary_checks::Scenario::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(canary_compiler_compiles(&scenario.policy), "{}: the policy must compile", path.display());
        canary_checks::check_scenario(&scenario).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// A case whose policy does not compile would pass vacuously (`check_scenario` skips it).
fn canary_compiler_compiles(policy: &str) -> bool {
    canary_checks::check_policy(policy).is_ok_and(|json| json.is_some())
}
