//! Errors and warnings about a policy, and how they are shown.
//!
//! The first line of every rendered diagnostic is `FILE:LINE:COL: error: MESSAGE` (or `warning:`): editors
//! and CI log parsers jump to that position, and scripts grep for it (SCENARIOS.md §3). Below it comes a
//! caret excerpt of the source drawn by ariadne, then `hint:` and `note:` lines.

use std::fmt::Write as _;

use ariadne::{CharSet, Color, Config, IndexType, Label, Report, ReportKind, Source};

use crate::ast::Span;
use crate::position::{floor_char_boundary, line_col, LineCol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Extra context. With a span it is drawn as a secondary label in the excerpt (e.g. "first defined
/// here"); without one it is printed as a `note:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub span: Option<Span>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Where the problem is; the headline's `LINE:COL` is its start.
    pub span: Span,
    /// Short text under the caret; the message is repeated there when absent.
    pub label: Option<String>,
    /// What to do about it, e.g. "did you mean `->`?".
    pub hint: Option<String>,
    pub notes: Vec<Note>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, span, message)
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, span, message)
    }

    fn new(severity: Severity, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity, message: message.into(), span, label: None, hint: None, notes: Vec::new() }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint only when there is one (suggestions are often optional).
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint.or(self.hint);
        self
    }

    pub fn with_note(mut self, message: impl Into<String>) -> Diagnostic {
        self.notes.push(Note { span: None, message: message.into() });
        self
    }

    pub fn with_note_at(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.notes.push(Note { span: Some(span), message: message.into() });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and character column of the start of the span.
    pub fn position(&self, source: &str) -> LineCol {
        line_col(source, self.span.start)
    }

    /// `FILE:LINE:COL: error: MESSAGE`, the first line of the rendered form.
    pub fn headline(&self, source: &str, file: &str) -> String {
        format!("{file}:{}: {}: {}", self.position(source), self.severity.as_str(), self.message)
    }
}

/// Renders diagnostics for a terminal (`color`) or a log file. Each ends with a newline.
pub fn render(diags: &[Diagnostic], source: &str, file: &str, color: bool) -> String {
    let display = displayable(source);
    let mut out = String::new();
    for diag in diags {
        render_one(&mut out, diag, source, &display, file, color);
    }
    out
}

fn render_one(out: &mut String, diag: &Diagnostic, source: &str, display: &str, file: &str, color: bool) {
    if color {
        // Bold, with the severity word coloured as rustc does.
        let code = if diag.severity == Severity::Error { "31" } else { "33" };
        let (position, severity, message) = (diag.position(source), diag.severity.as_str(), &diag.message);
        let _ = write!(out, "\x1b[1m{file}:{position}: \x1b[{code}m{severity}\x1b[0m\x1b[1m: {message}\x1b[0m");
    } else {
        out.push_str(&diag.headline(source, file));
    }
    out.push('\n');
    out.push_str(&excerpt(diag, display, file, color));
    if let Some(hint) = &diag.hint {
        let _ = writeln!(out, "hint: {hint}");
    }
    for note in diag.notes.iter().filter(|n| n.span.is_none()) {
        let _ = writeln!(out, "note: {}", note.message);
    }
}

/// The caret excerpt, without ariadne's own header line (our headline replaces it).
fn excerpt(diag: &Diagnostic, display: &str, file: &str, color: bool) -> String {
    let range = |span: Span| floor_char_boundary(display, span.start)..floor_char_boundary(display, span.end);
    let kind = match diag.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let primary = if diag.severity == Severity::Error { Color::Red } else { Color::Yellow };
    let config = Config::default().with_color(color).with_char_set(CharSet::Ascii).with_index_type(IndexType::Byte);
    let mut report = Report::build(kind, (file, range(diag.span))).with_config(config).with_label(
        Label::new((file, range(diag.span)))
            .with_message(diag.label.as_deref().unwrap_or(&diag.message))
            .with_color(primary)
            .with_priority(1),
    );
    for note in &diag.notes {
        if let Some(span) = note.span {
            report.add_label(Label::new((file, range(span))).with_message(&note.message).with_color(Color::Blue));
        }
    }
    let mut buf = Vec::new();
    if report.finish().write((file, Source::from(display)), &mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    // ariadne starts with its own "Error: …" line; drop it.
    let body = text.split_once('\n').map_or("", |(_, body)| body);
    body.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// The source as ariadne should see it: ariadne also breaks lines at `\r`, form feeds and Unicode line
/// separators, which the language does not, so those become spaces of the same byte length and the
/// excerpt's line numbers agree with the headline's.
fn displayable(source: &str) -> String {
    source
        .char_indices()
        .map(|(i, c)| match c {
            '\r' if source[i + 1..].starts_with('\n') => "\r".to_string(),
            '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => " ".repeat(c.len_utf8()),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_file_line_col_severity_message() {
        let src = "service a {\n  android => v2\n}\n";
        let d = Diagnostic::error(Span::new(22, 24), "expected `->`").with_hint("did you mean `->`?");
        let text = render(&[d], src, "p.canary", false);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("p.canary:2:11: error: expected `->`"));
        assert!(text.contains("  android => v2"), "{text}");
        assert!(text.contains('^'), "{text}");
        assert!(text.ends_with("hint: did you mean `->`?\n"), "{text}");
    }

    #[test]
    fn colour_keeps_the_headline_text() {
        let d = Diagnostic::warning(Span::new(0, 1), "w");
        let text = render(&[d], "x", "f", true);
        assert!(text.starts_with("\x1b[1mf:1:1: \x1b[33mwarning\x1b[0m\x1b[1m: w"), "{text:?}");
    }

    #[test]
    fn excerpt_lines_agree_with_headline_despite_odd_separators() {
        let src = "# a\u{2028}b\r\nandroid => v2";
        let d = Diagnostic::error(Span::new(src.len() - 5, src.len() - 3), "m");
        let text = render(&[d], src, "f", false);
        assert!(text.starts_with("f:2:9: error: m\n"), "{text}");
        assert!(text.contains(" 2 | android => v2"), "{text}");
    }
}
