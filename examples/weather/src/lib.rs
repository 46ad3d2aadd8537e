//! canary-weather: the reference workload of SCENARIOS.md as tiny std-only services.
//!
//! `frontend` → `forecast` → `recommendation` (only forecast v2 calls it), plus `tcp-echo`. Every hop calls
//! the next one through its own sidecar's outbound listener, as in Istio, so the sidecar's node labels are the
//! caller's labels. Answers name the versions on the path so a test can check whole chains.

pub mod http;
mod services;

pub use services::{Role, Service};

const USAGE: &str = "usage: weather --role frontend|forecast|recommendation|tcp-echo --version vN \
                     --listen IP:PORT [--upstream IP:PORT]";

/// Runs one service from command-line flags (also reachable as `demo weather …` so tests can start services
/// from a binary Cargo builds for them).
pub fn cli(args: impl IntoIterator<Item = String>) -> Result<(), String> {
    let service = parse_args(args)?;
    service.run().map_err(|e| format!("{} {} on {}: {e}", service.role.name(), service.version, service.listen))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Service, String> {
    let (mut role, mut version, mut listen, mut upstream) = (None, None, None, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--role" => role = Some(Role::parse(&value).ok_or_else(|| format!("unknown role `{value}`; {USAGE}"))?),
            "--version" => version = Some(value),
            "--listen" => listen = Some(value.parse().map_err(|_| format!("--listen: bad address `{value}`"))?),
            "--upstream" => upstream = Some(value.parse().map_err(|_| format!("--upstream: bad address `{value}`"))?),
            _ => return Err(format!("unknown flag `{flag}`; {USAGE}")),
        }
    }
    match (role, version, listen) {
        (Some(role), Some(version), Some(listen)) => Ok(Service { role, version, listen, upstream }),
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
        let s = parse_args(args("--role forecast --version v2 --listen 127.0.0.1:1 --upstream 127.0.0.1:2")).unwrap();
        assert_eq!((s.role, s.version.as_str()), (Role::Forecast, "v2"));
        assert_eq!(s.role.calls("v2"), Some(Role::Recommendation));
        assert!(parse_args(args("--role nope --version v1 --listen 127.0.0.1:1")).is_err());
        assert!(parse_args(args("--role frontend --version v1")).is_err());
    }
}
