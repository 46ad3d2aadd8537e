//! canary-compiler — the core: `.canary` policy → the versioned JSON [`Config`] the filter loads
//! ([`compile`], `lower.rs`), and what is computed from a policy without deploying it: `check`'s analysis
//! ([`analysis`]), the user-agent families ([`families`]), `diff` ([`diff`]), `eval --explain` ([`explain`]),
//! request specs and simulation ([`request`]), policy text for printed examples ([`policy_text`]).
//!
//! [`compile`] is the one entry point every consumer (CLI, backends, importer, LSP, tests, playground) uses, so
//! they all accept and reject exactly the same policies with the same messages.
//!
//! Contract: depends on `dsl` and `eval` (and serde, rand) only. It is what the browser playground
//! links as it is — no feature switch — so it may not depend on YAML, clap, manifests, the importer, the
//! language server, the rollout or anything that does I/O.

pub mod analysis;
pub mod diff;
pub mod explain;
pub mod families;
mod lower;
pub mod policy_text;
pub mod request;
pub mod route_settings;

use canary_dsl::ast::Span;
use canary_eval::{Config, Policy};
pub use lower::RuleSpans;

pub use canary_dsl::{render, Diagnostic, Note, Severity};

/// A successfully compiled policy.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub config: Config,
    /// Warnings the language itself can see (e.g. an unused `let`); `canaryc check` adds its analysis.
    pub warnings: Vec<Diagnostic>,
    /// Where each rule is in the source, for backends that refuse a rule.
    pub spans: RuleSpans,
    /// Mirrors, the settings file and rule profiles: route settings, which never reach `config`.
    pub extras: route_settings::RouteExtras,
}

/// Parses, checks and lowers a policy. On failure, every error found (and any warnings), in source
/// order; render them with [`render`] using the same `file` name. Never panics on any input.
pub fn compile(source: &str, file: &str) -> Result<Compiled, Vec<Diagnostic>> {
    let (policy, warnings) = canary_dsl::parse_and_check(source)?;
    let (config, spans) = lower::lower(&policy, source)?;
    // Whatever the checker let through must load in the evaluator: a refusal here is a compiler bug, so
    // debug builds (and the fuzz tests) fail loudly; release builds report it instead of emitting JSON the
    // filter would refuse.
    if let Err(e) = Policy::new(&config) {
        if cfg!(debug_assertions) {
            panic!("{file}: compiled config refused by the evaluator: {e}\n{config:#?}");
        }
        let message = format!("internal error: the compiled config is refused by the evaluator: {e}");
        return Err(vec![Diagnostic::error(Span::default(), message)
            .with_hint("please report this policy to the canary maintainers")]);
    }
    let extras = route_settings::RouteExtras::from_policy(&policy);
    Ok(Compiled { config, warnings, spans, extras })
}

/// The config as `canaryc compile` prints it: pretty JSON with a trailing newline. Field order is fixed
/// by the types, so the same policy always gives the same bytes.
pub fn config_json(config: &Config) -> String {
    let mut json = serde_json::to_string_pretty(config).unwrap_or_default();
    json.push('\n');
    json
}

/// Turns `check`'s findings (located by rule line) into warnings underlining that line, with the example
/// request as a note.
pub fn findings_to_diagnostics(findings: &[analysis::Finding], source: &str) -> Vec<Diagnostic> {
    findings
        .iter()
        .map(|f| {
            let d = Diagnostic::warning(line_span(source, f.line), &f.message).with_label("this rule");
            match &f.example {
                Some(example) => d.with_note(format!("for example: {example}")),
                None => d,
            }
        })
        .collect()
}

/// The text of 1-based `line`, without its indentation, trailing blanks or comment.
fn line_span(source: &str, line: u32) -> Span {
    let mut start = 0;
    for (i, text) in source.split('\n').enumerate() {
        if i + 1 == line as usize {
            let code = text[..comment_start(text)].trim_end();
            let indent = code.len() - code.trim_start().len();
            return Span::new(start + indent, start + code.len());
        }
        start += text.len() + 1;
    }
    Span::new(source.len(), source.len())
}

/// Where a `#` comment starts in a line (a `#` inside a string does not count), or the line's length.
fn comment_start(line: &str) -> usize {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => return i,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_span_skips_indentation_and_comments() {
        let src = "a\n  android -> v2 # why\nheader x = \"#\" -> v2\n";
        assert_eq!(line_span(src, 2), Span::new(4, 17));
        assert_eq!(line_span(src, 3), Span::new(24, 44));
        assert_eq!(line_span(src, 9), Span::new(src.len(), src.len()));
    }
}
