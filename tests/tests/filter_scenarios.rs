//! SCENARIOS.md S1–S6 at the filter level: the real `canary_filter.wasm` on the wasmtime proxy-wasm host,
//! with policies written in the canary language. Split proportions are checked in `filter_splits.rs`.

use anyhow::Result;
use canary_tests::host::{compile, decision_counter, Proxy, Settings};

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
const MACOS: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

fn policy(source: &str) -> String {
    compile(source, Settings::default())
}

fn subset_for(proxy: &mut Proxy, headers: &[(&str, &str)]) -> Result<Option<String>> {
    Ok(proxy.request(headers)?.header("x-canary-subset").map(str::to_string))
}

#[test]
fn s1_everything_to_v1() -> Result<()> {
    let mut proxy = Proxy::http(policy("default v1\n")).start()?;
    for host in ["frontend", "forecast:8080", "recommendation.weather.svc.cluster.local", "anything"] {
        for ua in [CHROME, ANDROID] {
            assert_eq!(subset_for(&mut proxy, &[(":authority", host), ("user-agent", ua)])?.as_deref(), Some("v1"));
        }
    }
    // Undeclared services are served by the top-level rules and counted under service `*`.
    assert_eq!(proxy.counter(&decision_counter("*", "default", "v1"))?, 8);
    Ok(())
}

#[test]
fn s2_forecast_percentages() -> Result<()> {
    let mut all = Proxy::http(policy("service forecast {\n  100% v2\n  default v1\n}\ndefault v1\n")).start()?;
    for _ in 0..200 {
        assert_eq!(subset_for(&mut all, &[(":authority", "forecast")])?.as_deref(), Some("v2"));
        assert_eq!(subset_for(&mut all, &[(":authority", "frontend")])?.as_deref(), Some("v1"));
    }
    assert_eq!(all.counter(&decision_counter("forecast", "2", "v2"))?, 200);

    let mut half = Proxy::http(policy("service forecast {\n  50% v2\n  default v1\n}\ndefault v1\n")).start()?;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.insert(subset_for(&mut half, &[(":authority", "forecast")])?);
        assert_eq!(subset_for(&mut half, &[(":authority", "recommendation")])?.as_deref(), Some("v1"));
    }
    assert_eq!(seen, [Some("v1".to_string()), Some("v2".to_string())].into());
    // A split's remainder is counted on the split's own rule, with the default subset.
    let total = half.counter(&decision_counter("forecast", "2", "v1"))?
        + half.counter(&decision_counter("forecast", "2", "v2"))?;
    assert_eq!(total, 200);
    Ok(())
}

#[test]
fn s3_chrome_to_v2() -> Result<()> {
    let source = "service forecast {\n  header user-agent ~ \"Chrome\" -> v2\n  default v1\n}\ndefault v1\n";
    let mut proxy = Proxy::http(policy(source)).start()?;
    for _ in 0..50 {
        let chrome = [(":authority", "forecast:9000"), ("user-agent", CHROME)];
        assert_eq!(subset_for(&mut proxy, &chrome)?.as_deref(), Some("v2"));
        let firefox = [(":authority", "forecast:9000"), ("user-agent", FIREFOX)];
        assert_eq!(subset_for(&mut proxy, &firefox)?.as_deref(), Some("v1"));
        assert_eq!(subset_for(&mut proxy, &[(":authority", "forecast")])?.as_deref(), Some("v1"));
    }
    assert_eq!(proxy.counter(&decision_counter("forecast", "2", "v2"))?, 50);
    assert_eq!(proxy.counter(&decision_counter("forecast", "default", "v1"))?, 100);
    Ok(())
}

#[test]
fn s4_android_split_others_v1() -> Result<()> {
    let source = "service frontend {\n  android: 50% v2\n  default v1\n}\ndefault v1\n";
    let mut proxy = Proxy::http(policy(source)).start()?;
    let mut android = std::collections::BTreeMap::new();
    for _ in 0..400 {
        let mac = [(":authority", "frontend"), ("user-agent", MACOS)];
        assert_eq!(subset_for(&mut proxy, &mac)?.as_deref(), Some("v1"));
        let phone = [(":authority", "frontend"), ("user-agent", ANDROID)];
        *android.entry(subset_for(&mut proxy, &phone)?).or_insert(0) += 1;
    }
    assert_eq!(android.len(), 2, "Android users see both versions: {android:?}");
    assert_eq!(proxy.counter(&decision_counter("frontend", "default", "v1"))?, 400);
    Ok(())
}

const S5: &str = "\
service frontend {
  cookie user=tester -> v2
  default v1
}
service forecast {
  source version=v2 -> v2
  default v1
}
default v1
";

#[test]
fn s5_tester_chain_never_mixes_versions() -> Result<()> {
    // The ingress gateway decides frontend's version from the cookie. Each frontend pod's sidecar
    // (labelled with its own version) then decides forecast's version from that label.
    let mut ingress = Proxy::http(policy(S5)).start()?;
    let mut sidecar_v1 = Proxy::http(policy(S5)).node_label("app", "frontend").node_label("version", "v1").start()?;
    let mut sidecar_v2 = Proxy::http(policy(S5)).node_label("app", "frontend").node_label("version", "v2").start()?;
    // (cookie header, is a tester): RFC 6265 parsing, not a substring match.
    let cookies = [
        ("user=tester", true),
        ("theme=dark; user=tester", true),
        ("user=\"tester\"", true),
        ("user=alice", false),
        ("user=testers; xuser=tester", false),
        ("", false),
    ];
    for round in 0..20 {
        for (cookie, tester) in cookies {
            let mut headers = vec![(":authority", "frontend"), (":path", "/"), ("user-agent", CHROME)];
            if !cookie.is_empty() {
                headers.push(("cookie", cookie));
            }
            let frontend = subset_for(&mut ingress, &headers)?.expect("frontend always decided");
            let sidecar = if frontend == "v2" { &mut sidecar_v2 } else { &mut sidecar_v1 };
            let forecast = subset_for(sidecar, &[(":authority", "forecast:9000"), (":path", "/api")])?;
            assert_eq!(Some(frontend.clone()), forecast, "round {round}, cookie {cookie:?}: chain mixes versions");
            assert_eq!(frontend == "v2", tester, "cookie {cookie:?}");
        }
    }
    assert_eq!(ingress.counter(&decision_counter("frontend", "2", "v2"))?, 60);
    assert_eq!(sidecar_v2.counter(&decision_counter("forecast", "6", "v2"))?, 60);
    assert_eq!(sidecar_v1.counter(&decision_counter("forecast", "default", "v1"))?, 60);
    Ok(())
}

#[test]
fn s5_node_labels_are_read_once_per_vm() -> Result<()> {
    let mut proxy = Proxy::http(policy(S5)).node_label("version", "v2").start()?;
    let first = proxy.request(&[(":authority", "forecast")])?;
    assert!(first.calls.contains(&"get_property xds.node.metadata.LABELS.version".to_string()), "{:?}", first.calls);
    for _ in 0..10 {
        let out = proxy.request(&[(":authority", "forecast")])?;
        assert_eq!(out.header("x-canary-subset"), Some("v2"));
        assert!(!out.calls.iter().any(|c| c.starts_with("get_property")), "{:?}", out.calls);
    }
    // A proxy without the label (or with `node.…` only, which Envoy leaves empty) is not v2.
    let mut unlabelled = Proxy::http(policy(S5)).property(&["node", "metadata", "LABELS", "version"], b"v2").start()?;
    assert_eq!(subset_for(&mut unlabelled, &[(":authority", "forecast")])?.as_deref(), Some("v1"));
    Ok(())
}

#[test]
fn s5_fetches_only_what_the_decision_reads() -> Result<()> {
    let mut proxy = Proxy::http(policy(S5)).node_label("version", "v1").start()?;
    let headers = [(":authority", "frontend"), (":path", "/"), ("cookie", "user=tester"), ("user-agent", CHROME)];
    let out = proxy.request(&headers)?;
    // One read of the whole map (`:authority` and `cookie` both come from it), one write.
    assert_eq!(out.header_reads(), 1);
    assert_eq!(
        out.calls.iter().filter(|c| !c.starts_with("define_metric")).collect::<Vec<_>>(),
        ["get_header_map_pairs request_headers", "replace_header_map_value request_headers x-canary-subset"]
    );
    // Decisions are counted in the module and reach the proxy's counters on the next tick, not per request.
    let tick = proxy.tick()?;
    assert_eq!(tick.iter().filter(|c| c.starts_with("increment_metric")).count(), 1, "{tick:?}");
    // A fixed service needs not even `:authority`.
    let settings = Settings { service: Some("forecast".into()), ..Settings::default() };
    let mut fixed = Proxy::http(compile(S5, settings)).node_label("version", "v1").start()?;
    fixed.request(&headers)?;
    assert_eq!(fixed.request(&headers)?.header_reads(), 0);
    Ok(())
}

/// Counts batched since the last tick reach the proxy when the root context goes away (plugin removed or
/// reconfigured): nothing counted is lost.
#[test]
fn shutting_down_hands_over_counts_not_yet_ticked() -> Result<()> {
    let mut proxy = Proxy::http(policy(S5)).node_label("version", "v1").start()?;
    for cookie in ["user=tester", "user=tester", "user=alice"] {
        proxy.request(&[(":authority", "frontend"), ("cookie", cookie)])?;
    }
    let metrics = proxy.shut_down()?;
    assert_eq!(metrics.get(&decision_counter("frontend", "2", "v2")), Some(&2), "{metrics:?}");
    assert_eq!(metrics.get(&decision_counter("frontend", "default", "v1")), Some(&1), "{metrics:?}");
    Ok(())
}

const S6: &str = "service tcp-echo tcp {\n  20% v2\n  default v1\n}\n";

/// `SetEnvoyFilterStateArguments{path: envoy.tcp_proxy.cluster, value, span: DownstreamConnection}`.
fn cluster_args(cluster: &str) -> Vec<u8> {
    let mut raw = vec![0x0a, 23];
    raw.extend_from_slice(b"envoy.tcp_proxy.cluster");
    raw.push(0x12);
    raw.push(cluster.len() as u8);
    raw.extend_from_slice(cluster.as_bytes());
    raw.extend_from_slice(&[0x18, 2]);
    raw
}

#[test]
fn s6_tcp_connections_pick_clusters_through_filter_state() -> Result<()> {
    let mut proxy = Proxy::tcp(policy(S6)).start()?;
    let mut clusters = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let conn = proxy.connection()?;
        assert_eq!(conn.action, 0, "the connection continues");
        assert_eq!(conn.filter_state.len(), 1, "exactly one set_envoy_filter_state per connection");
        let cluster = conn.cluster().expect("cluster chosen").to_string();
        assert_eq!(conn.filter_state[0].raw, cluster_args(&cluster), "exact protobuf bytes");
        *clusters.entry(cluster).or_insert(0) += 1;
    }
    assert_eq!(clusters.keys().collect::<Vec<_>>(), ["tcp-echo-v1", "tcp-echo-v2"]);
    let counted = proxy.counter(&decision_counter("tcp-echo", "2", "v1"))?
        + proxy.counter(&decision_counter("tcp-echo", "2", "v2"))?;
    assert_eq!(counted, 200);
    Ok(())
}

#[test]
fn s6_istio_cluster_names_and_source_rules() -> Result<()> {
    let source = "service tcp-echo tcp {\n  source version=v2 -> v2\n  default v1\n}\n";
    let settings = Settings {
        cluster: Some("outbound|9000|{subset}|tcp-echo.weather.svc.cluster.local".into()),
        ..Settings::default()
    };
    let mut v2 = Proxy::tcp(compile(source, settings.clone())).node_label("version", "v2").start()?;
    let conn = v2.connection()?;
    let cluster = "outbound|9000|v2|tcp-echo.weather.svc.cluster.local";
    assert_eq!(conn.cluster(), Some(cluster));
    assert_eq!(conn.filter_state[0].raw, cluster_args(cluster));
    let mut v1 = Proxy::tcp(compile(source, settings)).start()?;
    assert_eq!(v1.connection()?.cluster(), Some("outbound|9000|v1|tcp-echo.weather.svc.cluster.local"));

    // Without a default, an unmatched connection sets nothing: tcp_proxy's own cluster applies.
    let mut none = Proxy::tcp(policy("service tcp-echo tcp {\n  source version=v2 -> v2\n}\n")).start()?;
    let conn = none.connection()?;
    assert!(conn.filter_state.is_empty() && !conn.calls.iter().any(|c| c.contains("foreign")));
    assert_eq!(none.counter(&decision_counter("tcp-echo", "none", ""))?, 1);
    Ok(())
}

#[test]
fn one_module_serves_http_and_tcp_from_one_combined_policy() -> Result<()> {
    let combined = format!("{S5}{S6}");
    let mut http = Proxy::http(policy(&combined)).start()?;
    assert_eq!(subset_for(&mut http, &[(":authority", "frontend"), ("cookie", "user=tester")])?.as_deref(), Some("v2"));
    // The only tcp service is the one a network filter serves, without any setting.
    let mut tcp = Proxy::tcp(policy(&combined)).start()?;
    assert!(tcp.connection()?.cluster().is_some_and(|c| c.starts_with("tcp-echo-")));
    Ok(())
}
