//! Every example policy compiles, and its JSON is pinned in `examples/golden/`. Run with
//! `UPDATE_GOLDEN=1` to rewrite the pins after an intended change (and review the diff).

use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "canary"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "expected S1–S6, the one-liner and the weather example, found {files:?}");
    files
}

fn compile(path: &Path) -> canary_eval::Config {
    let source = std::fs::read_to_string(path).expect("readable example");
    match canary_compiler::compile(&source, &path.display().to_string()) {
        Ok(c) => c.config,
        Err(diags) => panic!("{}", canary_compiler::render(&diags, &source, &path.display().to_string(), false)),
    }
}

#[test]
fn examples_match_their_golden_json() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for path in examples() {
        let json = canary_compiler::config_json(&compile(&path));
        let golden =
            path.parent().expect("has dir").join("golden").join(path.file_stem().expect("stem")).with_extension("json");
        if update {
            std::fs::create_dir_all(golden.parent().expect("dir")).expect("mkdir golden");
            std::fs::write(&golden, &json).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create)", golden.display()));
        assert_eq!(json, want, "{} no longer compiles to {}", path.display(), golden.display());
    }
}

/// What `canaryc compile` prints reads back as the same config: services are written with their rule set
/// flattened and read through `ServiceFields` (see `canary_eval::config`), so the two must stay in step.
#[test]
fn golden_json_reads_back_as_the_compiled_config() {
    for path in examples() {
        let config = compile(&path);
        let json = canary_compiler::config_json(&config);
        let read: canary_eval::Config =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}\n{json}", path.display()));
        assert_eq!(read, config, "{}", path.display());
        let pretty = serde_json::to_string_pretty(&config).expect("config serializes");
        assert_eq!(serde_json::from_str::<canary_eval::Config>(&pretty).expect("pretty JSON reads"), config);
    }
}

#[test]
fn compiled_examples_validate_against_the_published_schema() {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/config.v1.json");
    let published = std::fs::read_to_string(&schema_path).expect("schema/config.v1.json exists");
    assert!(
        published == canary_eval::schema_json(),
        "schema/config.v1.json is stale: run `canaryc schema > schema/config.v1.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&published).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for path in examples() {
        let value = serde_json::to_value(compile(&path)).expect("config serializes");
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
    // And the schema is not vacuous: it rejects what the evaluator rejects structurally.
    for bad in [
        serde_json::json!({"version": 1, "services": [{"name": "a", "rules": [{"line": 1, "then": {"teleport": "v2"}}]}]}),
        serde_json::json!({"version": "1"}),
        serde_json::json!({"version": 1, "extra": true}),
    ] {
        assert!(!validator.is_valid(&bad), "schema accepted {bad}");
    }
}
