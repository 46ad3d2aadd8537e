//! Policy text → `compile`: a diagnostic, never a panic, and whatever compiles loads everywhere.

use canary_compiler::Diagnostic;
use canary_filter::Filter;

const FILE: &str = "fuzz.canary";

/// Compiles `source`. On failure: at least one diagnostic, the first an error, none an "internal error", each
/// inside the input (on char boundaries, a 1-based line and column that exist) and the first rendered as
/// `FILE:LINE:COL: …`. On success: the config JSON loads in the filter's engine (which decodes it with the
/// evaluator's `Policy::from_json`, so this is the evaluator's verdict too), and the warnings are inside the
/// input as well. Returns the config JSON when it compiled.
pub fn check_policy(source: &str) -> Result<Option<String>, String> {
    match canary_compiler::compile(source, FILE) {
        Ok(compiled) => {
            let json = canary_compiler::config_json(&compiled.config);
            Filter::new(json.as_bytes(), 0).map_err(|e| format!("compiled JSON refused by the filter: {e}"))?;
            check_positions(source, &compiled.warnings)?;
            Ok(Some(json))
        }
        Err(diags) => {
            if diags.is_empty() || !diags[0].is_error() {
                return Err(format!("a failure must start with an error: {diags:?}"));
            }
            if let Some(d) = diags.iter().find(|d| d.message.contains("internal error")) {
                return Err(format!("internal error: {d:?}"));
            }
            check_positions(source, &diags)?;
            Ok(None)
        }
    }
}

/// Every diagnostic points inside `source`, and the first one's rendering starts with its `FILE:LINE:COL`.
/// Only the first is rendered: what the renderer (ariadne) could trip on is a span outside the text or inside
/// a character, which the loop checks for every diagnostic, and rendering them all cost the fuzzer a quarter
/// of its executions (FLEET.md, "Fuzzing").
pub fn check_positions(source: &str, diags: &[Diagnostic]) -> Result<(), String> {
    let lines: Vec<&str> = source.split('\n').collect();
    for d in diags {
        let (start, end) = (d.span.start, d.span.end);
        if start > end || end > source.len() || !source.is_char_boundary(start) || !source.is_char_boundary(end) {
            return Err(format!("span outside the input ({} bytes) or inside a character: {d:?}", source.len()));
        }
        let pos = d.position(source);
        if pos.line < 1 || pos.line > lines.len() {
            return Err(format!("line {} of {}: {d:?}", pos.line, lines.len()));
        }
        if pos.col < 1 || pos.col > lines[pos.line - 1].chars().count() + 1 {
            return Err(format!("column {} on line {}: {d:?}", pos.col, pos.line));
        }
    }
    let text = canary_compiler::render(&diags[..diags.len().min(1)], source, FILE, false);
    if let Some(first) = diags.first() {
        let want = format!("{FILE}:{}: ", first.position(source));
        if !text.starts_with(&want) {
            return Err(format!("rendering does not start with {want:?}: {text}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_compiles_and_loads() {
        let json = check_policy("service frontend { cookie user=tester -> v2; default v1 }").unwrap();
        assert!(json.is_some_and(|j| j.contains("tester")));
    }

    #[test]
    fn an_error_is_a_positioned_diagnostic() {
        assert_eq!(check_policy("service frontend {\n  50% v2, 60% v3\n}"), Ok(None));
        assert_eq!(check_policy("(((\u{2028}"), Ok(None));
    }

    #[test]
    fn a_diagnostic_outside_the_input_is_caught() {
        let diags = canary_compiler::compile("default", FILE).unwrap_err();
        assert!(check_positions("default", &diags).is_ok());
        assert!(check_positions("", &diags).is_err(), "the same span does not fit an empty input");
    }
}
