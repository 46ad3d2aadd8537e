//! `canaryc fmt`: one canonical layout for a policy.
//!
//! The layout, taken from the examples: one statement per line (statements the author joined with `;`
//! on one line stay joined, as `a; b`, since that is the language's one-line form — SCENARIOS.md §2's
//! first example), a `service` block's statements indented by two spaces with `}` on its own line,
//! one space between tokens except none inside `( … )` and `[ … ]`, before `,` and `:` and around the
//! `=` of `cookie`/`query`/`source` pairs (`cookie user=tester`, `android: 50% v2, 10% v3`), a
//! condition wrapped over several lines inside brackets joined onto one line (its trailing comma
//! dropped), at most one blank line in a row and none after `{`, before `}` or at either end of the file.
//! Tokens themselves are never rewritten: quoting, case, percentages and parentheses stay as written,
//! so the formatted policy decides exactly as the original (only rule line numbers move).
//!
//! **Why the grammar's parse tree plus a separate comment pass.** Every keyword and punctuation mark is a
//! named rule in `grammar.pest`, so pest's tree already is a concrete syntax tree: all tokens, in order,
//! with spans. Only comments are missing (`COMMENT` is silent). Making `COMMENT` non-silent would insert
//! comment pairs at every place implicit whitespace may occur, which the AST builder and the syntax-error
//! messages (built from pest's "expected" rule sets) would all have to learn to skip, and the pre-scan
//! blanks comments inside brackets before pest runs anyway. A comment, however, is lexically trivial:
//! from a `#` outside a string to the end of its line. So [`comments`] finds them in the source text and
//! the formatter places each by offset: a comment alone on its line stays on its own line (indented with
//! the code around it), a comment after code stays after the statement it followed, and a comment inside
//! a wrapped condition, which has no line of its own once the condition is joined, moves just above its
//! statement.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::builder::build;
use crate::diagnostic::Diagnostic;
use crate::parser::{PolicyParser, Rule};
use crate::prescan::prescan;
use crate::syntax_error::from_pest;

/// The policy in canonical layout, or the same diagnostics as [`crate::parse`] when it does not parse.
/// Idempotent: formatting the result again returns it unchanged. Never panics.
pub fn format(source: &str) -> Result<String, Vec<Diagnostic>> {
    let joined = prescan(source)?;
    let file = PolicyParser::parse(Rule::file, &joined).map_err(|e| vec![from_pest(source, &e)])?;
    // The same value checks as `parse` (e.g. `101%`), on the same tree.
    let (_, errors) = build(file.clone(), source).map_err(|internal| vec![internal])?;
    if !errors.is_empty() {
        return Err(errors);
    }
    let lines = Lines::new(source);
    let mut pieces = Vec::new();
    for pair in file {
        collect(pair, 0, source, &mut pieces);
    }
    let blank: Vec<bool> = source.split('\n').map(|l| l.trim().is_empty()).collect();
    Ok(emit(&arrange(pieces, comments(source), &lines), &blank))
}

/// A comment: `#` to the end of its line, without trailing blanks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Byte offset of the `#`.
    pub start: usize,
    pub text: String,
    /// Nothing but blanks before it on its line.
    pub own_line: bool,
}

/// Every comment of a policy, in source order. A `#` inside a string is not one (strings never span
/// lines, so the scan is per line).
pub fn comments(source: &str) -> Vec<Comment> {
    let mut found = Vec::new();
    let mut line_start = 0;
    for line in source.split('\n') {
        if let Some(at) = comment_start(line) {
            let text = line[at..].trim_end().to_string();
            found.push(Comment { start: line_start + at, text, own_line: line[..at].trim().is_empty() });
        }
        line_start += line.len() + 1;
    }
    found
}

/// Where a `#` comment starts in a line (a `#` inside a string does not count).
fn comment_start(line: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

/// 0-based line numbers of byte offsets.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(source: &str) -> Lines {
        Lines { starts: std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect() }
    }

    fn of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `let`, `default` or rule.
    Stmt,
    /// `service NAME [tcp] {`
    Open,
    /// A block's `}`.
    Close,
}

/// A statement (or a block's opening or closing line) in canonical form, with where it was.
#[derive(Debug)]
struct Piece {
    kind: Kind,
    depth: usize,
    /// Offsets of its first token's start and its last token's end.
    start: usize,
    end: usize,
    text: String,
}

fn collect(pair: Pair<'_, Rule>, depth: usize, source: &str, out: &mut Vec<Piece>) {
    match pair.as_rule() {
        Rule::file | Rule::block => {
            for p in pair.into_inner() {
                collect(p, depth, source, out);
            }
        }
        Rule::service => {
            let mut header = Vec::new();
            let mut block = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::block => block = Some(p),
                    _ => leaves(p, &mut header),
                }
            }
            let Some(block) = block else { return };
            let inner: Vec<Pair<'_, Rule>> = block.into_inner().collect();
            let (open, close) = match (inner.first(), inner.last()) {
                (Some(o), Some(c)) if o.as_rule() == Rule::lbrace && c.as_rule() == Rule::rbrace => {
                    (o.as_span(), c.as_span())
                }
                _ => return,
            };
            let start = header.first().map_or(open.start(), |(_, s)| s.start());
            let text = format!("{} {{", join(&header, source));
            out.push(Piece { kind: Kind::Open, depth, start, end: open.end(), text });
            for p in &inner[1..inner.len() - 1] {
                collect(p.clone(), depth + 1, source, out);
            }
            out.push(Piece { kind: Kind::Close, depth, start: close.start(), end: close.end(), text: "}".into() });
        }
        Rule::let_def | Rule::default_def | Rule::mirror_def | Rule::settings_def | Rule::rule => {
            let mut tokens = Vec::new();
            leaves(pair, &mut tokens);
            let (Some((_, first)), Some((_, last))) = (tokens.first(), tokens.last()) else { return };
            let (start, end) = (first.start(), last.end());
            out.push(Piece { kind: Kind::Stmt, depth, start, end, text: join(&tokens, source) });
        }
        _ => {} // `end`, EOI
    }
}

/// The tokens of a subtree, in order. A string and a percentage are one token each.
fn leaves<'i>(pair: Pair<'i, Rule>, out: &mut Vec<(Rule, pest::Span<'i>)>) {
    let kind = pair.as_rule();
    let mut inner = pair.clone().into_inner().peekable();
    if matches!(kind, Rule::string | Rule::percent) || inner.peek().is_none() {
        out.push((kind, pair.as_span()));
        return;
    }
    for p in inner {
        leaves(p, out);
    }
}

/// Tokens joined with the canonical spacing; a comma right before `]` is dropped.
fn join(tokens: &[(Rule, pest::Span<'_>)], source: &str) -> String {
    let mut text = String::new();
    let mut prev: Option<Rule> = None;
    for (i, (kind, span)) in tokens.iter().enumerate() {
        if *kind == Rule::comma && tokens.get(i + 1).is_some_and(|(r, _)| *r == Rule::rbracket) {
            continue;
        }
        if prev.is_some_and(|p| spaced(p, *kind)) {
            text.push(' ');
        }
        text.push_str(source.get(span.start()..span.end()).unwrap_or_default());
        prev = Some(*kind);
    }
    text
}

fn spaced(prev: Rule, next: Rule) -> bool {
    let tight_after = matches!(prev, Rule::lparen | Rule::lbracket | Rule::pair_eq);
    let tight_before = matches!(next, Rule::rparen | Rule::rbracket | Rule::comma | Rule::colon | Rule::pair_eq);
    !(tight_after || tight_before)
}

/// One output line's worth of content before layout.
#[derive(Debug)]
enum Item {
    Code(Piece),
    /// An own-line comment, at the indentation of the code around it.
    Comment {
        text: String,
    },
    /// A comment after code on the same line.
    Trailing {
        text: String,
    },
}

/// An item with the source lines it spans (for blank lines and `;` groups).
#[derive(Debug)]
struct Placed {
    item: Item,
    first_line: usize,
    last_line: usize,
}

/// Merges pieces and comments in source order. A comment inside a statement (in a wrapped condition)
/// moves above that statement.
fn arrange(pieces: Vec<Piece>, comments: Vec<Comment>, lines: &Lines) -> Vec<Placed> {
    // Sort key: (offset, 0 for a comment moved above its statement / 1 otherwise, original offset).
    let mut keyed: Vec<((usize, u8, usize), Placed)> = Vec::new();
    for c in comments {
        let line = lines.of(c.start);
        // Pieces are disjoint and in source order: the only candidate is the last one starting before it.
        let before = pieces.partition_point(|p| p.start < c.start);
        let host = before.checked_sub(1).map(|i| &pieces[i]).filter(|p| p.kind == Kind::Stmt && c.start < p.end);
        let (key, item, line) = match host {
            Some(p) => ((p.start, 0, c.start), Item::Comment { text: c.text }, lines.of(p.start)),
            None if c.own_line => ((c.start, 1, c.start), Item::Comment { text: c.text }, line),
            None => ((c.start, 1, c.start), Item::Trailing { text: c.text }, line),
        };
        keyed.push((key, Placed { item, first_line: line, last_line: line }));
    }
    for p in pieces {
        let (first_line, last_line) = (lines.of(p.start), lines.of(p.end));
        keyed.push(((p.start, 1, p.start), Placed { item: Item::Code(p), first_line, last_line }));
    }
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, p)| p).collect()
}

/// Lays the items out; `blank[i]` tells whether source line `i` holds nothing but blanks.
fn emit(items: &[Placed], blank: &[bool]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<&Placed> = None;
    // The item that started the last output line.
    let mut head: Option<&Placed> = None;
    let mut depth = 0;
    for placed in items {
        let prev_code = prev.and_then(|p| match &p.item {
            Item::Code(c) => Some((c.kind, p.last_line)),
            _ => None,
        });
        let same_line = prev_code.is_some_and(|(_, line)| line == placed.first_line);
        // What the item adds to the previous line instead of starting its own, if anything.
        let append = match &placed.item {
            Item::Trailing { text } if same_line => Some(format!(" {text}")),
            Item::Code(c) if c.kind == Kind::Stmt && same_line && prev_code.is_some_and(|(k, _)| k == Kind::Stmt) => {
                Some(format!("; {}", c.text))
            }
            // An empty block: `service x {}`.
            Item::Code(c) if c.kind == Kind::Close && prev_code.is_some_and(|(k, _)| k == Kind::Open) => {
                Some("}".to_string())
            }
            _ => None,
        };
        match (append, out.last_mut()) {
            (Some(tail), Some(last)) => last.push_str(&tail),
            _ => {
                let (text, indent) = match &placed.item {
                    Item::Code(c) => (c.text.as_str(), c.depth),
                    Item::Comment { text } | Item::Trailing { text } => (text.as_str(), depth),
                };
                let after_open = matches!(head.map(|h| &h.item), Some(Item::Code(c)) if c.kind == Kind::Open);
                let is_close = matches!(&placed.item, Item::Code(c) if c.kind == Kind::Close);
                let gap = prev.map_or(0..0, |p| p.last_line + 1..placed.first_line);
                if blank.get(gap).is_some_and(|lines| lines.contains(&true)) && !after_open && !is_close {
                    out.push(String::new());
                }
                out.push(format!("{}{text}", "  ".repeat(indent)));
                head = Some(placed);
            }
        }
        if let Item::Code(c) = &placed.item {
            depth = if c.kind == Kind::Open { c.depth + 1 } else { c.depth };
        }
        prev = Some(placed);
    }
    if out.is_empty() {
        return String::new();
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(src: &str) -> String {
        let once = format(src).unwrap_or_else(|d| panic!("{src:?}: {}", d[0].message));
        assert_eq!(format(&once).ok().as_deref(), Some(once.as_str()), "not idempotent on {once:?}");
        once
    }

    #[test]
    fn examples_layout_is_canonical() {
        let weather = "# a syntax example\nservice frontend {\n  cookie user=tester -> v2\n  android: 50% v2\n  default v1\n}\nservice tcp-echo tcp {\n  20% v2\n  default v1\n}\n";
        assert_eq!(fmt(weather), weather);
        let one = "android: 50% v2; cookie user=tester -> v2\n";
        assert_eq!(fmt(one), one);
    }

    #[test]
    fn normalises_spacing_and_indentation() {
        let src = "service   forecast{\nheader  User-Agent~\"Chrome\"->v2\n    android :50%v2 ,  10.5% v3   by cookie user\n  cookie user = tester->v2\ndefault v1}\n";
        let out = fmt(src);
        assert_eq!(
            out,
            "service forecast {\n  header User-Agent ~ \"Chrome\" -> v2\n  android: 50% v2, 10.5% v3 by cookie user\n  cookie user=tester -> v2\n  default v1\n}\n"
        );
    }

    #[test]
    fn joins_wrapped_conditions_and_drops_trailing_commas() {
        let src = "let beta = (\n  header x in [\n    \"a\",\n    \"b\",\n  ]\n  or  ( ios )\n)\nnot beta -> v2\n";
        assert_eq!(fmt(src), "let beta = (header x in [\"a\", \"b\"] or (ios))\nnot beta -> v2\n");
    }

    #[test]
    fn keeps_comments_where_they_belong() {
        let src = "#top\n\n\n\nservice a { # opens\n\n  # about v2\n    header x present -> v2   # trailing\n\n\n  default v1 ;   # last\n\n} # closes\n(android # phone\n or ios) -> v2 # wrapped\n";
        assert_eq!(
            fmt(src),
            "#top\n\nservice a { # opens\n  # about v2\n  header x present -> v2 # trailing\n\n  default v1 # last\n} # closes\n# phone\n(android or ios) -> v2 # wrapped\n"
        );
    }

    #[test]
    fn statements_joined_by_semicolons_stay_on_their_line() {
        assert_eq!(fmt("a -> v1;b -> v2 ;\n;\nc -> v3"), "a -> v1; b -> v2\nc -> v3\n");
        assert_eq!(fmt("service s { a -> v1; default v1 }"), "service s {\n  a -> v1; default v1\n}\n");
    }

    #[test]
    fn empty_blocks_and_files() {
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("\n\n  \n"), "");
        assert_eq!(fmt("service s {\n\n}\n"), "service s {}\n");
        assert_eq!(fmt("service s { # why\n}\n"), "service s { # why\n}\n");
        assert_eq!(fmt("# only\n\n\n# comments\n"), "# only\n\n# comments\n");
    }

    #[test]
    fn hashes_in_strings_are_not_comments() {
        assert_eq!(fmt("header x = \"a#b\" -> v2 # real\n"), "header x = \"a#b\" -> v2 # real\n");
        assert_eq!(comments("header x = \"a\\\"#\" # c").len(), 1);
    }

    #[test]
    fn crlf_becomes_lf() {
        assert_eq!(fmt("default v1\r\n# c\r\n"), "default v1\n# c\n");
    }

    #[test]
    fn refuses_what_does_not_parse() {
        let errors = format("service a {\n  android => v2\n}\n").expect_err("a syntax error");
        assert!(errors[0].message.contains("expected"), "{}", errors[0].message);
        assert!(format("50.123% v2").is_err(), "value errors count too");
    }
}
