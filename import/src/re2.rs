//! RE2 patterns, as Envoy runs them for Istio's `regex:` matches, restated in canary's regex dialect
//! (`canary_eval::parse_regex`: regex-syntax, Unicode off, bytes) — exactly, or refused with the reason.
//!
//! What has to be true for a restated pattern to decide like Envoy (each point checked in real Envoy 1.40):
//! * Envoy calls RE2 in **Latin-1** mode: `.`, `[^a]`, `\D`, … match one *byte*, a non-ASCII literal in the
//!   pattern is its UTF-8 bytes, and `(?i)` folds only within Latin-1 (`(?i)k` does not match the Kelvin
//!   sign). canary matches bytes too now; this translation dates from when it matched *characters*, and keeps
//!   that era's rule (each item that can match a non-ASCII byte matches *all* of them and stands directly
//!   under `*` or `+`), which is exact under both: `.` alone, `.{3}`, `.?`, non-ASCII inside classes, `\x{e9}`
//!   and non-ASCII letters under `(?i)` are still refused (widening this is its own change).
//! * Both engines parse the same text differently in places: inside a class RE2 reads `[`, `&&`, `~~` as
//!   literals (regex-lite: nesting and set operations), `\<` is a literal `<` in RE2 (a word start in
//!   regex-lite), `\s` excludes `\v` in RE2, `{,2}` is literal text in RE2. The translation re-spells every
//!   token, so canary's parser only ever sees unambiguous syntax (regex-syntax reads these as regex-lite did).
//! * Envoy matches the *whole* value (`FullMatch`); canary's `~` searches. The caller anchors: `^(?:R)$`.
//! * In `Scope::Path` (`uri: {regex}`), Envoy matches the path *without* its query string and fragment; `?`
//!   and `#` are taken out of every item that could match them, so `^(?:R)(?:[?#]|$)` on the full `:path`
//!   decides the same (`$` and `\z` inside R are refused: they would have to mean "before the query").
//!
//! The RE2 syntax is its documented one (github.com/google/re2/wiki/Syntax); what regex-lite cannot say
//! (`\pL`, `\C`, back-references, lookaround) is refused.

use std::fmt::Write;

/// Where a pattern is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A header value (or `:method`, `:authority`, …): the whole value.
    Value,
    /// `uri: {regex}`: the path without its query string or fragment.
    Path,
}

/// Patterns Istio users write for plain string tests, recognised so they become plain canary tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idiom {
    /// `.*`: any value.
    Any,
    /// `a|b`: the value is one of these.
    Exact(Vec<String>),
    /// `.*(a|b).*`: one of these occurs in the value.
    Contains(Vec<String>),
    /// `(a|b).*`: the value starts with one of these.
    Prefix(Vec<String>),
}

/// Longest pattern Istio accepts (its validation approximates RE2's program size by length).
pub const ISTIO_MAX_LEN: usize = 1024;
/// Largest repetition count RE2 accepts.
const MAX_REPEAT: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Flags {
    fold: bool,
    multi_line: bool,
    dot_nl: bool,
    ungreedy: bool,
}

impl Flags {
    fn letters(self) -> String {
        [(self.fold, 'i'), (self.multi_line, 'm'), (self.dot_nl, 's'), (self.ungreedy, 'U')]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, c)| *c)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A character written as itself (or as an escaped punctuation mark, or inside `\Q…\E`).
    Lit(char),
    /// A character written by its code (`\x41`, `\x{e9}`, `\101`): in Envoy, a byte.
    Code(u32),
    Dot,
    Class(Class),
    /// `\d \D \w \W \s \S`
    Perl(char),
    Assert(Assert),
    Open(Open),
    /// `(?i)`: changes the flags until the enclosing group closes.
    SetFlags(Flags, Flags),
    Close,
    Alt,
    Repeat(Repeat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assert {
    LineStart,
    LineEnd,
    TextStart,
    TextEnd,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    Capture,
    Named(String),
    NonCapture,
    /// `(?i:…)`: flags turned on and off for the group.
    Flags(Flags, Flags),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Repeat {
    min: u32,
    max: Option<u32>,
    lazy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    Lit(char),
    Code(u32),
    Range(char, char),
    Perl(char),
    Posix { name: String, negated: bool },
}

const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "word",
    "xdigit",
];

/// Reads an RE2 pattern into tokens; `Err` for what RE2 itself rejects or canary cannot read.
fn lex(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let tok = match c {
            '\\' => {
                if chars.get(i) == Some(&'Q') {
                    // `\Q…\E`: literal text up to `\E` (or the end).
                    i += 1;
                    while i < chars.len() {
                        if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                            i += 2;
                            break;
                        }
                        toks.push(Tok::Lit(chars[i]));
                        i += 1;
                    }
                    continue;
                }
                escape(&chars, &mut i, false)?
            }
            '[' => Tok::Class(class(&chars, &mut i)?),
            '(' => group(&chars, &mut i)?,
            ')' => Tok::Close,
            '|' => Tok::Alt,
            '.' => Tok::Dot,
            '^' => Tok::Assert(Assert::LineStart),
            '$' => Tok::Assert(Assert::LineEnd),
            '*' | '+' | '?' => {
                let (min, max) = match c {
                    '*' => (0, None),
                    '+' => (1, None),
                    _ => (0, Some(1)),
                };
                Tok::Repeat(Repeat { min, max, lazy: lazy(&chars, &mut i) })
            }
            '{' => match counted(&chars, i) {
                Some((min, max, next)) => {
                    i = next;
                    Tok::Repeat(Repeat { min, max, lazy: lazy(&chars, &mut i) })
                }
                // Not a repetition: RE2 reads `{` as itself.
                None => Tok::Lit('{'),
            },
            c => Tok::Lit(c),
        };
        toks.push(tok);
    }
    Ok(toks)
}

fn lazy(chars: &[char], i: &mut usize) -> bool {
    let lazy = chars.get(*i) == Some(&'?');
    if lazy {
        *i += 1;
    }
    lazy
}

/// `{n}`, `{n,}` or `{n,m}` starting after the `{` at `i`: `(min, max, index after the `}`)`.
fn counted(chars: &[char], i: usize) -> Option<(u32, Option<u32>, usize)> {
    let end = i + chars[i..].iter().position(|&c| c == '}')?;
    let body: String = chars[i..end].iter().collect();
    let number = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok())?;
    let (min, max) = match body.split_once(',') {
        None => {
            let n = number(&body)?;
            (n, Some(n))
        }
        Some((lo, "")) => (number(lo)?, None),
        Some((lo, hi)) => (number(lo)?, Some(number(hi)?)),
    };
    Some((min, max, end + 1))
}

/// An escape after the `\` at `i - 1`. In a class, assertions make no sense and are refused.
fn escape(chars: &[char], i: &mut usize, in_class: bool) -> Result<Tok, String> {
    let Some(&c) = chars.get(*i) else {
        return Err("the pattern ends with a lone `\\`".into());
    };
    *i += 1;
    Ok(match c {
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Tok::Lit(c),
        'a' => Tok::Code(0x07),
        'f' => Tok::Code(0x0c),
        't' => Tok::Code(0x09),
        'n' => Tok::Code(0x0a),
        'r' => Tok::Code(0x0d),
        'v' => Tok::Code(0x0b),
        'd' | 'D' | 'w' | 'W' | 's' | 'S' => Tok::Perl(c),
        'b' if !in_class => Tok::Assert(Assert::WordBoundary),
        'B' if !in_class => Tok::Assert(Assert::NotWordBoundary),
        'A' if !in_class => Tok::Assert(Assert::TextStart),
        'z' if !in_class => Tok::Assert(Assert::TextEnd),
        'x' => Tok::Code(hex(chars, i)?),
        '0'..='7' => {
            // RE2: `\0`, or a digit followed by more octal digits (up to three in all); `\1` alone would be
            // a back-reference.
            let mut digits = vec![c];
            while digits.len() < 3 && chars.get(*i).is_some_and(|d| ('0'..='7').contains(d)) {
                digits.push(chars[*i]);
                *i += 1;
            }
            if c != '0' && digits.len() == 1 {
                return Err(format!("`\\{c}` is a back-reference, which RE2 does not support"));
            }
            Tok::Code(digits.iter().fold(0, |n, d| n * 8 + d.to_digit(8).unwrap_or(0)))
        }
        '8' | '9' => return Err(format!("`\\{c}` is a back-reference, which RE2 does not support")),
        'C' => return Err("`\\C` (any single byte) has no equivalent in canary's regex".into()),
        'p' | 'P' => {
            return Err("Unicode classes (`\\p…`) have no exact equivalent: Envoy's RE2 reads values as Latin-1 \
                        bytes, canary as Unicode characters, and canary's regex has no Unicode classes"
                .into())
        }
        'Q' | 'E' if in_class => return Err("`\\Q…\\E` inside a class is not RE2 syntax".into()),
        c => return Err(format!("`\\{c}` is not an RE2 escape")),
    })
}

fn hex(chars: &[char], i: &mut usize) -> Result<u32, String> {
    let digits: String = if chars.get(*i) == Some(&'{') {
        let end = chars[*i..].iter().position(|&c| c == '}').ok_or("`\\x{` without a closing `}`")? + *i;
        let body = chars[*i + 1..end].iter().collect();
        *i = end + 1;
        body
    } else {
        let body: String = chars.iter().skip(*i).take(2).collect();
        *i += body.chars().count();
        if body.chars().count() < 2 {
            return Err("`\\x` needs two hex digits (or `\\x{…}`)".into());
        }
        body
    };
    let code = u32::from_str_radix(&digits, 16).map_err(|_| format!("`\\x{{{digits}}}` is not a hex code"))?;
    if digits.is_empty() || code > 0x10ffff {
        return Err(format!("`\\x{{{digits}}}` is not a character code"));
    }
    Ok(code)
}

/// A bracket class after the `[` at `i - 1`.
fn class(chars: &[char], i: &mut usize) -> Result<Class, String> {
    let negated = chars.get(*i) == Some(&'^');
    if negated {
        *i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(*i) else {
            return Err("a class `[` without its closing `]`".into());
        };
        if c == ']' && !first {
            *i += 1;
            return Ok(Class { negated, items });
        }
        first = false;
        // `[:alpha:]`, `[:^alpha:]`
        if c == '[' && chars.get(*i + 1) == Some(&':') {
            let rest: String = chars[*i + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                let body = &rest[..end];
                let (neg, name) = match body.strip_prefix('^') {
                    Some(name) => (true, name),
                    None => (false, body),
                };
                if !POSIX.contains(&name) {
                    return Err(format!("`[:{body}:]` is not a POSIX class RE2 knows"));
                }
                items.push(ClassItem::Posix { name: name.to_string(), negated: neg });
                *i += 2 + body.chars().count() + 2;
                continue;
            }
        }
        *i += 1;
        let lo = match c {
            '\\' => match escape(chars, i, true)? {
                Tok::Lit(c) => ClassItem::Lit(c),
                Tok::Code(n) => ClassItem::Code(n),
                Tok::Perl(p) => {
                    items.push(ClassItem::Perl(p));
                    continue;
                }
                _ => return Err("an assertion inside a class".into()),
            },
            c => ClassItem::Lit(c),
        };
        // A range `a-z` (a `-` before the closing `]` is itself).
        if chars.get(*i) == Some(&'-') && chars.get(*i + 1).is_some_and(|&n| n != ']') {
            *i += 1;
            let hi_char = chars[*i];
            *i += 1;
            let hi = match hi_char {
                '\\' => match escape(chars, i, true)? {
                    Tok::Lit(c) => ClassItem::Lit(c),
                    Tok::Code(n) => ClassItem::Code(n),
                    _ => return Err("a class range must end with a single character".into()),
                },
                c => ClassItem::Lit(c),
            };
            let code = |item: &ClassItem| match item {
                ClassItem::Lit(c) => Some(*c as u32),
                ClassItem::Code(n) => Some(*n),
                _ => None,
            };
            let (Some(a), Some(b)) = (code(&lo), code(&hi)) else {
                return Err("a class range must start and end with a single character".into());
            };
            if a > b {
                return Err("a class range runs backwards".into());
            }
            let (Some(a), Some(b)) = (char::from_u32(a), char::from_u32(b)) else {
                return Err("a class range names a code that is not a character".into());
            };
            items.push(ClassItem::Range(a, b));
        } else {
            items.push(lo);
        }
    }
}

/// A group after the `(` at `i - 1`.
fn group(chars: &[char], i: &mut usize) -> Result<Tok, String> {
    if chars.get(*i) != Some(&'?') {
        return Ok(Tok::Open(Open::Capture));
    }
    *i += 1;
    match chars.get(*i) {
        Some(':') => {
            *i += 1;
            Ok(Tok::Open(Open::NonCapture))
        }
        Some('P') if chars.get(*i + 1) == Some(&'<') => {
            *i += 2;
            named(chars, i)
        }
        Some('<') if chars.get(*i + 1).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') => {
            *i += 1;
            named(chars, i)
        }
        _ => {
            let (mut on, mut off, mut negative, mut any) = (Flags::default(), Flags::default(), false, false);
            loop {
                let Some(&c) = chars.get(*i) else {
                    return Err("a `(?` group without its closing `)`".into());
                };
                *i += 1;
                let target = if negative { &mut off } else { &mut on };
                match c {
                    'i' => target.fold = true,
                    'm' => target.multi_line = true,
                    's' => target.dot_nl = true,
                    'U' => target.ungreedy = true,
                    '-' if !negative => {
                        negative = true;
                        any = false;
                        continue;
                    }
                    ')' | ':' if any => {
                        return Ok(if c == ')' { Tok::SetFlags(on, off) } else { Tok::Open(Open::Flags(on, off)) })
                    }
                    _ => {
                        return Err("only `(?:…)`, named groups and the flags `i`, `m`, `s`, `U` are RE2 group syntax \
                             (no lookaround)"
                            .into())
                    }
                }
                any = true;
            }
        }
    }
}

fn named(chars: &[char], i: &mut usize) -> Result<Tok, String> {
    let end = chars[*i..].iter().position(|&c| c == '>').ok_or("a group name without its closing `>`")? + *i;
    let name: String = chars[*i..end].iter().collect();
    *i = end + 1;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a valid group name"));
    }
    Ok(Tok::Open(Open::Named(name)))
}

/// `pattern` as a canary regex that *fully* matches exactly the values (`Scope::Value`) or the paths without
/// query (`Scope::Path`) that RE2 fully matches in Envoy, anchors included: `^(?:…)$`, or
/// `^(?:…)(?:[?#]|$)` for a path.
pub fn full_match(pattern: &str, scope: Scope) -> Result<String, String> {
    precheck(pattern)?;
    let toks = lex(pattern)?;
    // Under a full match a leading `^` and a trailing `$` hold anyway; the anchors added below say it once.
    let mut toks: &[Tok] = &toks;
    if let [Tok::Assert(Assert::LineStart | Assert::TextStart), rest @ ..] = toks {
        toks = rest;
    }
    if let [rest @ .., Tok::Assert(Assert::LineEnd | Assert::TextEnd)] = toks {
        toks = rest;
    }
    let body = translate(toks, scope)?;
    let anchored = match scope {
        Scope::Value => format!("^(?:{body})$"),
        Scope::Path => format!("^(?:{body})(?:[?#]|$)"),
    };
    // Whatever we emit must load in the evaluator: a refusal here is a translation bug, or a pattern whose
    // expansion exceeds the evaluator's size limit (RE2 and Istio allow more).
    canary_eval::compile_regex(&anchored)
        .map_err(|e| format!("canary's regex engine cannot read the translation: {e}"))?;
    Ok(anchored)
}

/// What Istio's own validation refuses, and what no value could ever contain.
fn precheck(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty regex (Istio refuses it)".into());
    }
    if pattern.len() > ISTIO_MAX_LEN {
        return Err(format!("a regex longer than {ISTIO_MAX_LEN} characters (Istio refuses it)"));
    }
    if pattern.contains('\u{fffd}') {
        return Err("U+FFFD in a pattern: canary reads bytes that are not UTF-8 as U+FFFD, Envoy does not".into());
    }
    Ok(())
}

/// The idiom `pattern` is, if any.
pub fn idiom(pattern: &str) -> Option<Idiom> {
    precheck(pattern).ok()?;
    let toks = lex(pattern).ok()?;
    let mut toks: &[Tok] = &toks;
    // Under a full match, a leading `^` and a trailing `$` change nothing.
    if let [Tok::Assert(Assert::LineStart | Assert::TextStart), rest @ ..] = toks {
        toks = rest;
    }
    if let [rest @ .., Tok::Assert(Assert::LineEnd | Assert::TextEnd)] = toks {
        toks = rest;
    }
    let dot_star = |t: &[Tok]| matches!(t, [Tok::Dot, Tok::Repeat(Repeat { min: 0, max: None, .. })]);
    let lead = toks.len() >= 2 && dot_star(&toks[..2]);
    if lead {
        toks = &toks[2..];
    }
    let trail = toks.len() >= 2 && dot_star(&toks[toks.len() - 2..]);
    if trail {
        toks = &toks[..toks.len() - 2];
    }
    if (lead || trail) && toks.is_empty() {
        return Some(Idiom::Any);
    }
    // With `.*` around it, alternatives must be one group: `.*a|b.*` is "ends with a or starts with b".
    let grouped = match toks {
        [Tok::Open(Open::Capture | Open::NonCapture | Open::Named(_)), inner @ .., Tok::Close] => Some(inner),
        _ => None,
    };
    let body = match grouped {
        Some(inner) if !inner.iter().any(|t| matches!(t, Tok::Open(_) | Tok::Close)) => inner,
        _ if lead || trail => {
            if toks.contains(&Tok::Alt) {
                return None;
            }
            toks
        }
        _ => toks,
    };
    let mut alternatives = vec![String::new()];
    for tok in body {
        match tok {
            Tok::Lit(c) => alternatives.last_mut()?.push(*c),
            Tok::Code(n) if *n < 0x80 => alternatives.last_mut()?.push(char::from_u32(*n)?),
            Tok::Alt => alternatives.push(String::new()),
            _ => return None,
        }
    }
    let any_empty = alternatives.iter().any(String::is_empty);
    Some(match (lead, trail) {
        (false, false) => Idiom::Exact(alternatives),
        (true, true) | (false, true) if any_empty => Idiom::Any,
        (true, true) => Idiom::Contains(alternatives),
        (false, true) => Idiom::Prefix(alternatives),
        (true, false) => return None,
    })
}

/// A literal in canary's regex syntax (outside classes).
pub fn escape_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_literal(&mut out, c);
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    match c {
        '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' | '#' | '&' | '-' | '~' => {
            out.push('\\');
            out.push(c);
        }
        c => push_plain(out, c),
    }
}

/// A character that needs no escape as a metacharacter; control characters are spelled out.
fn push_plain(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\x0b' => out.push_str("\\v"),
        '\x0c' => out.push_str("\\f"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{{{:02X}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Re-spells tokens in regex-lite syntax, refusing what would not decide as RE2 in Envoy does.
fn translate(toks: &[Tok], scope: Scope) -> Result<String, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Prev {
        Start,
        Atom,
        Repeat,
        Assert,
    }
    let mut out = String::new();
    let mut flags = Flags::default();
    let mut saved: Vec<Flags> = Vec::new();
    let mut prev = Prev::Start;
    for (i, tok) in toks.iter().enumerate() {
        let mut wide = false;
        match tok {
            Tok::Lit(c) => {
                literal_char(*c, flags, scope)?;
                push_literal(&mut out, *c);
            }
            Tok::Code(n) => {
                let c = code_char(*n)?;
                literal_char(c, flags, scope)?;
                push_literal(&mut out, c);
            }
            Tok::Dot => {
                wide = true;
                out.push_str(match (scope, flags.dot_nl) {
                    (Scope::Value, _) => ".",
                    (Scope::Path, true) => "[^?#]",
                    (Scope::Path, false) => "[^\\n?#]",
                });
            }
            Tok::Class(class) => wide = push_class(&mut out, class, flags, scope)?,
            Tok::Perl(p) => {
                wide = p.is_ascii_uppercase();
                out.push_str(match (p, scope) {
                    ('d', _) => "\\d",
                    ('w', _) => "\\w",
                    // RE2's `\s` leaves out `\v`; regex-lite's includes it.
                    ('s', _) => "[\\t\\n\\f\\r ]",
                    ('D', Scope::Value) => "\\D",
                    ('W', Scope::Value) => "\\W",
                    ('S', Scope::Value) => "[^\\t\\n\\f\\r ]",
                    ('D', Scope::Path) => "[^0-9?#]",
                    ('W', Scope::Path) => "[^0-9A-Za-z_?#]",
                    _ => "[^\\t\\n\\f\\r ?#]",
                });
            }
            Tok::Assert(a) => {
                if scope == Scope::Path && matches!(a, Assert::LineEnd | Assert::TextEnd) {
                    return Err("`$` or `\\z` in a `uri` regex: Envoy ends the path before the query string, \
                                canary's `:path` holds it"
                        .into());
                }
                out.push_str(match a {
                    Assert::LineStart => "^",
                    Assert::LineEnd => "$",
                    Assert::TextStart => "\\A",
                    Assert::TextEnd => "\\z",
                    Assert::WordBoundary => "\\b",
                    Assert::NotWordBoundary => "\\B",
                });
                prev = Prev::Assert;
                continue;
            }
            Tok::Open(open) => {
                saved.push(flags);
                match open {
                    Open::Capture => out.push('('),
                    Open::Named(name) => {
                        let _ = write!(out, "(?P<{name}>");
                    }
                    Open::NonCapture => out.push_str("(?:"),
                    Open::Flags(on, off) => {
                        flags = apply(flags, *on, *off);
                        let _ = write!(out, "(?{}:", flag_text(*on, *off));
                    }
                }
                prev = Prev::Start;
                continue;
            }
            Tok::SetFlags(on, off) => {
                flags = apply(flags, *on, *off);
                let _ = write!(out, "(?{})", flag_text(*on, *off));
                prev = Prev::Start;
                continue;
            }
            Tok::Close => {
                flags = saved.pop().ok_or("a `)` without its `(`")?;
                out.push(')');
            }
            Tok::Alt => {
                out.push('|');
                prev = Prev::Start;
                continue;
            }
            Tok::Repeat(r) => {
                match prev {
                    Prev::Start | Prev::Assert => return Err("a repetition with nothing to repeat".into()),
                    Prev::Repeat => return Err("a repetition of a repetition (RE2 refuses `**`, `+*`, …)".into()),
                    Prev::Atom => {}
                }
                if r.min > MAX_REPEAT || r.max.is_some_and(|m| m > MAX_REPEAT) {
                    return Err(format!("a repetition count over {MAX_REPEAT} (RE2 refuses it)"));
                }
                if r.max.is_some_and(|m| m < r.min) {
                    return Err("a repetition `{n,m}` with m < n".into());
                }
                match (r.min, r.max) {
                    (0, None) => out.push('*'),
                    (1, None) => out.push('+'),
                    (0, Some(1)) => out.push('?'),
                    (n, None) => {
                        let _ = write!(out, "{{{n},}}");
                    }
                    (n, Some(m)) if n == m => {
                        let _ = write!(out, "{{{n}}}");
                    }
                    (n, Some(m)) => {
                        let _ = write!(out, "{{{n},{m}}}");
                    }
                }
                if r.lazy {
                    out.push('?');
                }
                prev = Prev::Repeat;
                continue;
            }
        }
        prev = Prev::Atom;
        if wide {
            let starred = matches!(toks.get(i + 1), Some(Tok::Repeat(Repeat { min: 0 | 1, max: None, .. })));
            if !starred {
                return Err("`.` (or a negated class, `\\D`, `\\W`, `\\S`) outside `.*` / `.+`: Envoy's RE2 matches \
                            one byte there (it reads values as Latin-1), canary one character, so non-ASCII values \
                            would be decided differently"
                    .into());
            }
        }
    }
    if !saved.is_empty() {
        return Err("a `(` without its `)`".into());
    }
    Ok(out)
}

fn apply(flags: Flags, on: Flags, off: Flags) -> Flags {
    Flags {
        fold: (flags.fold || on.fold) && !off.fold,
        multi_line: (flags.multi_line || on.multi_line) && !off.multi_line,
        dot_nl: (flags.dot_nl || on.dot_nl) && !off.dot_nl,
        ungreedy: (flags.ungreedy || on.ungreedy) && !off.ungreedy,
    }
}

fn flag_text(on: Flags, off: Flags) -> String {
    let off = off.letters();
    if off.is_empty() {
        on.letters()
    } else {
        format!("{}-{off}", on.letters())
    }
}

/// A character given by its code: only ASCII means the same thing in both engines.
fn code_char(n: u32) -> Result<char, String> {
    match char::from_u32(n) {
        Some(c) if c.is_ascii() => Ok(c),
        _ => Err(format!(
            "`\\x{{{n:x}}}` is one byte in Envoy (RE2 reads values as Latin-1) but the character U+{n:04X} in canary"
        )),
    }
}

fn literal_char(c: char, flags: Flags, scope: Scope) -> Result<(), String> {
    if flags.fold && !c.is_ascii() {
        return Err(format!(
            "`{c}` under `(?i)`: Envoy's RE2 folds its Latin-1 bytes one by one, canary folds only ASCII letters"
        ));
    }
    if scope == Scope::Path && (c == '?' || c == '#') {
        return Err(format!("a `{c}` in a `uri` regex never matches: Envoy matches the path without its query string"));
    }
    Ok(())
}

/// Writes a bracket class; returns whether it is wide (contains every non-ASCII character).
fn push_class(out: &mut String, class: &Class, flags: Flags, scope: Scope) -> Result<bool, String> {
    let mut body = String::new();
    let mut negated_posix = false;
    for item in &class.items {
        match item {
            ClassItem::Lit(c) => push_class_char(&mut body, *c)?,
            ClassItem::Code(n) => push_class_char(&mut body, code_char(*n)?)?,
            ClassItem::Range(a, b) => {
                push_class_char(&mut body, *a)?;
                body.push('-');
                push_class_char(&mut body, *b)?;
            }
            ClassItem::Perl('d') => body.push_str("\\d"),
            ClassItem::Perl('w') => body.push_str("\\w"),
            ClassItem::Perl('s') => body.push_str("\\t\\n\\f\\r "),
            ClassItem::Perl(p) => {
                return Err(format!("`\\{p}` inside a class: write the class out (e.g. `[^0-9]` for `[\\D]`)"))
            }
            ClassItem::Posix { name, negated } => {
                negated_posix |= *negated;
                let _ = write!(body, "[:{}{name}:]", if *negated { "^" } else { "" });
            }
        }
    }
    let wide = class.negated != negated_posix;
    if scope == Scope::Path {
        if wide && class.negated && !negated_posix {
            body.push_str("?#");
        } else if wide {
            return Err("a negated POSIX class in a `uri` regex".into());
        } else {
            let probe =
                format!("{}^[{}{body}]$", if flags.fold { "(?i)" } else { "" }, if class.negated { "^" } else { "" });
            let re = canary_eval::compile_regex(&probe).map_err(|e| format!("a class canary cannot read: {e}"))?;
            if re.is_match(b"?") || re.is_match(b"#") {
                return Err("a class that matches `?` or `#` in a `uri` regex: Envoy matches the path without its \
                            query string"
                    .into());
            }
        }
    }
    let _ = write!(out, "[{}{body}]", if class.negated { "^" } else { "" });
    Ok(wide)
}

fn push_class_char(out: &mut String, c: char) -> Result<(), String> {
    if !c.is_ascii() {
        return Err(format!(
            "`{c}` inside a class: Envoy's RE2 reads it as {} separate bytes, canary as one character",
            c.len_utf8()
        ));
    }
    match c {
        '[' | ']' | '\\' | '^' | '-' | '&' | '~' => {
            out.push('\\');
            out.push(c);
        }
        c => push_plain(out, c),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(p: &str) -> String {
        full_match(p, Scope::Value).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn refused(p: &str, scope: Scope) -> String {
        full_match(p, scope).expect_err(p)
    }

    fn matches(canary: &str, text: &str) -> bool {
        canary_eval::compile_regex(canary).expect("valid").is_match(text.as_bytes())
    }

    #[test]
    fn idioms() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(idiom(".*Chrome.*"), Some(Idiom::Contains(s(&["Chrome"]))));
        assert_eq!(idiom("^.*(Chrome|CriOS/).*$"), Some(Idiom::Contains(s(&["Chrome", "CriOS/"]))));
        assert_eq!(idiom(".*?(?:a\\.b).*"), Some(Idiom::Contains(s(&["a.b"]))));
        assert_eq!(idiom("v1|v2"), Some(Idiom::Exact(s(&["v1", "v2"]))));
        assert_eq!(idiom("^(v1|)$"), Some(Idiom::Exact(s(&["v1", ""]))));
        assert_eq!(idiom("tester"), Some(Idiom::Exact(s(&["tester"]))));
        assert_eq!(idiom("\\Qa.b\\E"), Some(Idiom::Exact(s(&["a.b"]))));
        assert_eq!(idiom("Mozilla/5\\.0.*"), Some(Idiom::Prefix(s(&["Mozilla/5.0"]))));
        assert_eq!(idiom(".*"), Some(Idiom::Any));
        assert_eq!(idiom(".*(a|).*"), Some(Idiom::Any));
        // Not idioms: `.*a|b.*` is "ends with a, or starts with b".
        assert_eq!(idiom(".*a|b.*"), None);
        assert_eq!(idiom(".*Chrome"), None);
        assert_eq!(idiom("(?i)chrome"), None);
        assert_eq!(idiom("a.c"), None);
        assert_eq!(idiom("(a|(b))"), None);
    }

    #[test]
    fn translations_are_anchored_and_respelled() {
        assert_eq!(value("^(.*?;)?(user=tester)(;.*)?$"), "^(?:(.*?;)?(user=tester)(;.*)?)$");
        assert_eq!(value("a|$"), "^(?:a|)$");
        assert_eq!(value("a\\sb"), "^(?:a[\\t\\n\\f\\r ]b)$");
        assert_eq!(value("[[a]]"), "^(?:[\\[a]\\])$");
        assert_eq!(value("[a&&b~~c]"), "^(?:[a\\&\\&b\\~\\~c])$");
        assert_eq!(value("a{,2}"), "^(?:a\\{,2\\})$");
        assert_eq!(value("\\<x\\>"), "^(?:<x>)$");
        assert_eq!(value("\\141\\x62"), "^(?:ab)$");
        assert_eq!(value("(?i)android [0-9]+"), "^(?:(?i)android [0-9]+)$");
        assert_eq!(value("(?P<v>[0-9]{1,3})\\.x"), "^(?:(?P<v>[0-9]{1,3})\\.x)$");
        assert_eq!(value("é+.*"), "^(?:é+.*)$");
    }

    #[test]
    fn what_would_decide_differently_is_refused() {
        for p in [".", "a.b", ".{2}", ".?", "[^a]{3}", "\\D", "[é]", "\\x{e9}", "(?i)é", "\\pL", "\\C", "(?=a)", "\\1"]
        {
            assert!(full_match(p, Scope::Value).is_err(), "{p} must be refused");
        }
        assert!(refused("a**", Scope::Value).contains("repetition of a repetition"));
        assert!(refused("a{1001}", Scope::Value).contains("over 1000"));
        // Within RE2's and Istio's limits, past what the evaluator loads (it would refuse the config).
        assert!(refused("[0-9]{1000}[a-z]{1000}[A-Z]{1000}", Scope::Value).contains("more than 64 KiB"));
        assert!(refused("", Scope::Value).contains("empty"));
        assert!(refused(&"a".repeat(1025), Scope::Value).contains("1024"));
        assert!(refused("(a", Scope::Value).contains("without its `)`"));
        assert!(refused("a)", Scope::Value).contains("without its `(`"));
        assert!(refused("[a", Scope::Value).contains("`]`"));
        assert!(refused("[z-a]", Scope::Value).contains("backwards"));
        assert!(refused("[[:alfa:]]", Scope::Value).contains("POSIX"));
        assert!(refused("\\", Scope::Value).contains("lone"));
    }

    #[test]
    fn wide_items_under_a_star_agree_on_non_ascii_values() {
        // `.` is one byte in Envoy: "é" is two. Under `*` both engines match any run.
        let re = value("a.*z");
        assert!(matches(&re, "aéz") && matches(&re, "a\u{fffd}z") && !matches(&re, "aé"));
        let re = value("[^;]+;x");
        assert!(matches(&re, "é;x") && !matches(&re, ";x"));
    }

    #[test]
    fn paths_leave_the_query_out() {
        let re = full_match("/api/v[0-9]+/.*", Scope::Path).expect("path regex");
        assert_eq!(re, "^(?:/api/v[0-9]+/[^\\n?#]*)(?:[?#]|$)");
        assert!(matches(&re, "/api/v2/x?y=1") && matches(&re, "/api/v2/") && !matches(&re, "/api/v2"));
        assert!(!matches(&re, "/api/vx/"));
        let neg = full_match("/[^x]*", Scope::Path).expect("negated class");
        assert!(matches(&neg, "/ab?x") && !matches(&neg, "/ax?b"));
        assert!(refused("/a$b", Scope::Path).contains("`$`"));
        assert!(full_match("/a$", Scope::Path).is_ok(), "a final `$` is the end of the path either way");
        assert!(refused("/a\\?b", Scope::Path).contains("never matches"));
        assert!(refused("/[?x]", Scope::Path).contains("`?` or `#`"));
        assert!(refused("/[[:punct:]]", Scope::Path).contains("`?` or `#`"));
        assert!(full_match("/[a-z]+", Scope::Path).is_ok());
    }

    #[test]
    fn escapes_round_trip_through_canary_regex() {
        for c in (0u8..0x80).map(char::from).chain(['é', '→']) {
            let re = format!("^{}$", escape_literal(&c.to_string()));
            assert!(matches(&re, &c.to_string()), "{c:?} as {re}");
        }
    }

    #[test]
    fn never_panics_on_odd_patterns() {
        for p in [
            "[",
            "[]",
            "[^]",
            "[]a]",
            "(?",
            "(?P<",
            "(?<>a)",
            "\\x{",
            "\\x{zz}",
            "\\x1",
            "{",
            "a{2,1}",
            "a{99999999999}",
            "\\Q",
            "(?i-)",
            "(?-)a",
            "[\\b]",
            "[a-\\d]",
            "*",
            "|*",
            "^*",
            "()*",
        ] {
            let _ = full_match(p, Scope::Value);
            let _ = full_match(p, Scope::Path);
            let _ = idiom(p);
        }
    }
}
