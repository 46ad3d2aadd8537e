//! What a client or an operator can throw at the filter: forged subset headers, hostile header values,
//! configurations it must refuse. None of it may trap the VM (the host turns a trap into a test failure).

use anyhow::Result;
use canary_tests::host::{compile, decision_counter, instantiate, LogLevel, Proxy, Settings};

const S5: &str = "\
service frontend {
  cookie user=tester -> v2
  header user-agent ~ \"Android.*Mobile\" -> v3
  default v1
}
";

fn s5() -> String {
    compile(S5, Settings::default())
}

#[test]
fn a_forged_subset_header_is_overwritten() -> Result<()> {
    let mut proxy = Proxy::http(s5()).start()?;
    // Any case (Envoy lowercases names), repeated, with a value the policy would never choose.
    let out = proxy.request(&[
        (":authority", "frontend"),
        ("X-Canary-Subset", "v2"),
        ("x-canary-subset", "v9"),
        ("X-CANARY-SUBSET", "v2"),
    ])?;
    assert_eq!(out.header_values("x-canary-subset"), [b"v1"]);
    let out = proxy.request(&[(":authority", "frontend"), ("cookie", "user=tester"), ("x-canary-subset", "v1")])?;
    assert_eq!(out.header_values("x-canary-subset"), [b"v2"]);
    Ok(())
}

#[test]
fn a_forged_subset_header_is_removed_when_nothing_decides() -> Result<()> {
    // No default: unmatched requests get no decision, so Envoy's default route must apply.
    let policy = compile("service frontend {\n  cookie user=tester -> v2\n}\n", Settings::default());
    let mut proxy = Proxy::http(policy).start()?;
    let out = proxy.request(&[(":authority", "frontend"), ("x-canary-subset", "v2"), ("X-Canary-Subset", "v3")])?;
    assert_eq!(out.header_values("x-canary-subset"), Vec::<&[u8]>::new());
    assert_eq!(out.headers.len(), 1, "other headers untouched: {:?}", out.headers);
    assert_eq!(proxy.counter(&decision_counter("frontend", "none", ""))?, 1);
    // Requests for services the policy does not know (no top-level default) are cleaned too.
    let out = proxy.request(&[(":authority", "elsewhere"), ("x-canary-subset", "v2")])?;
    assert!(out.header("x-canary-subset").is_none());
    assert_eq!(proxy.counter(&decision_counter("*", "none", ""))?, 1);
    Ok(())
}

#[test]
fn trusted_hops_keep_their_subset_header() -> Result<()> {
    let settings = Settings { trust_incoming: true, header: Some("x-version".into()), ..Settings::default() };
    let mut proxy = Proxy::http(compile(S5, settings)).start()?;
    let out = proxy.request(&[(":authority", "frontend"), ("x-version", "v7"), ("cookie", "user=tester")])?;
    assert_eq!(out.header("x-version"), Some("v7"));
    assert_eq!(out.header_reads(), 1, "a kept header means nothing else is read");
    assert!(!out.calls.iter().any(|c| c.contains("replace") || c.contains("remove")), "{:?}", out.calls);
    let out = proxy.request(&[(":authority", "frontend"), ("cookie", "user=tester")])?;
    assert_eq!(out.header("x-version"), Some("v2"));
    Ok(())
}

fn refusal(config: &[u8]) -> Result<String> {
    let refused = Proxy::http(config).configure()?.expect_err("the configuration must be refused");
    let errors: Vec<_> = refused.logs.iter().filter(|l| l.level == LogLevel::Error).collect();
    assert_eq!(errors.len(), 1, "one error line: {refused}");
    let reason = errors[0].message.strip_prefix("canary: refusing configuration: ");
    Ok(reason.unwrap_or_else(|| panic!("unexpected refusal line {:?}", errors[0].message)).to_string())
}

#[test]
fn a_bad_configuration_is_refused_with_its_reason() -> Result<()> {
    let deep = [br#"{"version":1,"global":{"rules":[{"line":1,"when":"#.as_slice(), &b"{\"not\":".repeat(200)].concat();
    let cases: [(&[u8], &str); 13] = [
        (b"", "config is not valid canary JSON: EOF while parsing a value at line 1 column 0"),
        (b"{\"version\": 1,", "config is not valid canary JSON: EOF while parsing"),
        (br#"{"version":2}"#, "config version 2 is not supported"),
        (
            br#"{"version":1,"services":[{"name":"a","colour":"red"}]}"#,
            "unknown field `colour`, expected one of `name`, `protocol`, `rules`, `default` at line 1 column 45",
        ),
        (br#"{"version":1,"version":1}"#, "duplicate field `version` at line 1 column 22"),
        (br#"{"version":1,"services":[{"name":"a","rules":[],"rules":[]}]}"#, "duplicate field `rules`"),
        (br#"{"version":1,"global":{"default":"v\udc00"}}"#, "lone leading surrogate in hex escape at line 1 column 41"),
        (&deep, "recursion limit exceeded"),
        (br#"{"version":1,"settings":{"header":"X-Bad Header"}}"#, "settings.header: invalid header name"),
        (
            br#"{"version":1,"global":{"rules":[{"line":4,"when":{"header":{"name":"ua","test":{"regex":"("}}},"then":{"route":"v2"}}]}}"#,
            "global.rules[0] (line 4): invalid regex",
        ),
        (
            br#"{"version":1,"global":{"rules":[{"line":2,"then":{"split":{"to":[{"subset":"v2","weight":6000},{"subset":"v3","weight":5000}]}}}]}}"#,
            "over 100%",
        ),
        (br#"{"version":1,"global":{"default":"not a subset!"}}"#, "invalid subset name"),
        (b"\xff\xfe{}", "config is not valid canary JSON: expected value at line 1 column 1"),
    ];
    for (config, want) in cases {
        let reason = refusal(config)?;
        assert!(reason.contains(want), "{:?}: got {reason:?}", String::from_utf8_lossy(config));
    }
    Ok(())
}

#[test]
fn a_good_configuration_logs_what_it_serves() -> Result<()> {
    let proxy = Proxy::http(s5()).start()?;
    let info: Vec<_> = proxy.logs().iter().filter(|l| l.level == LogLevel::Info).map(|l| l.message.as_str()).collect();
    assert_eq!(info, ["canary: configured: 2 rules; http service from :authority; tcp service none"]);
    Ok(())
}

#[test]
fn hostile_header_values_never_trap() -> Result<()> {
    let mut proxy = Proxy::http(s5()).start()?;
    let binary: Vec<u8> = (0..=255u8).collect();
    let huge_cookie = [b"a=".as_slice(), &b"x".repeat(1 << 20), b"; user=tester"].concat();
    let huge_ua = [b"Mozilla/5.0 (Linux; Android 14) Mobile ".as_slice(), &b"\xf0\x9f".repeat(300_000)].concat();
    // `~` searches the whole value: a match 600 KB in counts, as in Envoy's RE2.
    let past_window =
        [b"Mozilla/5.0 (Linux; Android 14) ".as_slice(), &b"\xf0\x9f".repeat(300_000), b" Mobile"].concat();
    type Headers<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(Headers, Option<&str>)> = vec![
        (vec![(":authority", b"frontend"), ("cookie", &binary)], Some("v1")),
        (vec![(":authority", b"frontend"), ("cookie", b"user=tester\xff")], Some("v1")),
        (vec![(":authority", b"frontend"), ("cookie", b"\xff\xfe; user=tester")], Some("v2")),
        (vec![(":authority", b"frontend"), ("user-agent", b"Android\xff\xfe Mobile")], Some("v3")),
        (vec![(":authority", b"frontend"), ("user-agent", &binary)], Some("v1")),
        (vec![(":authority", b"frontend"), ("cookie", &huge_cookie)], Some("v2")),
        (vec![(":authority", b"frontend"), ("user-agent", &huge_ua)], Some("v3")),
        (vec![(":authority", b"frontend"), ("user-agent", &past_window)], Some("v3")),
        // Unknown services (no top-level default here): no decision, header removed.
        (vec![(":authority", b"front\xffend"), ("cookie", b"user=tester")], None),
        (vec![(":authority", &[b'f'; 100_000])], None),
        (vec![(":authority", b""), ("cookie", b"")], None),
        (vec![], None),
        (vec![(":authority", b"frontend"), ("cookie", b";;;=;=user=tester;user")], Some("v1")),
    ];
    for (headers, want) in cases {
        let out = proxy.request_bytes(&headers)?;
        let shown: Vec<_> = headers.iter().map(|(k, v)| (k, v.len())).collect();
        assert_eq!(out.header("x-canary-subset"), want, "headers (name, length) {shown:?}");
    }
    Ok(())
}

#[test]
fn memory_stops_growing_under_repeated_traffic() -> Result<()> {
    let mut proxy = Proxy::http(s5()).start()?;
    let big = "k=".to_string() + &"v".repeat(50_000);
    let traffic = |proxy: &mut Proxy| -> Result<()> {
        for i in 0..300 {
            let cookie = if i % 3 == 0 { "user=tester".to_string() } else { format!("{big}; n={i}") };
            proxy.request(&[(":authority", "frontend"), ("cookie", &cookie), ("user-agent", "Android 14 Mobile")])?;
        }
        Ok(())
    };
    traffic(&mut proxy)?;
    let warm = proxy.memory_bytes();
    traffic(&mut proxy)?;
    traffic(&mut proxy)?;
    assert_eq!(proxy.memory_bytes(), warm, "linear memory grew after warm-up");
    Ok(())
}

#[test]
fn the_host_refuses_unknown_imports() {
    // (module (import "env" "proxy_unknown_call" (func)) (memory (export "memory") 1))
    let wasm = [
        &b"\0asm\x01\0\0\0"[..],
        &[0x01, 0x04, 0x01, 0x60, 0x00, 0x00],
        &[0x02, 0x1a, 0x01, 0x03, b'e', b'n', b'v', 0x12],
        b"proxy_unknown_call",
        &[0x00, 0x00],
        &[0x05, 0x03, 0x01, 0x00, 0x01],
        &[0x07, 0x0a, 0x01, 0x06],
        b"memory",
        &[0x02, 0x00],
    ]
    .concat();
    let err = instantiate(&wasm).expect_err("an unknown import must fail instantiation");
    assert!(format!("{err:#}").contains("proxy_unknown_call"), "{err:#}");
}
