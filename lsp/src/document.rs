//! One open policy and everything the features need from it, recomputed on every change (policies are
//! small: compiling one takes well under a millisecond, so full-document sync needs no incremental
//! machinery).
//!
//! Every result comes from the compiler that `canaryc` runs: the diagnostics are [`canary_compiler::compile`]'s
//! errors, or its warnings plus `check`'s ([`canary_compiler::analysis`]), so the editor and `canaryc check` never
//! disagree about a policy.

use canary_dsl::ast;
use canary_eval::Policy;

use super::position::Lines;
use canary_compiler::{analysis, Compiled, Diagnostic};

pub struct Document {
    pub text: String,
    pub lines: Lines,
    /// The syntax tree when the text parses, even if the checker refuses it (navigation still works).
    pub policy: Option<ast::Policy>,
    /// The compiled policy and its evaluator, when the text compiles.
    pub compiled: Option<(Compiled, Policy)>,
    /// Errors, or warnings when there is none; in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The tree of the last version that parsed, for completion while the current one does not (it
    /// rarely does mid-edit: `cookie user=x -> ` is incomplete). Its spans refer to that older text, so only
    /// its names are used.
    pub last_parsed: Option<ast::Policy>,
}

impl Document {
    pub fn new(text: String) -> Document {
        Document::analyse(text, None)
    }

    /// The document after a full-text change.
    pub fn update(self, text: String) -> Document {
        let last = self.policy.or(self.last_parsed);
        Document::analyse(text, last)
    }

    fn analyse(text: String, last_parsed: Option<ast::Policy>) -> Document {
        let lines = Lines::new(&text);
        let policy = canary_dsl::parse(&text).ok();
        let (compiled, diagnostics) = match canary_compiler::compile(&text, "<editor>") {
            Ok(compiled) => {
                let findings = analysis::analyse(&compiled.config, None);
                let mut diagnostics = compiled.warnings.clone();
                diagnostics.extend(canary_compiler::findings_to_diagnostics(&findings, &text));
                diagnostics.sort_by_key(|d| d.span.start);
                let evaluator = Policy::new(&compiled.config).ok();
                (evaluator.map(|p| (compiled, p)), diagnostics)
            }
            Err(errors) => (None, errors),
        };
        let last_parsed = if policy.is_some() { None } else { last_parsed };
        Document { text, lines, policy, compiled, diagnostics, last_parsed }
    }

    /// The tree to take names from: the current one, else the last that parsed.
    pub fn names_source(&self) -> Option<&ast::Policy> {
        self.policy.as_ref().or(self.last_parsed.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_or_warnings_from_the_compiler_and_check() {
        let doc = Document::new("cookie user=tester -> \n".into());
        assert!(doc.diagnostics.iter().all(Diagnostic::is_error) && !doc.diagnostics.is_empty());
        assert!(doc.policy.is_none() && doc.compiled.is_none());

        let doc = Document::new("default v1\n50% v1\nlet x = android\n".into());
        let messages: Vec<&str> = doc.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(messages.iter().any(|m| m.contains("can never change a decision")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("`let x` is never used")), "{messages:?}");
        assert!(doc.compiled.is_some());
    }

    #[test]
    fn keeps_the_last_parsed_tree_while_the_text_is_broken() {
        let doc = Document::new("let beta = cookie b=1\nbeta -> v2\n".into());
        let doc = doc.update("let beta = cookie b=1\nbeta -> v2\nandroid -> \n".into());
        assert!(doc.policy.is_none());
        assert!(doc.names_source().is_some());
        let doc = doc.update("default v1\n".into());
        assert!(doc.last_parsed.is_none() && doc.policy.is_some());
    }
}
