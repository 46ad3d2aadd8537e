//! `canaryc manifest --backend auto` weighs a service's exact forms by the cost model (canary-backends
//! `cost`): a short table stays a route list, a 10,000-rule header table goes to the filter (a tree on a header
//! is, at worst, the list: its comma guard), a 10,000-rule path table becomes a matcher tree, and the line on
//! stderr names the
//! backend and every candidate's estimated instructions per request. Rules without an exact native form keep
//! today's reason line. The model itself is tested in `backends/src/cost.rs`; its figures against callgrind are
//! in BENCHMARKS.md ("Scale").

use std::process::Command;

fn tenants(n: usize) -> String {
    let rules: String = (0..n).map(|i| format!("  header x-tenant = \"tenant-{i:05}\" -> v2\n")).collect();
    format!("service svc {{\n{rules}  default v1\n}}\n")
}

/// `canaryc manifest FILE --backend auto ARGS…`: (exit code, stdout, stderr).
fn auto(policy: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.canary");
    std::fs::write(&file, policy).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_canaryc"))
        .args(["manifest", file.to_str().unwrap(), "--backend", "auto"])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

const ENVOY: &[&str] = &[
    "--kind",
    "envoy",
    "--service",
    "svc",
    "--listen",
    "127.0.0.1:8080",
    "--wasm",
    "/m.wasm",
    "--cluster",
    "v1=127.0.0.1:8001",
    "--cluster",
    "v2=127.0.0.1:8002",
];

/// The estimates of auto's line: `(form, k instructions)` in the order printed.
fn estimates(line: &str) -> Vec<(String, u64)> {
    let (_, tail) = line.split_once("est. worst case per request: ").expect(line);
    tail.trim_end_matches(" instructions)")
        .split(", ")
        .map(|e| {
            let (form, k) = e.rsplit_once(' ').expect(e);
            (form.to_string(), k.trim_end_matches('k').replace(',', "").parse().expect(k))
        })
        .collect()
}

#[test]
fn a_short_table_stays_a_route_list_with_every_estimate() {
    // Three rules: too few for a matcher tree, cheaper as routes than the filter.
    let (code, yaml, stderr) = auto(&tenants(3), ENVOY);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr.lines().next().unwrap();
    assert!(line.starts_with("svc: native Envoy routes (every rule has an exact form on Envoy 1.40; "), "{line}");
    let e = estimates(line);
    let forms: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(forms, ["native route list", "filter"], "{line}");
    assert!(e[0].1 < e[1].1, "{line}");
    assert!(yaml.contains("exact: tenant-00002") && !yaml.contains("envoy.filters.http.wasm"));
    // Ten: a tree on the header would cost less past its guard (measured: 202.1k against 206.1k), but its worst
    // case is the guard's walk of the whole list.
    let (_, yaml, stderr) = auto(&tenants(10), ENVOY);
    let line = stderr.lines().next().unwrap();
    assert!(line.starts_with("svc: native Envoy routes (every rule"), "{line}");
    let e = estimates(line);
    assert!(e[0].0 == "native route list" && e[1].0 == "native matcher tree" && e[0].1 < e[1].1, "{line}");
    assert!(!yaml.contains("exact_match_map"), "{yaml}");
}

#[test]
fn a_long_header_table_goes_to_the_filter_and_a_long_path_table_becomes_a_tree() {
    let (code, yaml, stderr) = auto(&tenants(10_000), ENVOY);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr.lines().next().unwrap();
    assert!(line.starts_with("svc: filter (cheaper than its exact native form; est. "), "{line}");
    let e = estimates(line);
    let forms: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(forms, ["native route list", "native matcher tree", "filter"], "{line}");
    assert!(e[1].1 > e[0].1 && e[0].1 > 10 * e[2].1, "the tree's worst case is past the list's: {line}");
    assert!(yaml.contains("envoy.filters.http.wasm") && !yaml.contains("tenant-00009\n"), "the filter bootstrap");

    // `:path` is never repeated: no guard, and the tree is one lookup whatever its length.
    let rules: String = (0..10_000).map(|i| format!("  path \"/t{i:05}/\" -> v2\n")).collect();
    let (code, yaml, stderr) = auto(&format!("service svc {{\n{rules}  default v1\n}}\n"), ENVOY);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr.lines().next().unwrap();
    assert!(line.starts_with("svc: native Envoy routes as a matcher tree (every rule has an exact form"), "{line}");
    let e = estimates(line);
    assert!(e[1].0 == "native matcher tree" && e[1].1 < e[2].1 && e[2].1 < e[0].1, "{line}");
    assert!(yaml.contains("prefix_match_map") && !yaml.contains("envoy.filters.http.wasm"), "the tree bootstrap");
}

#[test]
fn istio_says_a_virtual_service_is_a_list() {
    let istio = ["--kind", "istio-routes", "--service", "svc", "--subsets", "v1,v2"];
    let (code, yaml, stderr) = auto(&tenants(10_000), &istio);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("svc:")).unwrap();
    assert!(
        line.starts_with(
            "svc: filter (cheaper than its exact native form; a VirtualService can only be a route list; est. "
        ),
        "{line}"
    );
    // The VirtualService routes on the filter's header.
    assert!(yaml.contains("x-canary-subset") && !yaml.contains("tenant-00009"), "{yaml}");
    let (code, _, stderr) = auto(&tenants(10), &istio);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("svc: native VirtualService routes (")), "{stderr}");
}

#[test]
fn refused_rules_keep_their_reason_line() {
    let policy = "service svc {\n  query a=b -> v2\n  default v1\n}\n";
    let (code, _, stderr) = auto(policy, ENVOY);
    assert_eq!(code, 0, "{stderr}");
    let line = stderr.lines().next().unwrap();
    assert!(line.starts_with("svc: filter (") && line.contains("p.canary:2:3: `query` values"), "{line}");
}
