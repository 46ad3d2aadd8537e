//! Bytes → YAML text → `canaryc import`: messages with YAML paths, never a panic; a printed policy compiles
//! (`canary_checks::check_import`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(yaml) = std::str::from_utf8(data) {
        if let Err(why) = canary_checks::check_import(yaml) {
            panic!("{why}\n(minimise with `cargo fuzz tmin`, then copy the input to tests/corpus/imports/NAME.yaml)");
        }
    }
});
