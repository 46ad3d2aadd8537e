//! Policy pushes to a running plain Envoy, the way the README pushes them: the bootstrap from
//! `canaryc manifest --kind envoy --ecds-path|--rds-path PATH`, every push `canaryc manifest POLICY --kind
//! ecds|rds -o PATH` (run through the CLI's own entry point; see `canary_tests::push`). A good push takes
//! effect under wrk load with zero non-2xx answers and no socket errors; a policy canaryc refuses never
//! touches the watched file; a broken file (hand-edited, truncated, or naming a cluster the proxy lacks) is
//! refused by Envoy or the filter with a clear log line and the last good policy keeps serving.

use std::time::Duration;

use anyhow::Result;
use canary_tests::push::{Form, PushedEnvoy};
use canary_tests::reload::{finish_wrk, spawn_wrk, WrkReport};

/// Seconds of wrk load around each push (bounded: each test stays well under a minute).
const LOAD_SECS: u32 = 3;
const APPLY: Duration = Duration::from_secs(15);

fn http(envoy: &PushedEnvoy) -> Result<String> {
    envoy.http_subset(&[])
}

fn assert_clean(what: &str, report: &WrkReport) {
    println!(
        "{what}: wrk: {} requests, {} non-2xx, {} socket errors",
        report.requests, report.non_2xx, report.socket_errors
    );
    assert!(report.requests > 100, "{what}: wrk ran too little:\n{}", report.output);
    assert_eq!((report.non_2xx, report.socket_errors), (0, 0), "{what} dropped requests:\n{}", report.output);
}

#[test]
fn ecds_pushes_under_load_are_hitless_and_bad_ones_are_refused() -> Result<()> {
    let v1 = "service frontend {\n  default v1\n}\n";
    let v2 = "service frontend {\n  header x-stay-v1 present -> v1\n  default v2\n}\n";
    let mut envoy = PushedEnvoy::start(Form::Ecds, "frontend", v1, false)?;
    let (fails, reloads) = (envoy.stat_prefix(false) + "config_fail", envoy.stat_prefix(false) + "config_reload");
    assert_eq!(http(&envoy)?, "v1");
    let url = format!("http://{}/", envoy.listen);

    // A good push under load.
    let wrk = spawn_wrk(&url, 8, LOAD_SECS)?;
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(envoy.push(v2)?, 0);
    let took = envoy.wait_for("v2", APPLY, http)?;
    println!("good push: applied after {took:?}");
    assert_clean("a good push", &finish_wrk(wrk)?);
    assert_eq!(envoy.http_subset(&[("x-stay-v1", "1")])?, "v1");
    assert_eq!(envoy.watched_dir_entries(), ["frontend.yaml"], "-o leaves no temporary file behind");

    // Pushes canaryc refuses never reach the file: a policy error, and a subset the proxy was not built for.
    let good_file = envoy.watched_contents();
    assert_eq!(envoy.push("service frontend {\n  60% v2, 50% v3\n}\n")?, 1);
    assert_eq!(envoy.push_with("service frontend {\n  default v3\n}\n", &["--subsets", "v1,v2"])?, 1);
    assert_eq!(envoy.watched_contents(), good_file, "a refused push left the watched file as it was");

    // Broken files under load: refused by the filter or by Envoy, the last good policy keeps serving.
    let broken_regex = good_file.replacen("\"present\"", "{\"regex\":\"(unclosed\"}", 1);
    assert_ne!(broken_regex, good_file, "the emitted policy has the `present` test to break");
    let version_2 = good_file.replacen("{\"version\":1,", "{\"version\":2,", 1);
    assert_ne!(version_2, good_file);
    // What a writer without the rename could leave: the file cut inside the policy (an unterminated string).
    let cut = good_file.find("{\"version\":1,").expect("the policy JSON") + 5;
    let truncated = good_file[..cut].to_string();
    let wrk = spawn_wrk(&url, 8, LOAD_SECS)?;
    std::thread::sleep(Duration::from_millis(500));
    for (i, broken) in [broken_regex, version_2, truncated].iter().enumerate() {
        envoy.push_raw(broken)?;
        envoy.wait_stat(&fails, i as u64 + 1, APPLY)?;
        assert_eq!(http(&envoy)?, "v2", "the last good policy serves after bad push {i}");
    }
    assert_clean("refused pushes", &finish_wrk(wrk)?);
    println!("reloads {} failures {}", envoy.stat(&reloads)?, envoy.stat(&fails)?);
    let log = envoy.log();
    for line in log.lines().filter(|l| l.contains("canary") || l.contains("reject") || l.contains("failure")) {
        println!("envoy: {}", line.chars().take(240).collect::<String>());
    }
    assert!(log.contains("canary: refusing configuration: services[0].rules[0] (line 2): invalid regex"), "{log}");
    assert!(log.contains("canary: refusing configuration: config version 2 is not supported"), "{log}");
    let rejections = log.matches("config update rejected: Unable to create Wasm plugin canary-frontend").count();
    assert_eq!(rejections, 2, "Envoy's own ECDS rejection, once per policy the filter refused:\n{log}");
    assert!(log.contains("Filesystem config update failure"), "the truncated file is refused:\n{log}");
    assert!(envoy.running(), "Envoy exited:\n{}", envoy.tail());

    // And a good push after the refused ones still applies.
    assert_eq!(envoy.push(v1)?, 0);
    envoy.wait_for("v1", APPLY, http)?;
    Ok(())
}

#[test]
fn tcp_ecds_pushes_apply_to_new_connections() -> Result<()> {
    let mut envoy = PushedEnvoy::start(Form::Ecds, "tcp-echo", "service tcp-echo tcp {\n  default v1\n}\n", true)?;
    let fails = envoy.stat_prefix(true) + "config_fail";
    assert_eq!(envoy.tcp_subset()?, "v1");
    assert_eq!(envoy.push("service tcp-echo tcp {\n  default v2\n}\n")?, 0);
    let took = envoy.wait_for("v2", APPLY, |e| e.tcp_subset())?;
    println!("tcp push: applied after {took:?}");
    let broken = envoy.watched_contents().replacen("{\"version\":1,", "{\"version\":2,", 1);
    envoy.push_raw(&broken)?;
    envoy.wait_stat(&fails, 1, APPLY)?;
    for _ in 0..5 {
        assert_eq!(envoy.tcp_subset()?, "v2", "the last good policy serves after a refused push");
    }
    assert!(envoy.log().contains("canary: refusing configuration: config version 2 is not supported"));
    assert!(envoy.running(), "Envoy exited:\n{}", envoy.tail());
    Ok(())
}

#[test]
fn rds_pushes_change_native_routes_and_bad_ones_are_refused() -> Result<()> {
    let first = "service forecast {\n  header x-beta present -> v2\n  default v1\n}\n";
    let mut envoy = PushedEnvoy::start(Form::Rds, "forecast", first, false)?;
    let rejected = envoy.stat_prefix(false) + "update_rejected";
    let beta = |e: &PushedEnvoy| e.http_subset(&[("x-beta", "1")]);
    assert_eq!((http(&envoy)?, beta(&envoy)?), ("v1".to_string(), "v2".to_string()));
    let url = format!("http://{}/", envoy.listen);

    // A good push under load: the routes change, no request fails.
    let wrk = spawn_wrk(&url, 8, LOAD_SECS)?;
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(envoy.push("service forecast {\n  header x-beta present -> v1\n  default v3\n}\n")?, 0);
    let took = envoy.wait_for("v3", APPLY, http)?;
    println!("rds push: applied after {took:?}");
    assert_clean("an RDS push", &finish_wrk(wrk)?);
    assert_eq!(beta(&envoy)?, "v1");

    // canaryc refuses a policy routes cannot carry (a query condition): the file is untouched.
    let good_file = envoy.watched_contents();
    assert_eq!(envoy.push("service forecast {\n  query q=1 -> v2\n  default v1\n}\n")?, 1);
    assert_eq!(envoy.watched_contents(), good_file);

    // Routes naming a cluster this proxy lacks (a subset it was not built with): Envoy refuses them
    // (`validate_clusters`), the last good routes keep serving.
    let v9 = "service forecast {\n  header x-beta present -> v9\n  default v1\n}\n";
    assert_eq!(envoy.push_with(v9, &["--subsets", "v1,v2,v3,v9"])?, 0);
    envoy.wait_stat(&rejected, 1, APPLY)?;
    assert_eq!((http(&envoy)?, beta(&envoy)?), ("v3".to_string(), "v1".to_string()));
    let log = envoy.log();
    assert!(log.contains("forecast-v9"), "Envoy names the unknown cluster:\n{log}");
    assert!(envoy.running(), "Envoy exited:\n{}", envoy.tail());
    Ok(())
}
