//! Bytes → plugin configuration → the shared `Config` + `Policy::new`, and the filter's decoding: never a
//! panic, the same verdict (`canary_checks::check_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = canary_checks::check_config(data) {
        panic!("{why}\n(minimise with `cargo fuzz tmin`, then copy the input to tests/corpus/configs/NAME.json)");
    }
});
