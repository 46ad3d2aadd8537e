//! Bytes → a generated policy, settings and requests (`canary_checks::Case`) → the evaluator's decisions
//! against the filter's engine, linked natively (`canary_checks::check_scenario`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: canary_checks::Case| {
    let scenario = case.scenario();
    if let Err(why) = canary_checks::check_scenario(&scenario) {
        panic!("{why}\nsave this as tests/corpus/cases/NAME.json (replayed by `make test`):\n{}", scenario.to_json());
    }
});
