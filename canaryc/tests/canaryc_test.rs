//! `canaryc test` end to end: every example's test file passes, and failing or malformed files give the
//! documented lines and exit codes (1: a case failed, 2: a test file is malformed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    format!("canaryc/tests/policy_tests/{name}")
}

/// Runs `canaryc test` from the repository root, so file names in its output are as written here.
fn canaryc_test(args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_canaryc"))
        .current_dir(root())
        .arg("test")
        .args(args)
        .output()
        .expect("canaryc runs");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn every_scenario_has_passing_tests() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).expect("examples") {
        let path = entry.expect("entry").path();
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".tests.yaml")) else {
            continue;
        };
        let policy = format!("examples/{stem}.canary");
        let tests = format!("examples/{stem}.tests.yaml");
        assert!(root().join(&policy).exists(), "{tests} has no policy {policy}");
        let cases = canary_policy_tests::parse(&std::fs::read_to_string(&path).expect("read")).expect("parses");
        let (code, stdout, stderr) = canaryc_test(&[&policy, &tests]);
        assert_eq!(code, 0, "{tests}:\n{stdout}{stderr}");
        assert_eq!(stdout, format!("{} passed, 0 failed\n", cases.len()), "{tests}");
        seen.push(stem.to_string());
    }
    seen.sort();
    let scenarios = [
        "s1-all-v1",
        "s2-forecast-100",
        "s2-forecast-50",
        "s3-chrome",
        "s4-android-split",
        "s5-tester-chain",
        "s6-tcp-split",
    ];
    for s in scenarios {
        assert!(seen.iter().any(|x| x == s), "examples/{s}.tests.yaml is missing");
    }
}

#[test]
fn a_previous_rollout_step_fails_case_by_case() {
    let (code, stdout, stderr) =
        canaryc_test(&[&fixture("rollout.canary"), &fixture("rollout-previous-step.tests.yaml")]);
    let file = fixture("rollout-previous-step.tests.yaml");
    // Sticky keys are generated (`sim-0` … `sim-9999`) and bucketed by xxh64: these shares are exact.
    let expected = format!(
        "{file}:2: case \"a tenth of the users are on v2\": expected {{v1: 90%, v2: 10%}}, got {{v1: 79.87%, v2: 20.13%}} of 10000 draws, `v1` beyond 5σ (decided by line 4)\n\
         {file}:6: case \"testers are always on v2\": expected v2 (decided by line 4), got v2 (decided by line 3)\n\
         {file}:12: case \"without x-debug the api gets its default\": expected none, got v1 (no rule matched)\n\
         0 passed, 3 failed\n"
    );
    assert_eq!(stdout, expected);
    assert_eq!((code, stderr.as_str()), (1, ""));
}

#[test]
fn the_first_rollout_steps_tests_fail_on_the_second_step() {
    let (code, stdout, _) = canaryc_test(&["examples/s2-forecast-100.canary", "examples/s2-forecast-50.tests.yaml"]);
    let expected = "examples/s2-forecast-50.tests.yaml:3: case \"forecast is split half and half\": expected {v1: 50%, v2: 50%} (decided by line 3), got {v2: 100%} of 10000 draws (decided by line 3)\n1 passed, 1 failed\n";
    assert_eq!((code, stdout.as_str()), (1, expected));
}

#[test]
fn a_request_without_its_sticky_key_is_drawn_each_time() {
    let (code, stdout, _) = canaryc_test(&[&fixture("rollout.canary"), &fixture("drawn-per-request.tests.yaml")]);
    assert_eq!(code, 1);
    let line = stdout.lines().next().unwrap_or_default();
    let prefix = format!(
        "{}:1: case \"a user without a cookie is drawn on every request\": expected v1, got {{v1: ",
        fixture("drawn-per-request.tests.yaml")
    );
    assert!(line.starts_with(&prefix) && line.ends_with("of 10000 draws (decided by line 4)"), "{line}");
    assert_eq!(stdout.lines().last(), Some("0 passed, 1 failed"));
}

#[test]
fn coverage_lists_the_rules_no_case_reached() {
    let (code, stdout, _) = canaryc_test(&["--coverage", &fixture("rollout.canary"), &fixture("rollout.tests.yaml")]);
    let expected = format!(
        "coverage: 2 of 3 rules reached\n{}:8:3: not reached by any case: header x-debug present -> v2\n3 passed, 0 failed\n",
        fixture("rollout.canary")
    );
    assert_eq!((code, stdout.as_str()), (0, expected.as_str()));
}

#[test]
fn malformed_files_exit_2_with_their_line_and_run_nothing() {
    let cases = [
        (
            "examples/s2-forecast-50.canary",
            "unknown-field.tests.yaml",
            "7:3: error: [1].headers: Unknown field `headers`, expected one of `name`, `service`, `header`, `cookie`, `query`, `source`, `path`, `method`, `host`, `expect`, or `rule`",
        ),
        (
            "examples/s2-forecast-50.canary",
            "bad-split.tests.yaml",
            "3:11: error: case \"shares must add up\": the expected split sums to 50%, not 100% (name every subset, the default's share included)",
        ),
        (
            "examples/s6-tcp-split.canary",
            "tcp-header.tests.yaml",
            "1:3: error: case \"a tcp connection has no headers\": `header` does not apply to tcp service `tcp-echo`: a connection has only `source` labels",
        ),
    ];
    for (policy, file, message) in cases {
        let (code, stdout, stderr) = canaryc_test(&[policy, &fixture(file)]);
        assert_eq!(stderr, format!("{}:{message}\n", fixture(file)));
        assert_eq!((code, stdout.as_str()), (2, ""), "{file}");
    }
}

#[test]
fn malformed_yaml_is_located() {
    let dir = std::env::temp_dir().join(format!("canaryc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cases: [(&str, &str); 6] = [
        ("- name: a\n  expect: v1\n- name \"b\"\n  expect: v1\n", "4:9: error: invalid YAML: mapping values are not allowed in this context"),
        ("name: a\nexpect: v1\n", "1:5: error: a test file is a list of cases (`- name: …`)"),
        ("- name: a\n  expect: v1\n  expect: v2\n", "3:3: error: `expect` is given twice (first on line 2)"),
        ("- expect: v1\n", "1:3: error: [0]: missing field `name`"),
        ("- name: a\n  expect: v1\n  rule: first\n", "3:3: error: [0].rule: invalid value: string \"first\", expected the deciding rule's line number, or `default`"),
        ("", "1:1: error: the test file has no cases"),
    ];
    for (i, (yaml, message)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.yaml"));
        std::fs::write(&file, yaml).expect("write");
        let name = file.display().to_string();
        let (code, stdout, stderr) = canaryc_test(&["examples/s1-all-v1.canary", &name]);
        assert_eq!(stderr, format!("{name}:{message}\n"), "{yaml:?}");
        assert_eq!((code, stdout.as_str()), (2, ""));
    }
    let missing = Path::new("no/such/file.yaml");
    let (code, _, stderr) = canaryc_test(&["examples/s1-all-v1.canary", &missing.display().to_string()]);
    assert!(stderr.starts_with("no/such/file.yaml:1:1: error: cannot read:"), "{stderr}");
    assert_eq!(code, 2);
}

#[test]
fn a_policy_that_does_not_compile_exits_1_with_its_diagnostics() {
    let dir = std::env::temp_dir().join(format!("canaryc-test-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let policy = dir.join("bad.canary");
    std::fs::write(&policy, "android => v2\n").expect("write");
    let (code, stdout, stderr) = canaryc_test(&[&policy.display().to_string(), "examples/s1-all-v1.tests.yaml"]);
    assert!(stderr.contains("bad.canary:1:9: error: expected `->` or `:`"), "{stderr}");
    assert_eq!((code, stdout.as_str()), (1, ""));
}
