//! The published JSON Schema of the compiled config (`schema/config.v1.json`), derived from the IR types so
//! it cannot drift from what the evaluator accepts.

/// The schema as pretty JSON with a trailing newline, exactly as committed.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(crate::Config);
    let mut json = serde_json::to_string_pretty(&schema).unwrap_or_default();
    json.push('\n');
    json
}
