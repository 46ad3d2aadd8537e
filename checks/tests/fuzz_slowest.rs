//! `make fuzz-slowest` on the committed corpus: every input timed, the slowest listed, bad arguments refused.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fuzz-slowest"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn lists_the_slowest_inputs_of_a_corpus() {
    let inputs = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus/policies")).unwrap().count();
    let (code, out, err) = run(&["parse_compile", "tests/corpus/policies", "2"]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with(&format!("parse_compile: {inputs} inputs, mean ")), "{out}");
    let listed: Vec<&str> = lines.collect();
    assert_eq!(listed.len(), 2, "{out}");
    assert!(listed.iter().all(|l| l.contains(" µs ") && l.contains("tests/corpus/policies/")), "{out}");
}

#[test]
fn refuses_an_unknown_target_or_directory() {
    let (code, _, err) = run(&["no_such_target", "tests/corpus/policies"]);
    assert_eq!(code, 2);
    assert!(err.contains("no oracle for target"), "{err}");
    let (code, _, err) = run(&["config_json", "no/such/dir"]);
    assert_eq!(code, 2);
    assert!(err.contains("make fuzz"), "{err}");
}
