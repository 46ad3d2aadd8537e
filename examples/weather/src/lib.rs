//! canary-weather: the reference workload of SCENARIOS.md as tiny std-only services.
//!
//! `frontend` → `forecast` → `recommendation` (only forecast v2 calls it), plus `tcp-echo`. Every hop calls
//! the next one through its own sidecar's outbound listener, as in Istio, so the sidecar's node labels are the
//! caller's labels. Answers name the versions on the path so a test can check whole chains.

pub mod faults;
pub mod http;
mod services;

use std::sync::Arc;

pub use faults::Faults;
pub use services::{Role, Service, CONTROL_PATH};

const USAGE: &str = "usage: weather --role frontend|forecast|recommendation|tcp-echo --version vN \
                     --listen IP:PORT [--upstream IP:PORT] [--fail-percent P] [--extra-latency-ms MS]";

/// Runs one service from command-line flags (also reachable as `demo weather …` so tests can start services
/// from a binary Cargo builds for them). `--fail-percent`/`--extra-latency-ms` start it faulty; its
/// `/_control` path changes that while it runs.
pub fn cli(args: impl IntoIterator<Item = String>) -> Result<(), String> {
    let (service, faults) = parse_args(args)?;
    service
        .run_with_faults(Arc::new(faults))
        .map_err(|e| format!("{} {} on {}: {e}", service.role.name(), service.version, service.listen))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<(Service, Faults), String> {
    let (mut role, mut version, mut listen, mut upstream) = (None, None, None, None);
    let faults = Faults::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--role" => role = Some(Role::parse(&value).ok_or_else(|| format!("unknown role `{value}`; {USAGE}"))?),
            "--version" => version = Some(value),
            "--listen" => listen = Some(value.parse().map_err(|_| format!("--listen: bad address `{value}`"))?),
            "--upstream" => upstream = Some(value.parse().map_err(|_| format!("--upstream: bad address `{value}`"))?),
            "--fail-percent" => {
                faults.set_fail_percent(faults::parse_percent(&value).map_err(|e| format!("{flag}: {e}"))?)?
            }
            "--extra-latency-ms" => {
                faults.set_extra_latency_ms(faults::parse_ms(&value).map_err(|e| format!("{flag}: {e}"))?)?
            }
            _ => return Err(format!("unknown flag `{flag}`; {USAGE}")),
        }
    }
    match (role, version, listen) {
        (Some(role), Some(version), Some(listen)) => Ok((Service { role, version, listen, upstream }, faults)),
        _ => Err(USAGE.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags() {
        let (s, f) =
            parse_args(args("--role forecast --version v2 --listen 127.0.0.1:1 --upstream 127.0.0.1:2")).unwrap();
        assert_eq!((s.role, s.version.as_str()), (Role::Forecast, "v2"));
        assert_eq!(f.describe(), "fail_percent=0 extra_latency_ms=0");
        assert_eq!(s.role.calls("v2"), Some(Role::Recommendation));
        assert!(parse_args(args("--role nope --version v1 --listen 127.0.0.1:1")).is_err());
        assert!(parse_args(args("--role frontend --version v1")).is_err());
        let (_, f) = parse_args(args(
            "--role forecast --version v1 --listen 127.0.0.1:1 --fail-percent 2.5 --extra-latency-ms 50",
        ))
        .unwrap();
        assert_eq!(f.describe(), "fail_percent=2.5 extra_latency_ms=50");
        for bad in ["--fail-percent 101", "--fail-percent x", "--extra-latency-ms -1", "--extra-latency-ms 60001"] {
            assert!(
                parse_args(args(&format!("--role forecast --version v1 --listen 127.0.0.1:1 {bad}"))).is_err(),
                "{bad}"
            );
        }
    }
}
