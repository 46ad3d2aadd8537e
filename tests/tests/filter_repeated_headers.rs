//! A header sent several times, at the filter level (the real `canary_filter.wasm` on the wasmtime host, which
//! serves `proxy_get_header_map_pairs` with every value in order, as Envoy does): conditions hold when any value
//! passes (`not` negates that, `!=` means "present and no value equal"), a sticky header hashes every value as
//! Envoy's hash policy does, cookies are read across `cookie` headers. Each decision is also compared with the
//! evaluator's (`Policy::decide` on a `SimpleRequest` holding the same lines). `tests/tests/envoy_native.rs`
//! checks the same meaning against Envoy's native routes.

use anyhow::Result;
use canary_eval::{sticky_bucket_all, Policy, SimpleRequest};
use canary_tests::host::{compile, Proxy, Settings};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const RULES: &str = "\
service forecast {
  header x-env = \"z\" -> v2
  header x-env in [\"p\", \"q\"] -> v3
  header x-agent ~ \"Android|Silk/\" -> v4
  not header x-flag = \"off\" and header x-flag present -> v5
  header x-beta != \"0\" -> v6
  cookie user=tester -> v7
  default v1
}
";

/// The filter's subset for these header lines, checked against the evaluator's.
fn both(proxy: &mut Proxy, policy: &Policy, lines: &[(&str, &str)]) -> Result<String> {
    let mut headers = vec![(":authority", "forecast")];
    headers.extend_from_slice(lines);
    let got = proxy.request(&headers)?.header("x-canary-subset").unwrap_or("none").to_string();
    let simple = headers.iter().fold(SimpleRequest::new(), |r, (k, v)| r.header(k, v));
    let d = policy.decide(policy.service_or_global("forecast"), &simple, &mut SmallRng::seed_from_u64(1));
    let want = d.subset.map_or("none", |s| policy.subset_name(s));
    assert_eq!(got, want, "filter vs evaluator for {lines:?}");
    Ok(got)
}

#[test]
fn conditions_hold_when_any_value_passes() -> Result<()> {
    let json = compile(RULES, Settings::default());
    let policy = Policy::from_json(json.as_bytes()).expect("compiled policy");
    let mut proxy = Proxy::http(json).start()?;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("x-env", "a"), ("x-env", "z")], "v2"),
        (&[("x-env", "z"), ("x-env", "a")], "v2"),
        (&[("x-env", "a"), ("x-env", "b")], "v1"),
        // Values are not split on commas: `a,z` is one value.
        (&[("x-env", "a,z")], "v1"),
        (&[("x-env", "a"), ("x-env", "q")], "v3"),
        (&[("x-agent", "curl"), ("x-agent", "x Silk/2")], "v4"),
        (&[("x-agent", "curl"), ("x-agent", "iPhone")], "v1"),
        // `not … = "off"`: no value may be `off`.
        (&[("x-flag", "on"), ("x-flag", "off")], "v1"),
        (&[("x-flag", "on"), ("x-flag", "yes")], "v5"),
        // `!=`: present, and no value equal.
        (&[("x-beta", "1"), ("x-beta", "0")], "v1"),
        (&[("x-beta", "1"), ("x-beta", "2")], "v6"),
        (&[("x-beta", "")], "v6"),
        // The first `user` cookie counts, across `cookie` headers.
        (&[("cookie", "a=1"), ("cookie", "user=tester")], "v7"),
        (&[("cookie", "user=other"), ("cookie", "user=tester")], "v1"),
    ];
    for (lines, want) in cases {
        assert_eq!(both(&mut proxy, &policy, lines)?, *want, "{lines:?}");
    }
    Ok(())
}

#[test]
fn a_sticky_header_hashes_every_value_in_any_order() -> Result<()> {
    let source = "service forecast {\n  30% v2, 20% v3 by header x-user-id\n  default v1\n}\n";
    let json = compile(source, Settings::default());
    let policy = Policy::from_json(json.as_bytes()).expect("compiled policy");
    let mut proxy = Proxy::http(json).record_calls(false).start()?;
    let by_formula = |values: &[&str]| {
        let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        match sticky_bucket_all(&bytes) {
            b if b < 3000 => "v2",
            b if b < 5000 => "v3",
            _ => "v1",
        }
    };
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..300 {
        let (a, b, c) = (format!("u{i}"), format!("s{}", i * 7), format!("{}", i % 5));
        let sets: [Vec<&str>; 3] = [vec![&a, &b], vec![&b, &a], vec![&c, &a, &b]];
        for values in &sets {
            let lines: Vec<(&str, &str)> = values.iter().map(|v| ("x-user-id", *v)).collect();
            let got = both(&mut proxy, &policy, &lines)?;
            assert_eq!(got, by_formula(values), "{values:?}");
            *seen.entry(got).or_insert(0) += 1;
        }
        // Sent in either order, a pair is one key.
        assert_eq!(by_formula(&[&a, &b]), by_formula(&[&b, &a]));
    }
    // Every subset is reached (the keys are not all in one bucket range).
    assert_eq!(seen.len(), 3, "{seen:?}");
    Ok(())
}

#[test]
fn many_repeats_and_hostile_values_never_trap() -> Result<()> {
    let json = compile(RULES, Settings::default());
    let policy = Policy::from_json(json.as_bytes()).expect("compiled policy");
    let mut proxy = Proxy::http(json).record_calls(false).start()?;
    let many_a: Vec<(&str, &[u8])> = std::iter::repeat_n(("x-env", &b"a"[..]), 10_000).collect();
    let mut last_z = many_a.clone();
    last_z.push(("x-env", b"z"));
    let binary: Vec<u8> = (0..=255u8).collect();
    let big = b"x".repeat(1 << 20);
    type Lines<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(Lines, &str)> = vec![
        (many_a, "v1"),
        (last_z, "v2"),
        (vec![("x-env", &binary), ("x-env", b"\xff\xfe"), ("x-env", b"z")], "v2"),
        (vec![("x-env", &big), ("x-env", &big), ("x-agent", &big)], "v1"),
        (vec![("x-flag", b"\xff"), ("x-flag", b"off\x00")], "v5"),
        ((0..2_000).map(|_| ("cookie", &b"a=1; user=x"[..])).collect(), "v1"),
    ];
    for (mut lines, want) in cases {
        lines.insert(0, (":authority", b"forecast"));
        let out = proxy.request_bytes(&lines)?;
        assert_eq!(out.header("x-canary-subset"), Some(want), "{} header lines", lines.len());
        let simple = lines.iter().fold(SimpleRequest::new(), |r, (k, v)| r.header(k, v));
        let d = policy.decide(policy.service_or_global("forecast"), &simple, &mut SmallRng::seed_from_u64(1));
        assert_eq!(d.subset.map(|s| policy.subset_name(s)), Some(want), "the evaluator agrees");
    }
    // The sticky hash over thousands of values stays the formula's.
    let source = "service forecast {\n  50% v2 by header x-user-id\n  default v1\n}\n";
    let sticky = Policy::from_json(compile(source, Settings::default()).as_bytes()).expect("compiled policy");
    let mut proxy = Proxy::http(compile(source, Settings::default())).record_calls(false).start()?;
    let values: Vec<String> = (0..3_000).map(|i| format!("{}", (i * 7919) % 3001)).collect();
    let mut lines: Vec<(&str, &str)> = vec![(":authority", "forecast")];
    lines.extend(values.iter().map(|v| ("x-user-id", v.as_str())));
    let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let want = if sticky_bucket_all(&bytes) < 5000 { "v2" } else { "v1" };
    assert_eq!(proxy.request(&lines)?.header("x-canary-subset"), Some(want));
    let simple = lines.iter().fold(SimpleRequest::new(), |r, (k, v)| r.header(k, v));
    let d = sticky.decide(sticky.service_or_global("forecast"), &simple, &mut SmallRng::seed_from_u64(1));
    assert_eq!(d.subset.map(|s| sticky.subset_name(s)), Some(want));
    Ok(())
}

/// A policy that reads only headers Envoy keeps as one entry (pseudo-headers, `user-agent`, whose repeats
/// Envoy joins with `,`) reads them by value, the cheaper call; any other header makes it read the whole map
/// once. (That Envoy joins `user-agent` is checked in real Envoy, envoy_native.rs.)
#[test]
fn one_entry_headers_are_read_by_value_others_through_the_map() -> Result<()> {
    let reads = |source: &str, lines: &[(&str, &str)]| -> Result<(Option<String>, Vec<String>)> {
        let mut proxy = Proxy::http(compile(source, Settings::default())).start()?;
        let out = proxy.request(lines)?;
        let calls = out.calls.iter().filter(|c| c.starts_with("get_header_map")).cloned().collect();
        Ok((out.header("x-canary-subset").map(str::to_string), calls))
    };
    let ua = "service forecast {\n  header user-agent ~ \"Android\" -> v2\n  default v1\n}\n";
    let (subset, calls) = reads(ua, &[(":authority", "forecast"), ("user-agent", "Android 14")])?;
    assert_eq!(subset.as_deref(), Some("v2"));
    assert_eq!(
        calls,
        ["get_header_map_value request_headers :authority", "get_header_map_value request_headers user-agent"]
    );
    let custom = "service forecast {\n  header x-agent ~ \"Android\" -> v2\n  default v1\n}\n";
    let lines = [(":authority", "forecast"), ("x-agent", "curl"), ("x-agent", "Android 14")];
    let (subset, calls) = reads(custom, &lines)?;
    assert_eq!(subset.as_deref(), Some("v2"));
    assert_eq!(calls, ["get_header_map_pairs request_headers"]);
    Ok(())
}
