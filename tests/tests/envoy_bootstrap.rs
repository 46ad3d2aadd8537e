//! `canaryc manifest --kind envoy` output is a bootstrap Envoy 1.40 itself accepts: every example policy, as
//! an HTTP proxy and as a TCP proxy, passes `envoy --mode validate` with the real filter module.

use std::net::SocketAddr;

use canary_backends::manifest::envoy::{envoy_bootstrap, EnvoyOptions};
use canary_eval::config::Protocol;
use canary_tests::mesh::envoy::{find_envoy, find_wasm, validate};
use canary_tests::mesh::policy;

fn ok<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn options(service: &str, protocol: Protocol, wasm: &std::path::Path) -> EnvoyOptions {
    let mut o = EnvoyOptions::new(service, addr(10_000), addr(9_901), wasm);
    o.clusters = vec![("v1".into(), addr(8_001)), ("v2".into(), addr(8_002))];
    o.node_labels = vec![("app".into(), "frontend".into()), ("version".into(), "v1".into())];
    o.protocol = Some(protocol);
    o
}

#[test]
fn every_example_policy_validates_in_envoy() {
    let (envoy, wasm) = (ok(find_envoy()), ok(find_wasm()));
    let dir = std::env::temp_dir().join(format!("canary-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let examples = ok(policy::example_files());
    assert!(examples.len() >= 7, "expected the S1–S6 policies in examples/, found {examples:?}");
    let mut checked = 0;
    for path in &examples {
        let config = ok(policy::compile_file(path));
        // Every policy as the ingress (HTTP); as the tcp-echo proxy where it can serve TCP (the forecast and
        // sidecar bootstraps differ from the ingress only in names and labels).
        for (service, protocol) in [("frontend", Protocol::Http), ("tcp-echo", Protocol::Tcp)] {
            let declared = config.services.iter().find(|s| s.name == service).map(|s| s.protocol);
            if declared.is_some_and(|d| d != protocol) {
                continue;
            }
            let yaml = envoy_bootstrap(&config, &options(service, protocol, &wasm))
                .unwrap_or_else(|e| panic!("{}: {service}: {e}", path.display()));
            let file = dir.join(format!("{}-{service}.yaml", path.file_stem().unwrap().to_string_lossy()));
            std::fs::write(&file, &yaml).expect("write bootstrap");
            let out = ok(validate(&envoy, &file));
            let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}: {service}: envoy --mode validate failed:\n{log}\n{yaml}",
                path.display()
            );
            checked += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(checked >= examples.len() + 2, "validated only {checked} bootstraps");
}

#[test]
fn validate_mode_loads_the_filter_and_refuses_a_broken_policy() {
    let (envoy, wasm) = (ok(find_envoy()), ok(find_wasm()));
    let mut config = ok(policy::example("s1-all-v1"));
    config.version = 2;
    let yaml = envoy_bootstrap(&config, &options("frontend", Protocol::Http, &wasm)).expect("bootstrap");
    let file = std::env::temp_dir().join(format!("canary-validate-broken-{}.yaml", std::process::id()));
    std::fs::write(&file, yaml).expect("write bootstrap");
    let out = ok(validate(&envoy, &file));
    let _ = std::fs::remove_file(&file);
    let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "envoy --mode validate accepted config version 2:\n{log}");
    assert!(log.contains("canary: refusing configuration: config version 2"), "no refusal line:\n{log}");
}
