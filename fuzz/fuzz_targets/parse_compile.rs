//! Bytes → UTF-8 policy text → parse, check, lower. Any failure must be a positioned diagnostic; whatever
//! compiles must load in the evaluator and the filter (`canary_checks::check_policy`). Bytes that are not
//! UTF-8 are skipped: `canaryc` refuses them before parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        if let Err(why) = canary_checks::check_policy(source) {
            panic!(
                "{why}\n(minimise with `cargo fuzz tmin`, then copy the input to tests/corpus/policies/NAME.canary)"
            );
        }
    }
});
