//! Policy pushes to a running plain Envoy under wrk load, the way an operator without a control plane does it:
//! ECDS from a watched file replaced by rename (see `canary_tests::reload`). A good policy takes effect with
//! zero non-2xx answers and no socket errors; a broken one is refused with a clear log line and the last good
//! policy keeps serving, again with zero non-2xx.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use canary_tests::host::{compile, Settings};
use canary_tests::reload::{finish_wrk, http_get, spawn_wrk, ReloadOptions, ReloadableEnvoy};

const RELOADS: &str = "extension_config_discovery.http_filter.canary.config_reload";
const FAILS: &str = "extension_config_discovery.http_filter.canary.config_fail";

/// Seconds of wrk load around each push (bounded: the whole test stays well under a minute).
const LOAD_SECS: u32 = 3;

fn subset(envoy: &ReloadableEnvoy, headers: &[(&str, &str)]) -> Result<String> {
    let (status, body) = http_get(envoy.listen, "/", headers)?;
    if status != 200 {
        bail!("status {status}: {body}");
    }
    Ok(body.trim().trim_start_matches("subset=").to_string())
}

/// Polls until the answer is `want` (the push has been applied).
fn wait_for(envoy: &ReloadableEnvoy, want: &str, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let got = subset(envoy, &[])?;
        if got == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("still `{got}`, not `{want}`, {timeout:?} after the push; Envoy log:\n{}", envoy.tail());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn policy_pushes_under_load_are_hitless_and_bad_ones_are_refused() -> Result<()> {
    let v1 = compile("default v1\n", Settings::default());
    let v2 = compile("header x-stay-v1 present -> v1\ndefault v2\n", Settings::default());
    let mut envoy = ReloadableEnvoy::start(&v1, &ReloadOptions::default())?;
    assert_eq!(subset(&envoy, &[])?, "v1");
    let url = format!("http://{}/", envoy.listen);

    // A good push under load.
    let wrk = spawn_wrk(&url, 8, LOAD_SECS)?;
    std::thread::sleep(Duration::from_millis(800));
    envoy.push(&v2)?;
    let took = wait_for(&envoy, "v2", Duration::from_secs(10))?;
    let good = finish_wrk(wrk)?;
    println!(
        "good push: applied after {took:?}; wrk: {} requests, {} non-2xx, {} socket errors",
        good.requests, good.non_2xx, good.socket_errors
    );
    assert!(good.requests > 100, "wrk ran too little:\n{}", good.output);
    assert_eq!((good.non_2xx, good.socket_errors), (0, 0), "a good push dropped requests:\n{}", good.output);
    assert_eq!(subset(&envoy, &[("x-stay-v1", "1")])?, "v1");

    // Broken pushes under load: refused, the last good policy keeps serving.
    let broken_regex = v2.replace("\"present\"", "{\"regex\": \"(unclosed\"}");
    assert_ne!(broken_regex, v2, "the policy JSON has the `present` test to break");
    let version_2 = v2.replacen("\"version\": 1", "\"version\": 2", 1);
    assert_ne!(version_2, v2);
    let wrk = spawn_wrk(&url, 8, LOAD_SECS)?;
    std::thread::sleep(Duration::from_millis(500));
    for (i, broken) in [broken_regex, version_2].iter().enumerate() {
        envoy.push(broken)?;
        envoy.wait_stat(FAILS, i as u64 + 1, Duration::from_secs(10))?;
        assert_eq!(subset(&envoy, &[])?, "v2", "the last good policy serves after bad push {i}");
    }
    let bad = finish_wrk(wrk)?;
    println!(
        "broken pushes: wrk: {} requests, {} non-2xx, {} socket errors; reloads {} failures {}",
        bad.requests,
        bad.non_2xx,
        bad.socket_errors,
        envoy.stat(RELOADS)?,
        envoy.stat(FAILS)?
    );
    assert!(bad.requests > 100, "wrk ran too little:\n{}", bad.output);
    assert_eq!((bad.non_2xx, bad.socket_errors), (0, 0), "a refused push dropped requests:\n{}", bad.output);
    let log = envoy.log();
    for line in log.lines().filter(|l| l.contains("canary") || l.contains("reject") || l.contains("onConfigUpdate")) {
        println!("envoy: {}", line.chars().take(240).collect::<String>());
    }
    assert!(log.contains("canary: refusing configuration: global.rules[0] (line 1): invalid regex"), "{log}");
    assert!(log.contains("canary: refusing configuration: config version 2 is not supported"), "{log}");
    let rejections = log.matches("config update rejected: Unable to create Wasm plugin canary").count();
    assert_eq!(rejections, 2, "Envoy's own ECDS rejection, once per broken push:\n{log}");
    assert!(envoy.running(), "Envoy exited:\n{}", envoy.tail());

    // And a good push after the refused ones still applies.
    envoy.push(&v1)?;
    wait_for(&envoy, "v1", Duration::from_secs(10))?;
    Ok(())
}
