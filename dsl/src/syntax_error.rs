//! Turns pest's "expected one of these rules" into a message a policy author understands:
//! `expected `->` or `:` after a condition, found `=>`` plus a hint such as "did you mean `->`?".
//!
//! pest reports the set of rules it tried at the furthest position it reached. The grammar names every
//! keyword, punctuation mark and slot (`route_subset`, `let_name`, …) so that this set identifies the
//! place in a statement; [`expectation`] maps it to words, and [`hint`] looks at what was actually
//! written there to suggest the fix for the common slips (`=>`, `50 v2`, `==`, a misspelt keyword…).

use pest::error::{Error, ErrorVariant, InputLocation};

use crate::ast::Span;
use crate::diagnostic::Diagnostic;
use crate::parser::Rule;
use crate::suggest::closest;

/// Keywords that start a condition and take arguments (a misspelling of one is followed by its
/// arguments, which is how it reaches us as a syntax error).
const CONDITION_KEYWORDS: [&str; 7] = ["header", "cookie", "query", "path", "method", "host", "source"];
const STATEMENT_KEYWORDS: [&str; 3] = ["default", "service", "let"];
/// Every word the language reserves: statement and condition keywords, operators and user-agent families.
pub const RESERVED: [&str; 29] = [
    "service", "tcp", "let", "default", "and", "or", "not", "header", "cookie", "query", "path", "method", "host",
    "source", "by", "in", "present", "absent", "android", "ios", "chrome", "firefox", "safari", "edge", "mobile",
    "mirror", "to", "settings", "with",
];

pub fn from_pest(source: &str, err: &Error<Rule>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((start, _)) => start,
    };
    let pos = pos.min(source.len());
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.as_slice(),
        ErrorVariant::CustomError { message } => {
            return Diagnostic::error(Span::new(pos, pos), format!("cannot parse the policy: {message}"))
                .with_hint("simplify the policy: split long conditions with `let`")
        }
    };
    let found = Found::at(source, pos);
    if let Some(d) = misspelt_keyword(source, pos, positives) {
        return d;
    }
    let expected = expectation(positives, source, pos);
    let message = format!("expected {expected}, found {}", found.describe());
    let label = format!("expected {}", expected.split(" after ").next().unwrap_or(&expected));
    // A missing `%` belongs right after the number: point at the number, not at what follows.
    let span = match previous_token(source, pos) {
        Some((_, number)) if positives.contains(&Rule::pct_sign) => number,
        _ => found.span,
    };
    Diagnostic::error(span, message).with_label(label).with_hint_opt(hint(positives, &found, source, pos))
}

/// What the parser stopped at.
struct Found<'s> {
    token: Option<&'s str>,
    span: Span,
    end_of_file: bool,
}

impl<'s> Found<'s> {
    /// The token at `pos`, after any blanks.
    fn at(source: &'s str, pos: usize) -> Found<'s> {
        let rest = source.get(pos..).unwrap_or_default();
        let blanks = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let (pos, rest) = (pos + blanks, &rest[blanks..]);
        let len = token_len(rest);
        let token = (len > 0).then(|| &rest[..len]);
        Found { token, span: Span::new(pos, pos + len), end_of_file: rest.is_empty() }
    }

    fn describe(&self) -> String {
        match self.token {
            _ if self.end_of_file => "end of file".to_string(),
            None => "end of line".to_string(),
            Some(t) if t.starts_with('"') => "a string".to_string(),
            Some(t) => format!("`{}`", t.escape_debug()),
        }
    }

    fn is(&self, tokens: &[&str]) -> bool {
        self.token.is_some_and(|t| tokens.contains(&t))
    }

    fn is_word(&self) -> bool {
        self.token.is_some_and(|t| t.starts_with(is_word_char))
    }

    fn is_number(&self) -> bool {
        self.token.is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Length of the token starting `rest`: a word, a number with `%`, a string up to its closing quote, a
/// two-character operator, or one character. Zero at a line break or the end.
fn token_len(rest: &str) -> usize {
    let Some(first) = rest.chars().next() else { return 0 };
    if matches!(first, '\n' | '\r') {
        return 0;
    }
    if first.is_ascii_alphanumeric() || first == '_' {
        let end = rest.char_indices().find(|&(i, c)| !is_word_char(c) || rest[i..].starts_with("->"));
        return end.map_or(rest.len(), |(i, _)| i);
    }
    if first == '"' {
        return rest[1..].find(['"', '\n', '\r']).map_or(rest.len(), |i| i + 2).min(rest.len());
    }
    for op in ["->", "=>", "==", "!=", ":=", "~>", "-->", "<-"] {
        if rest.starts_with(op) {
            return op.len();
        }
    }
    first.len_utf8()
}

/// The token just before `pos` on the same line (skipping blanks), with its span.
fn previous_token(source: &str, pos: usize) -> Option<(&str, Span)> {
    let before = source.get(..pos)?;
    let line_start = before.rfind(['\n', ';']).map_or(0, |i| i + 1);
    let line = &before[line_start..];
    let trimmed = line.trim_end_matches([' ', '\t']);
    let end = line_start + trimmed.len();
    let last = trimmed.chars().next_back()?;
    let start = if is_word_char(last) {
        let word = trimmed.char_indices().rev().take_while(|&(_, c)| is_word_char(c)).last();
        line_start + word.map_or(trimmed.len(), |(i, _)| i)
    } else if let Some(op) = ["->", "=>", "==", "!="].iter().find(|op| trimmed.ends_with(*op)) {
        end - op.len()
    } else {
        end - last.len_utf8()
    };
    Some((&source[start..end], Span::new(start, end)))
}

/// `headr user-agent ~ "x" -> v2` parses `headr` as a `let` name and fails at `user-agent`; the real
/// mistake is the keyword, so say that when the word before the failure is a near-miss of one.
fn misspelt_keyword(source: &str, pos: usize, positives: &[Rule]) -> Option<Diagnostic> {
    if !positives.iter().any(|r| matches!(r, Rule::arrow | Rule::colon)) {
        return None;
    }
    let (word, span) = previous_token(source, pos)?;
    // Only a word in condition position: at the start of the statement or after `and`/`or`/`not`/`(`.
    let before = previous_token(source, span.start).map(|(t, _)| t);
    if !matches!(before, None | Some("and" | "or" | "not" | "(" | "{")) || RESERVED.contains(&word) {
        return None;
    }
    if let Some(keyword) = closest(word, CONDITION_KEYWORDS) {
        return Some(
            Diagnostic::error(span, format!("unknown condition keyword `{word}`"))
                .with_label("not a condition keyword")
                .with_hint(format!("did you mean `{keyword}`?")),
        );
    }
    let keyword = closest(word, STATEMENT_KEYWORDS)?;
    Some(
        Diagnostic::error(span, format!("unknown keyword `{word}`"))
            .with_label("not a keyword")
            .with_hint(format!("did you mean `{keyword}`?")),
    )
}

/// What the parser wanted, in words ("`->` or `:` after a condition").
fn expectation(positives: &[Rule], source: &str, pos: usize) -> String {
    let has = |r: Rule| positives.contains(&r);
    let after = || previous_token(source, pos).map_or_else(|| "here".to_string(), |(t, _)| format!("after `{t}`"));
    if has(Rule::arrow) || has(Rule::colon) {
        return "`->` or `:` after a condition".into();
    }
    if has(Rule::rparen) {
        return "`and`, `or` or `)`".into();
    }
    if has(Rule::pct_sign) {
        return format!("`%` {}", after());
    }
    let condition_start = [
        Rule::cond,
        Rule::and_expr,
        Rule::not_expr,
        Rule::family,
        Rule::let_ref,
        Rule::kw_not,
        Rule::kw_query,
        Rule::lparen,
    ];
    // Checked before the table: a condition can start with `cookie` or `header`, as a `by` clause does.
    if positives.iter().any(|r| condition_start.contains(r)) {
        return format!("a condition {}", after());
    }
    let simple = [
        (Rule::number, "a percentage after `:`"),
        (Rule::route_subset, "a subset name after `->`"),
        (Rule::share_subset, "a subset name after the percentage"),
        (Rule::default_subset, "a subset name after `default`"),
        (Rule::service_name, "a service name after `service`"),
        (Rule::lbrace, "`{` after the service name"),
        (Rule::let_name, "a name after `let`"),
        (Rule::let_eq, "`=` after the name"),
        (Rule::op_eq, "`=`, `!=`, `~`, `in`, `present` or `absent` after the header name"),
        (Rule::header_name, "a header name after `header`"),
        (Rule::cookie_name, "a cookie name after `cookie`"),
        (Rule::query_name, "a parameter name after `query`"),
        (Rule::source_label, "a label name after `source`"),
        (Rule::path_value, "a path prefix such as `\"/api\"` after `path`"),
        (Rule::method_value, "an HTTP method such as `GET` after `method`"),
        (Rule::host_value, "a host name after `host`"),
        (Rule::lbracket, "`[` after `in`"),
        (Rule::kw_cookie, "`cookie` or `header` after `by`"),
        (Rule::sticky_cookie, "a cookie name after `by cookie`"),
        (Rule::sticky_header, "a header name after `by header`"),
        (Rule::kw_to, "`to` after the mirror's percentage"),
        (Rule::mirror_subset, "a subset name after `mirror P% to`"),
        (Rule::settings_path, "a quoted file name after `settings`"),
        (Rule::profile_name, "a profile name after `with`"),
    ];
    if let Some((_, words)) = simple.iter().find(|(r, _)| has(*r)) {
        return (*words).into();
    }
    if has(Rule::pair_eq) {
        let keyword =
            statement_words(source, pos).into_iter().rev().find(|w| ["cookie", "query", "source"].contains(w));
        return match keyword {
            Some("cookie") => "`=` after the cookie name".into(),
            Some("query") => "`=` after the parameter name".into(),
            Some("source") => "`=` after the label name".into(),
            _ => "`=` after the name".into(),
        };
    }
    if has(Rule::value) {
        return match has(Rule::rbracket) {
            true => format!("a value or `]` {}", after()),
            false => format!("a value {}", after()),
        };
    }
    if has(Rule::rbracket) {
        return "`,` or `]`".into();
    }
    if has(Rule::rule) || has(Rule::file) || has(Rule::kw_default) {
        return "a rule, `default`, `let` or `service`".into();
    }
    if has(Rule::comma) || has(Rule::kw_by) {
        return "`,`, `by` or the end of the statement".into();
    }
    if has(Rule::kw_and) || has(Rule::kw_or) {
        return "`and`, `or` or the end of the statement".into();
    }
    if has(Rule::end) || has(Rule::EOI) || has(Rule::rbrace) {
        return "the end of the statement".into();
    }
    "valid syntax".into()
}

/// The words of the current statement up to `pos`.
fn statement_words(source: &str, pos: usize) -> Vec<&str> {
    let before = source.get(..pos).unwrap_or_default();
    let start = before.rfind(['\n', ';']).map_or(0, |i| i + 1);
    before[start..].split(|c: char| !is_word_char(c)).filter(|w| !w.is_empty()).collect()
}

/// A concrete fix, judged from what was written where the parser stopped.
fn hint(positives: &[Rule], found: &Found<'_>, source: &str, pos: usize) -> Option<String> {
    let has = |r: Rule| positives.contains(&r);
    let prev = previous_token(source, pos).map(|(t, _)| t);
    // A near-miss of a keyword that was expected right here: `presnt`, `adn`, `cookei`, `tpc`.
    let keywords: Vec<String> =
        positives.iter().filter_map(|r| format!("{r:?}").strip_prefix("kw_").map(str::to_string)).collect();
    if let Some(near) =
        found.token.filter(|_| found.is_word()).and_then(|t| closest(t, keywords.iter().map(String::as_str)))
    {
        return Some(format!("did you mean `{near}`?"));
    }
    if has(Rule::arrow) {
        if found.is(&["=>", "=", "~>", "-->", "→", "⇒", ">", "-", ":="]) {
            return Some("did you mean `->`?".into());
        }
        if found.is_number() {
            return Some("a split needs a `:` after its condition, e.g. `android: 50% v2`".into());
        }
        return Some("write `CONDITION -> SUBSET` to route, or `CONDITION: 50% SUBSET` to split".into());
    }
    if has(Rule::pct_sign) && found.is(&["%"]) {
        return Some("write the `%` right after the number, e.g. `50% v2`".into());
    }
    if has(Rule::pct_sign) {
        return Some("percentages need a `%`, e.g. `50% v2`".into());
    }
    if has(Rule::number) && found.is_word() {
        return Some(
            "`:` starts a split such as `android: 50% v2`; to send all matching traffic write `-> SUBSET`".into(),
        );
    }
    if has(Rule::service_name) && found.token.is_some_and(|t| t.starts_with('"')) {
        return Some("service names are written without quotes".into());
    }
    if (has(Rule::route_subset) || has(Rule::share_subset) || has(Rule::default_subset))
        && found.token.is_some_and(|t| t.starts_with('"'))
    {
        return Some("subset names are written without quotes".into());
    }
    if has(Rule::service_name) && found.is(&["{"]) {
        return Some("name the service, e.g. `service frontend {`".into());
    }
    let name_slot = [Rule::service_name, Rule::route_subset, Rule::share_subset, Rule::default_subset];
    if positives.iter().any(|r| name_slot.contains(r)) {
        return found.token.map(|_| "names are letters, digits, `-`, `_` and `.`".into());
    }
    if has(Rule::lbrace) {
        return Some("a service is `service NAME { … }` or `service NAME tcp { … }`".into());
    }
    if has(Rule::let_name) {
        return found
            .token
            .filter(|t| RESERVED.contains(t))
            .map(|t| format!("`{t}` is a reserved word; choose another name"));
    }
    if has(Rule::let_eq) {
        return Some("write `let NAME = CONDITION`".into());
    }
    if has(Rule::pair_eq) {
        let keyword =
            statement_words(source, pos).into_iter().rev().find(|w| ["cookie", "query", "source"].contains(w));
        let keyword = keyword.unwrap_or("cookie");
        let what = if keyword == "source" { "LABEL" } else { "NAME" };
        return Some(format!("write `{keyword} {what}=VALUE`"));
    }
    if has(Rule::op_eq) {
        if found.is(&["=="]) {
            return Some("use a single `=` to compare".into());
        }
        return Some(
            "e.g. `header x-env = \"beta\"`, `header user-agent ~ \"Chrome\"`, `header x-user present`".into(),
        );
    }
    if has(Rule::value) && prev == Some("=") && found.is(&["=", "=="]) {
        return Some("use a single `=` to compare".into());
    }
    if has(Rule::value) && found.is(&["]"]) {
        return None;
    }
    if has(Rule::rule) || has(Rule::file) {
        if found.is(&["->"]) {
            return Some(
                "a rule needs a condition before `->`; for all traffic write `default SUBSET` or `100% SUBSET`".into(),
            );
        }
        return None;
    }
    if has(Rule::end) || has(Rule::EOI) || has(Rule::rbrace) {
        return Some("put each statement on its own line, or separate statements with `;`".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(token_len("=> v2"), 2);
        assert_eq!(token_len("user-agent ~"), 10);
        assert_eq!(token_len("\"abc\" x"), 5);
        assert_eq!(token_len("\"abc"), 4);
        assert_eq!(token_len("→ v2"), 3);
        assert_eq!(token_len("\nx"), 0);
    }

    #[test]
    fn previous_tokens() {
        assert_eq!(previous_token("android  => v2", 9).map(|t| t.0), Some("android"));
        assert_eq!(previous_token("a -> ", 5).map(|t| t.0), Some("->"));
        assert_eq!(previous_token("x\n  ", 4), None);
        assert_eq!(previous_token("é→ab ", 8).map(|t| t.0), Some("ab"));
    }
}
