//! Hostile and forged requests through a real Envoy running the filter (bootstrap from `canary_tests::reload`,
//! direct responses naming the subset). Envoy's own limits are raised (`max_request_headers_kb` 8192, the most
//! it allows; `max_headers_count` 20,000) so the hostile headers reach the filter; with the default 60 KiB limit
//! Envoy answers 431 itself, before any filter runs. Either way the VM never traps and keeps serving.

use std::time::Instant;

use anyhow::Result;
use canary_tests::host::{compile, Settings};
use canary_tests::reload::{http_get, http_request, ReloadOptions, ReloadableEnvoy};

const POLICY: &str = "\
service frontend {
  cookie user=tester -> v2
  query q=beta -> v3
  header user-agent ~ \"Android.*Mobile\" -> v2
  header x-env in [\"a\", \"b\"] -> v3
  default v1
}
";

const MB: usize = 1 << 20;

fn options() -> ReloadOptions {
    ReloadOptions {
        subsets: vec!["v1".into(), "v2".into(), "v3".into()],
        max_request_headers_kb: Some(8192),
        max_headers_count: Some(20_000),
        ..ReloadOptions::default()
    }
}

fn subset_of(answer: &(u16, String)) -> &str {
    answer.1.trim().trim_start_matches("subset=")
}

#[test]
fn hostile_requests_through_envoy() -> Result<()> {
    let mut envoy = ReloadableEnvoy::start(&compile(POLICY, Settings::default()), &options())?;
    let many_cookies: String = (0..10_000).map(|i| format!("c{i}=v{i}; ")).collect::<String>() + "user=tester";
    let android_mb = [b"Mozilla/5.0 (Linux; Android 14) Mobile ".as_slice(), &b"A".repeat(MB)].concat();
    // `~` searches the whole value (a lazy DFA, linear in its length): a match a megabyte in counts.
    let android_past_window = [b"Mozilla/5.0 (Linux; Android 14) ".as_slice(), &b"A".repeat(MB), b" Mobile"].concat();
    let huge_query = ["/?".as_bytes(), &b"x=1&".repeat(MB / 4), b"q=beta"].concat();
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a [u8], Vec<u8>)>, &'a str);
    let cases: Vec<Case> = vec![
        ("1 MB x-env value", b"/".to_vec(), vec![(b"x-env", b"z".repeat(MB))], "v1"),
        ("1 MB user-agent, matching", b"/".to_vec(), vec![(b"user-agent", android_mb)], "v2"),
        ("1 MB user-agent, match a megabyte in", b"/".to_vec(), vec![(b"user-agent", android_past_window)], "v2"),
        (
            "1 MB cookie, tester last",
            b"/".to_vec(),
            vec![(b"cookie", [b"a=".repeat(MB / 2), b"; user=tester".to_vec()].concat())],
            "v2",
        ),
        ("10,000 cookies, tester last", b"/".to_vec(), vec![(b"cookie", many_cookies.into_bytes())], "v2"),
        ("huge query, beta last", huge_query, vec![], "v3"),
        ("invalid UTF-8 cookie", b"/".to_vec(), vec![(b"cookie", b"\xff\xfe=\xc0; user=tester".to_vec())], "v2"),
        ("invalid UTF-8 user-agent", b"/".to_vec(), vec![(b"user-agent", b"Android\xc0\xaf Mobile".to_vec())], "v2"),
        // Envoy itself refuses a request line with bytes over 0x7f (400): the filter never sees it.
        ("invalid UTF-8 path", b"/?q=beta\xff".to_vec(), vec![], "400"),
        ("empty values", b"/?".to_vec(), vec![(b"cookie", vec![]), (b"x-env", vec![]), (b"user-agent", vec![])], "v1"),
        ("empty cookie pairs", b"/".to_vec(), vec![(b"cookie", b";;=;user;=tester; user=".to_vec())], "v1"),
        ("duplicate x-env", b"/".to_vec(), vec![(b"x-env", b"a".to_vec()), (b"x-env", b"z".to_vec())], "v3"),
    ];
    let mut slowest = (0.0f64, "");
    for (what, path, headers, want) in &cases {
        let headers: Vec<(&[u8], &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let start = Instant::now();
        let answer = http_request(envoy.listen, path, &headers)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("{ms:>8.1} ms  {what}: {} {}", answer.0, answer.1.trim());
        if ms > slowest.0 {
            slowest = (ms, what);
        }
        if *want == "400" {
            assert_eq!(answer.0, 400, "{what}: {}", answer.1);
        } else {
            assert_eq!((answer.0, subset_of(&answer)), (200, *want), "{what}");
        }
        assert_eq!(subset_of(&http_get(envoy.listen, "/", &[("cookie", "user=tester")])?), "v2", "after {what}");
    }
    println!("slowest through Envoy (whole request, client and Envoy included): {:.1} ms ({})", slowest.0, slowest.1);
    assert!(envoy.running(), "Envoy exited:\n{}", envoy.tail());
    let log = envoy.log();
    // A trap shows as `Function: proxy_on_… failed`; a Rust panic as `panicked`; a dead plugin as `[critical]`.
    for sign in ["Function: proxy_on", "panicked", "unreachable", "[critical]"] {
        assert!(!log.contains(sign), "Envoy logged `{sign}`:\n{}", envoy.tail());
    }
    Ok(())
}

#[test]
fn envoy_answers_oversize_headers_itself_and_the_filter_keeps_serving() -> Result<()> {
    // Envoy's defaults: 60 KiB of headers, 100 headers.
    let mut envoy = ReloadableEnvoy::start(&compile(POLICY, Settings::default()), &ReloadOptions::default())?;
    let big = "a".repeat(100 * 1024);
    assert_eq!(http_get(envoy.listen, "/", &[("cookie", &big)])?.0, 431, "Envoy's own limit");
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(http_get(envoy.listen, "/", &many)?.0, 431, "Envoy's own header count limit");
    assert_eq!(subset_of(&http_get(envoy.listen, "/", &[("cookie", "user=tester")])?), "v2");
    assert!(envoy.running());
    Ok(())
}

/// A client-sent `x-canary-subset`, in any case and repeated, never changes what Envoy routes to.
#[test]
fn forged_subset_headers_through_envoy() -> Result<()> {
    let envoy = ReloadableEnvoy::start(&compile(POLICY, Settings::default()), &options())?;
    let forgeries: [&[(&str, &str)]; 5] = [
        &[],
        &[("x-canary-subset", "v2")],
        &[("X-Canary-Subset", "v3"), ("x-canary-subset", "v2"), ("X-CANARY-SUBSET", "v2")],
        &[("x-canary-subset", "")],
        &[("x-canary-subset", "v2,v3")],
    ];
    for (request, want) in [(vec![], "v1"), (vec![("cookie", "user=tester")], "v2"), (vec![("x-env", "b")], "v3")] {
        for forged in forgeries {
            let mut headers = forged.to_vec();
            headers.extend(request.iter().copied());
            let answer = http_get(envoy.listen, "/", &headers)?;
            assert_eq!((answer.0, subset_of(&answer)), (200, want), "forged {forged:?} with {request:?}");
        }
    }
    // With nothing deciding (no default), a forged value is removed and Envoy's default route applies.
    let no_default = compile("service frontend {\n  cookie user=tester -> v2\n}\n", Settings::default());
    let envoy = ReloadableEnvoy::start(&no_default, &options())?;
    for forged in forgeries {
        assert_eq!(subset_of(&http_get(envoy.listen, "/", forged)?), "none", "forged {forged:?}");
    }
    Ok(())
}
