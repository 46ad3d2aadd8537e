//! A `~` pattern as the RE2 full match Envoy runs for it (`safe_regex`; Istio's `regex`, which istiod writes as
//! `safe_regex`) — exactly, or refused with the reason.
//!
//! canary's `~` searches the whole value, byte by byte (`canary_eval::parse_regex`: Unicode off, ASCII classes);
//! Envoy matches the whole value with RE2, also byte by byte (`.` and `[^a]` match one byte, `\xff` is the byte
//! 0xFF — checked in Envoy 1.40 and re-checked by `tests/tests/envoy_native_regex.rs`). So a search for P is the
//! full match `(?s:.*)(?:P′)(?s:.*)`, where P′ is P's parsed form printed in RE2 syntax with nothing left to
//! interpretation: every literal and class as explicit bytes (`(?i)` already folded into classes, so RE2's own
//! folding never runs), every assertion by its RE2 name (`\A`, `\z`, `(?m:^)`, `\b`), repetitions with their
//! greed. Syntax the two engines read differently (`\s`'s `\v`, `[[a]]`, `\<`, `{,2}`) never reaches RE2.
//! Refused: what RE2 lacks (`\<`/`\>`/`\b{start}` word halves, `(?R)` CRLF anchors), a count over RE2's 1000 or
//! nested counts whose product exceeds it (RE2's `kMaxRepeat` and its `RepetitionWalker`), and a program
//! larger than the runtime cap canary's bootstraps set ([`MAX_PROGRAM_SIZE`], from an upper bound on RE2's
//! instruction count).
//!
//! RE2 syntax: github.com/google/re2/wiki/Syntax; Envoy's program-size check: `source/common/common/regex.cc`
//! (`re2.max_program_size.error_level`, default 100).

use std::fmt::Write as _;

use canary_eval::hir::{Class, Hir, HirKind, Look};

/// The largest RE2 program a lowered pattern may have: `canaryc manifest` bootstraps set
/// `re2.max_program_size.error_level` to this whenever a native route uses a regex (Envoy's default is 100,
/// which `.*(?:Chrome/1[0-9]{2}).*` alone nearly fills); Istio's bootstrap sets a higher cap.
pub const MAX_PROGRAM_SIZE: usize = 1000;

/// RE2's largest repetition count (`kMaxRepeat`), also the bound on nested counts multiplied together.
const MAX_REPEAT: u32 = 1000;

/// The RE2 full-match regex that decides `~ pattern` as the evaluator does, or why there is none.
pub fn full_match(pattern: &str) -> Result<String, String> {
    let hir = canary_eval::parse_regex(pattern).map_err(|e| format!("invalid regex: {e}"))?;
    let mut body = String::new();
    print(&hir, &mut body, MAX_REPEAT)?;
    // RE2's own additions: the fail and match instructions, the unanchored `.*?` prefix, the two `(?s:.*)`.
    let size = program_size(&hir) + 2 + 3 + 2 * 3;
    if size > MAX_PROGRAM_SIZE {
        return Err(format!(
            "its RE2 program would take up to {size} instructions, more than the {MAX_PROGRAM_SIZE} Envoy is \
             configured to accept (`re2.max_program_size.error_level`)"
        ));
    }
    Ok(format!("(?s:.*)(?:{body})(?s:.*)"))
}

/// Prints `hir` in RE2 syntax. `budget` is what is left of RE2's repetition bound after the enclosing counts.
fn print(hir: &Hir, out: &mut String, budget: u32) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty => out.push_str("(?:)"),
        HirKind::Literal(lit) => lit.0.iter().for_each(|&b| byte(out, b)),
        HirKind::Class(Class::Bytes(class)) => {
            let ranges: Vec<(u8, u8)> = class.ranges().iter().map(|r| (r.start(), r.end())).collect();
            print_class(out, &ranges);
        }
        HirKind::Class(Class::Unicode(class)) => {
            // Unicode mode is off, so the parser only builds byte classes; an ASCII one is the same class.
            let mut ranges = Vec::new();
            for r in class.ranges() {
                let (Ok(start), Ok(end)) = (u8::try_from(u32::from(r.start())), u8::try_from(u32::from(r.end())))
                else {
                    return Err("a Unicode class has no byte form".into());
                };
                if end > 0x7f {
                    return Err("a Unicode class has no byte form".into());
                }
                ranges.push((start, end));
            }
            print_class(out, &ranges);
        }
        HirKind::Look(look) => out.push_str(look_re2(*look)?),
        HirKind::Repetition(rep) => {
            let count = rep.max.unwrap_or(rep.min);
            if rep.min > MAX_REPEAT || rep.max.is_some_and(|m| m > MAX_REPEAT) {
                return Err(format!("a repetition count over {MAX_REPEAT}, RE2's limit"));
            }
            // RE2's RepetitionWalker divides 1000 by each nested count and refuses the pattern at 0.
            let inner = if count > 1 { budget / count } else { budget };
            if inner == 0 {
                return Err(format!("nested repetition counts that multiply past {MAX_REPEAT}, RE2's limit"));
            }
            out.push_str("(?:");
            print(&rep.sub, out, inner)?;
            out.push(')');
            match (rep.min, rep.max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (min, None) => {
                    let _ = write!(out, "{{{min},}}");
                }
                (min, Some(max)) if min == max => {
                    let _ = write!(out, "{{{min}}}");
                }
                (min, Some(max)) => {
                    let _ = write!(out, "{{{min},{max}}}");
                }
            }
            if !rep.greedy {
                out.push('?');
            }
        }
        HirKind::Capture(cap) => {
            out.push_str("(?:");
            print(&cap.sub, out, budget)?;
            out.push(')');
        }
        HirKind::Concat(parts) => {
            for part in parts {
                print(part, out, budget)?;
            }
        }
        HirKind::Alternation(alternatives) => {
            out.push_str("(?:");
            for (i, alternative) in alternatives.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                print(alternative, out, budget)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

fn look_re2(look: Look) -> Result<&'static str, String> {
    Ok(match look {
        Look::Start => "\\A",
        Look::End => "\\z",
        Look::StartLF => "(?m:^)",
        Look::EndLF => "(?m:$)",
        Look::WordAscii => "\\b",
        Look::WordAsciiNegate => "\\B",
        Look::StartCRLF | Look::EndCRLF => return Err("RE2 has no CRLF-aware `^`/`$` (the `R` flag)".into()),
        _ => return Err("RE2 has no word-start or word-end assertion (`\\<`, `\\>`, `\\b{start}`, …)".into()),
    })
}

/// One byte as RE2 (and Go's `regexp`, which Istio validates with) reads it in any context, inside a class or
/// out: letters and digits as themselves, punctuation escaped (`\/`: an escaped non-word ASCII character is
/// itself in both), every other byte as `\xHH`, so nothing is read as syntax and non-ASCII bytes stay bytes.
fn byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(char::from(b));
    } else if b.is_ascii_punctuation() {
        out.push('\\');
        out.push(char::from(b));
    } else {
        let _ = write!(out, "\\x{b:02x}");
    }
}

fn print_class(out: &mut String, ranges: &[(u8, u8)]) {
    if ranges.is_empty() {
        // Matches no byte (e.g. `[^\x00-\xff]`): RE2 accepts the same empty class.
        out.push_str("[^\\x00-\\xff]");
        return;
    }
    out.push('[');
    for &(start, end) in ranges {
        byte(out, start);
        if end != start {
            out.push('-');
            byte(out, end);
        }
    }
    out.push(']');
}

/// An upper bound on the instructions RE2 compiles `hir` to (`re2/compile.cc`: one per byte range or empty-width
/// assertion, one `Alt` per choice; `x{n,m}` is simplified to n copies of x and m−n nested optional ones; a
/// nullable `x*` gets two `Alt`s).
fn program_size(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty => 1,
        HirKind::Literal(lit) => lit.0.len(),
        HirKind::Class(Class::Bytes(class)) => 2 * class.ranges().len().max(1),
        HirKind::Class(Class::Unicode(class)) => 2 * class.ranges().len().max(1),
        HirKind::Look(_) => 1,
        HirKind::Repetition(rep) => {
            let sub = program_size(&rep.sub);
            let copies = rep.max.unwrap_or(rep.min).max(1) as usize;
            copies.saturating_mul(sub + 2).saturating_add(sub + 2)
        }
        HirKind::Capture(cap) => program_size(&cap.sub) + 2,
        HirKind::Concat(parts) => parts.iter().map(program_size).fold(0, usize::saturating_add),
        HirKind::Alternation(alternatives) => {
            alternatives.iter().map(|a| program_size(a) + 1).fold(0, usize::saturating_add)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_print_as_explicit_bytes() {
        assert_eq!(full_match("Chrome/1[0-9]{2}").unwrap(), r"(?s:.*)(?:Chrome\/1(?:[0-9]){2})(?s:.*)");
        assert_eq!(full_match("^a|b$").unwrap(), r"(?s:.*)(?:(?:\Aa|b\z))(?s:.*)");
        assert_eq!(full_match("(?i)k.").unwrap(), r"(?s:.*)(?:[Kk][\x00-\x09\x0b-\xff])(?s:.*)");
        assert_eq!(full_match(r"\s").unwrap(), r"(?s:.*)(?:[\x09-\x0d\x20])(?s:.*)", "`\\v` spelled out");
        assert_eq!(full_match(r"a+?\bé").unwrap(), r"(?s:.*)(?:(?:a)+?\b\xc3\xa9)(?s:.*)");
    }

    #[test]
    fn what_re2_cannot_say_is_refused() {
        assert!(full_match(r"\<a").unwrap_err().contains("word-start"));
        assert!(full_match("(?mR)^a").unwrap_err().contains("CRLF"));
        assert!(full_match("a{1001}").unwrap_err().contains("over 1000"));
        assert!(full_match("(?:a{20}){60}").unwrap_err().contains("multiply"));
        assert!(full_match("[a-z]{400}").unwrap_err().contains("instructions"));
        assert!(full_match("(").unwrap_err().contains("invalid regex"));
    }
}
