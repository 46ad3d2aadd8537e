//! Compiler diagnostics as LSP diagnostics. An editor shows one message per squiggle, so the hint and the
//! notes (`check`'s "for example: --cookie 'user=tester'" request among them) go into the message; a
//! note that points somewhere (e.g. "first defined here") also becomes related information there.

use lsp_types::{DiagnosticRelatedInformation, DiagnosticSeverity, Location, Uri};

use super::position::Lines;
use canary_compiler::{Diagnostic, Severity};

pub fn to_lsp(diagnostics: &[Diagnostic], text: &str, lines: &Lines, uri: &Uri) -> Vec<lsp_types::Diagnostic> {
    diagnostics.iter().map(|d| one(d, text, lines, uri)).collect()
}

fn one(d: &Diagnostic, text: &str, lines: &Lines, uri: &Uri) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    if let Some(hint) = &d.hint {
        message.push_str(&format!("\nhint: {hint}"));
    }
    let mut related = Vec::new();
    for note in &d.notes {
        match note.span {
            None => message.push_str(&format!("\nnote: {}", note.message)),
            Some(span) => related.push(DiagnosticRelatedInformation {
                location: Location::new(uri.clone(), lines.range(text, span)),
                message: note.message.clone(),
            }),
        }
    }
    lsp_types::Diagnostic {
        range: lines.range(text, d.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        source: Some("canaryc".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::document::Document;
    use lsp_types::Position;

    fn diagnostics(text: &str) -> Vec<lsp_types::Diagnostic> {
        let doc = Document::new(text.into());
        to_lsp(&doc.diagnostics, &doc.text, &doc.lines, &Uri::from_str("file:///p.canary").unwrap())
    }

    #[test]
    fn error_range_counts_utf16_units() {
        // `é` and `🚀` before the error: 2 + 4 bytes, 1 + 2 UTF-16 units.
        let d = diagnostics("# é🚀\nheader x = \"é🚀\" -> \n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].severity, Some(DiagnosticSeverity::ERROR));
        assert_eq!(d[0].range.start, Position::new(1, 20), "{}", d[0].message);
    }

    #[test]
    fn check_warnings_carry_the_example_request() {
        let d = diagnostics("cookie user=tester -> v2\ncookie user=tester -> v3\ndefault v1\n");
        let shadowed = d.iter().find(|d| d.message.contains("shadowed")).expect("a shadowed-rule warning");
        assert_eq!(shadowed.severity, Some(DiagnosticSeverity::WARNING));
        assert_eq!(shadowed.range.start, Position::new(1, 0));
        assert_eq!(shadowed.range.end, Position::new(1, 24));
        assert!(shadowed.message.contains("note: for example: --cookie 'user=tester'"), "{}", shadowed.message);
    }

    #[test]
    fn notes_with_a_place_become_related_information() {
        let d = diagnostics("let a = android\nlet a = ios\na -> v2\n");
        let dup = d.iter().find(|d| d.related_information.is_some()).expect("a note with a span");
        let related = &dup.related_information.as_ref().unwrap()[0];
        assert_eq!(related.location.range.start, Position::new(0, 4), "{related:?}");
    }
}
