//! `weather-service --role ROLE --version vN --listen IP:PORT [--upstream IP:PORT]`: one stand-in service,
//! the same as `examples/weather`'s `weather` binary.
//!
//! Why a copy here: `tests/tests/envoy_scenarios.rs` starts the weather mesh's services from a binary Cargo
//! builds for it, and Cargo hands integration tests only the paths of their own package's binaries
//! (`CARGO_BIN_EXE_<name>`). The `demo` binary, which used to serve this purpose, lives in `canary-mesh` now.

fn main() {
    if let Err(err) = canary_weather::cli(std::env::args().skip(1)) {
        eprintln!("weather: {err}");
        std::process::exit(2);
    }
}
