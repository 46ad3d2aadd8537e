//! A pass over the raw text before the grammar sees it. It does the three things a PEG grammar does badly:
//!
//! * **Delimiters.** An unclosed `{` or a stray `}` makes a PEG parser fail somewhere far away; matching
//!   brackets first lets us point at the bracket itself (as rustc does), with the opening brace named.
//! * **Unterminated strings**, reported at the opening quote rather than wherever the parser gave up.
//! * **Implicit line joining.** Statements end at a newline, but a long condition may be wrapped inside
//!   `( … )` or `[ … ]`. Like Python's tokenizer, we turn newlines (and comments) inside brackets into
//!   spaces. Replacement keeps every byte offset, so spans computed on the result are valid in the source.
//!
//! It also bounds bracket nesting, so that no later recursive pass can exhaust the stack.

use crate::ast::Span;
use crate::diagnostic::Diagnostic;

/// Deeper nesting than this is rejected; real policies use two or three levels.
pub const MAX_NESTING: usize = 32;

/// Returns the text the grammar should parse (same length as `source`), or the lexical errors.
pub fn prescan(source: &str) -> Result<String, Vec<Diagnostic>> {
    let mut out = source.as_bytes().to_vec();
    let mut errors = Vec::new();
    let mut open: Vec<(u8, usize)> = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let in_brackets = open.last().is_some_and(|(b, _)| *b != b'{');
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i);
                if bytes.get(end) != Some(&b'"') {
                    errors.push(
                        Diagnostic::error(Span::new(i, end), "unterminated string")
                            .with_label("this string has no closing `\"`")
                            .with_hint("strings end on the line they start; write `\\\"` for a quote inside one"),
                    );
                }
                i = end + 1;
                continue;
            }
            b'#' => {
                let end = line_end(bytes, i);
                if in_brackets {
                    out[i..end].fill(b' ');
                }
                i = end;
                continue;
            }
            b'\n' | b'\r' if in_brackets => out[i] = b' ',
            b @ (b'(' | b'[' | b'{') => {
                if b == b'{' {
                    if let Some(&(inner, at)) = open.last().filter(|(o, _)| *o != b'{') {
                        return Err(vec![unclosed(inner, at).with_note_at(Span::new(i, i + 1), "a block starts here")]);
                    }
                }
                open.push((b, i));
                if open.len() > MAX_NESTING {
                    return Err(vec![Diagnostic::error(Span::new(i, i + 1), "brackets nest too deeply")
                        .with_hint(format!("at most {MAX_NESTING} levels are allowed; name parts with `let`"))]);
                }
            }
            b @ (b')' | b']' | b'}') => match open.pop() {
                Some((o, _)) if closer(o) == b => {}
                Some((o, at)) => {
                    let found = Span::new(i, i + 1);
                    let note = format!("`{}` found here instead", b as char);
                    return Err(vec![unclosed(o, at).with_note_at(found, note)]);
                }
                None => {
                    let hint = format!("there is no `{}` before it for it to close", opener(b) as char);
                    return Err(vec![Diagnostic::error(Span::new(i, i + 1), format!("unexpected `{}`", b as char))
                        .with_label("unmatched")
                        .with_hint(hint)]);
                }
            },
            _ => {}
        }
        i += 1;
    }
    if let Some(&(o, at)) = open.last() {
        return Err(vec![unclosed(o, at)]);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Only ASCII bytes were replaced (by ASCII spaces), so this cannot fail; fall back to the source anyway.
    Ok(String::from_utf8(out).unwrap_or_else(|_| source.to_string()))
}

fn unclosed(open: u8, at: usize) -> Diagnostic {
    let (o, c) = (open as char, closer(open) as char);
    let hint = match open {
        b'{' => "add a `}` after the service's last rule".to_string(),
        _ => format!("add the missing `{c}`"),
    };
    Diagnostic::error(Span::new(at, at + 1), format!("unclosed `{o}`"))
        .with_label(format!("this `{o}` has no matching `{c}`"))
        .with_hint(hint)
}

fn closer(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

fn opener(close: u8) -> u8 {
    match close {
        b')' => b'(',
        b']' => b'[',
        _ => b'{',
    }
}

/// Index of the closing quote of the string opening at `start`, or of the line end / input end if none.
/// A backslash escapes the next character, except a line break (strings never span lines).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\n' | b'\r' => return i,
            b'\\' if !matches!(bytes.get(i + 1), Some(b'\n' | b'\r') | None) => i += 2,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn line_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..].iter().position(|b| matches!(b, b'\n' | b'\r')).map_or(bytes.len(), |n| start + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(src: &str) -> (Span, String) {
        let errs = prescan(src).expect_err("an error");
        (errs[0].span, errs[0].message.clone())
    }

    #[test]
    fn joins_lines_inside_brackets_only_and_keeps_offsets() {
        let src = "(android # phone\n or ios) -> v2\nheader x in [\"a\",\n\"b\"] -> v2\n";
        let out = prescan(src).expect("balanced");
        assert_eq!(out.len(), src.len());
        let blanked = format!("(android {} or ios) -> v2\nheader x in [\"a\", \"b\"] -> v2\n", " ".repeat(8));
        assert_eq!(out, blanked);
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        assert!(prescan("header x = \"(\" -> v2 # )\n").is_ok());
    }

    #[test]
    fn reports_delimiters_at_the_bracket() {
        assert_eq!(first_error("service a {\n  default v1\n"), (Span::new(10, 11), "unclosed `{`".into()));
        assert_eq!(first_error("default v1\n}\n"), (Span::new(11, 12), "unexpected `}`".into()));
        assert_eq!(first_error("service a { (android }"), (Span::new(12, 13), "unclosed `(`".into()));
        assert_eq!(first_error("(android\nservice a {"), (Span::new(0, 1), "unclosed `(`".into()));
    }

    #[test]
    fn reports_unterminated_strings_at_the_quote() {
        assert_eq!(first_error("header x = \"abc\n"), (Span::new(11, 15), "unterminated string".into()));
        assert_eq!(first_error("header x = \"a\\\"\n"), (Span::new(11, 15), "unterminated string".into()));
        assert!(prescan("header x = \"a\\\\\"").is_ok());
    }

    #[test]
    fn bounds_nesting() {
        let deep = "(".repeat(MAX_NESTING + 1);
        assert_eq!(first_error(&deep).1, "brackets nest too deeply");
    }
}
