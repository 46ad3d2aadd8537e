//! `canaryc eval --explain` and `canaryc simulate`'s note, end to end.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).display().to_string()
}

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

fn stdout(args: &[&str]) -> String {
    let out = canaryc(args);
    assert!(out.status.success(), "canaryc {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

const FIREFOX: &str = "user-agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

#[test]
fn every_rule_tried_with_the_value_each_test_saw() {
    let weather = example("weather.canary");
    let out = stdout(&["eval", &weather, "--service", "forecast", "--header", FIREFOX, "--explain", "--seed", "1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "service forecast: 3 rules tried, top to bottom");
    assert_eq!(lines[1], "line 8: source version=v2 -> v2  — no match");
    assert_eq!(lines[2], "    ✗ source version=v2: no source label version");
    assert_eq!(lines[3], "line 9: header user-agent ~ \"Chrome\" -> v2  — no match");
    assert_eq!(
        lines[4],
        "    ✗ header user-agent ~ \"Chrome\": user-agent is \"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\""
    );
    assert_eq!(lines[5], "line 10: 50% v2  — matches");
    assert!(lines[6].starts_with("    split: per-request draw: bucket "), "{out}");
    assert!(lines[6].ends_with("[0–4999 v2, 5000–9999 v1 (default)]"), "{out}");
    // The explanation is of the decision `eval` makes with the same seed, whatever the draw.
    for seed in 0..40 {
        let seed = seed.to_string();
        let plain = stdout(&["eval", &weather, "--service", "forecast", "--header", FIREFOX, "--seed", &seed]);
        let explained =
            stdout(&["eval", &weather, "--service", "forecast", "--header", FIREFOX, "--seed", &seed, "--explain"]);
        assert!(explained.ends_with(&format!("decision: {} (line 10)\n", plain.trim())), "{explained}");
    }
}

#[test]
fn a_sticky_split_shows_its_key_bucket_and_ranges_and_json_carries_the_report() {
    let dir = std::env::temp_dir().join(format!("canaryc-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("sticky.canary");
    std::fs::write(
        &file,
        "service web {\n  cookie user=tester -> v2\n  not android: 10% v2 by cookie uid\n  default v1\n}\n",
    )
    .expect("write");
    let file = file.display().to_string();
    let bucket = canary_eval::sticky_bucket(b"abc123");
    let subset = if bucket < 1000 { "v2" } else { "v1" };
    let out = stdout(&["eval", &file, "--cookie", "user=alice", "--cookie", "uid=abc123", "--explain"]);
    assert_eq!(
        out,
        format!(
            "service web: 2 rules tried, top to bottom\n\
             line 2: cookie user=tester -> v2  — no match\n    \
             ✗ cookie user=tester: cookie user is \"alice\"\n\
             line 3: not android: 10% v2 by cookie uid  — matches\n    \
             ✓ not android: no user-agent header\n    \
             split: cookie uid is \"abc123\": sticky bucket {bucket} of 10,000 → {subset}  [0–999 v2, 1000–9999 v1 (default)]\n\
             decision: {subset} (line 3)\n"
        )
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&["eval", &file, "--cookie", "uid=abc123", "--explain", "--json"])).expect("JSON");
    assert_eq!((json["subset"].as_str(), json["rule"].as_u64()), (Some(subset), Some(3)));
    assert_eq!(json["explain"]["rules"][1]["split"]["bucket"], bucket);
    assert_eq!(json["explain"]["rules"][1]["split"]["by"], "cookie uid");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_rule_matched_names_the_default() {
    let out = stdout(&["eval", &example("s5-tester-chain.canary"), "--service", "frontend", "--explain"]);
    assert_eq!(
        out,
        "service frontend: 1 rule tried\nline 5: cookie user=tester -> v2  — no match\n    ✗ cookie user=tester: no cookie user\n\
         decision: v1 (no rule matched: the default)\n"
    );
}

#[test]
fn simulate_says_what_it_simulated() {
    let out = canaryc(&["simulate", &example("s4-android-split.canary"), "-n", "100"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "100 requests, each decided independently\n");
    let dir = std::env::temp_dir().join(format!("canaryc-simnote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("sticky.canary");
    std::fs::write(&file, "service web {\n  20% v2 by header x-user\n  default v1\n}\n").expect("write");
    let file = file.display().to_string();
    let out = canaryc(&["simulate", &file, "-n", "1000", "--header", "x-user: 42"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "1,000 requests from 1,000 users: header x-user gets a generated value per request \
         (the request's header x-user=42 is replaced; a fixed key keeps it)\n"
    );
    let out = canaryc(&["simulate", &file, "-n", "1000", "--fixed-key"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "1,000 requests with the keys as given: header x-user is missing, so each request is drawn independently\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
