//! Weighted splits inside the real module: proportions over ≥ 10,000 simulated requests or connections
//! stay within 5-sigma binomial bounds, sticky splits keep each key in one bucket on every proxy, and the
//! per-rule counters add up.

use std::collections::BTreeMap;

use anyhow::Result;
use canary_tests::host::{compile, decision_counter, Proxy, Settings};

const N: u64 = 10_000;

/// `|count − n·p| ≤ 5·sqrt(n·p·(1−p))`: a correct implementation fails this about once in 1.7 million runs.
fn assert_binomial(count: u64, n: u64, p: f64, what: &str) {
    let mean = n as f64 * p;
    let bound = 5.0 * (n as f64 * p * (1.0 - p)).sqrt();
    assert!((count as f64 - mean).abs() <= bound, "{what}: {count} of {n}, expected {mean:.0} ± {bound:.0} (p = {p})");
}

fn tally(proxy: &mut Proxy, n: u64, headers: &[(&str, &str)]) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let subset = proxy.request(headers)?.header("x-canary-subset").unwrap_or("none").to_string();
        *counts.entry(subset).or_insert(0) += 1;
    }
    Ok(counts)
}

#[test]
fn s2_fifty_percent_of_forecast_traffic() -> Result<()> {
    let policy = compile("service forecast {\n  50% v2\n  default v1\n}\ndefault v1\n", Settings::default());
    let mut proxy = Proxy::http(policy).start()?;
    let counts = tally(&mut proxy, N, &[(":authority", "forecast")])?;
    assert_eq!(counts.values().sum::<u64>(), N);
    assert_binomial(counts["v2"], N, 0.5, "forecast v2");
    // The counters Envoy exposes tell the same story.
    assert_eq!(proxy.counter(&decision_counter("forecast", "2", "v2"))?, counts["v2"]);
    assert_eq!(proxy.counter(&decision_counter("forecast", "2", "v1"))?, counts["v1"]);
    Ok(())
}

#[test]
fn s4_android_users_split_evenly() -> Result<()> {
    let source = "service frontend {\n  android: 50% v2\n  default v1\n}\ndefault v1\n";
    let mut proxy = Proxy::http(compile(source, Settings::default())).start()?;
    let ua = "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0 Mobile Safari/537.36";
    let counts = tally(&mut proxy, N, &[(":authority", "frontend"), ("user-agent", ua)])?;
    assert_binomial(counts["v2"], N, 0.5, "android on frontend v2");
    Ok(())
}

#[test]
fn three_way_split_with_hundredths_of_a_percent() -> Result<()> {
    let source = "service api {\n  10.25% v2, 30% v3\n  default v1\n}\n";
    let mut proxy = Proxy::http(compile(source, Settings::default())).start()?;
    let counts = tally(&mut proxy, 2 * N, &[(":authority", "api")])?;
    assert_binomial(counts["v2"], 2 * N, 0.1025, "v2");
    assert_binomial(counts["v3"], 2 * N, 0.30, "v3");
    assert_binomial(counts["v1"], 2 * N, 0.5975, "v1 (the remainder)");
    Ok(())
}

#[test]
fn s6_tcp_connections_eighty_twenty() -> Result<()> {
    let policy = compile("service tcp-echo tcp {\n  20% v2\n  default v1\n}\n", Settings::default());
    let mut proxy = Proxy::tcp(policy).start()?;
    let mut v2 = 0;
    for _ in 0..N {
        match proxy.connection()?.cluster() {
            Some("tcp-echo-v2") => v2 += 1,
            Some("tcp-echo-v1") => {}
            other => panic!("unexpected cluster {other:?}"),
        }
    }
    assert_binomial(v2, N, 0.2, "connections to tcp-echo-v2");
    Ok(())
}

#[test]
fn proxies_draw_independently_but_reproducibly() -> Result<()> {
    let policy = compile("service forecast {\n  50% v2\n  default v1\n}\n", Settings::default());
    let run = |nanos: u64| -> Result<Vec<String>> {
        let mut proxy = Proxy::http(&policy).time_nanos(nanos).start()?;
        (0..64)
            .map(|_| Ok(proxy.request(&[(":authority", "forecast")])?.header("x-canary-subset").unwrap().into()))
            .collect()
    };
    // The seed comes from the host clock: the same clock replays the same draws (tests are
    // reproducible), another clock (another worker or proxy) draws differently.
    assert_eq!(run(1)?, run(1)?);
    assert_ne!(run(1)?, run(2)?);
    Ok(())
}

fn user(i: u32) -> String {
    format!("theme=dark; user=u{i:05}")
}

#[test]
fn sticky_split_keeps_each_user_in_one_bucket_on_every_proxy() -> Result<()> {
    let source = "service frontend {\n  50% v2 by cookie user\n  default v1\n}\n";
    let policy = compile(source, Settings::default());
    let mut proxies: Vec<Proxy> =
        (0..3).map(|i| Proxy::http(&policy).time_nanos(1_000 + i).start()).collect::<Result<_>>()?;
    let users = 2_000;
    let mut v2 = 0;
    for i in 0..users {
        let cookie = user(i);
        let headers = [(":authority", "frontend"), ("cookie", cookie.as_str())];
        let mut seen = Vec::new();
        for proxy in proxies.iter_mut() {
            for _ in 0..2 {
                seen.push(proxy.request(&headers)?.header("x-canary-subset").unwrap().to_string());
            }
        }
        assert!(seen.iter().all(|s| *s == seen[0]), "user {i} moved between versions: {seen:?}");
        v2 += u64::from(seen[0] == "v2");
    }
    assert_binomial(v2, users.into(), 0.5, "sticky users on v2");

    // Without the key, each request is drawn on its own: the same key-less request sees both versions.
    let keyless = tally(&mut proxies[0], 200, &[(":authority", "frontend"), ("cookie", "theme=dark")])?;
    assert_eq!(keyless.len(), 2, "{keyless:?}");
    Ok(())
}

#[test]
fn raising_a_sticky_percentage_only_moves_users_to_the_canary() -> Result<()> {
    let at = |percent: u32| -> Result<Vec<bool>> {
        let source = format!("service frontend {{\n  {percent}% v2 by header x-user-id\n  default v1\n}}\n");
        let mut proxy = Proxy::http(compile(&source, Settings::default())).start()?;
        (0..2_000)
            .map(|i| {
                let id = format!("id-{i}");
                let out = proxy.request(&[(":authority", "frontend"), ("x-user-id", id.as_str())])?;
                Ok(out.header("x-canary-subset") == Some("v2"))
            })
            .collect()
    };
    let (low, high) = (at(20)?, at(50)?);
    for (i, (before, after)) in low.iter().zip(&high).enumerate() {
        assert!(!before || *after, "user id-{i} went back from v2 to v1 when the canary grew");
    }
    assert_binomial(low.iter().filter(|b| **b).count() as u64, 2_000, 0.2, "20%");
    assert_binomial(high.iter().filter(|b| **b).count() as u64, 2_000, 0.5, "50%");
    Ok(())
}

#[test]
fn counters_account_for_every_request_by_rule_and_subset() -> Result<()> {
    let source = "\
service frontend {
  cookie user=tester -> v2
  android: 50% v2
  default v1
}
";
    let mut proxy = Proxy::http(compile(source, Settings::default())).start()?;
    let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36";
    for i in 0..300 {
        let headers: &[(&str, &str)] = match i % 3 {
            0 => &[(":authority", "frontend"), ("cookie", "user=tester")],
            1 => &[(":authority", "frontend"), ("user-agent", android)],
            _ => &[(":authority", "frontend")],
        };
        proxy.request(headers)?;
    }
    let counters = proxy.counters()?;
    assert_eq!(counters.values().sum::<u64>(), 300, "{counters:?}");
    assert_eq!(counters[&decision_counter("frontend", "2", "v2")], 100);
    assert_eq!(
        counters[&decision_counter("frontend", "3", "v2")] + counters[&decision_counter("frontend", "3", "v1")],
        100
    );
    assert_eq!(counters[&decision_counter("frontend", "default", "v1")], 100);
    assert_eq!(counters.len(), 4, "{counters:?}");
    Ok(())
}
