//! pest's parse tree to the typed [`ast`], with the checks that need only one token: percentages (at most
//! two decimals, at most 100%), header-name normalisation, string unescaping.
//!
//! The grammar guarantees the tree's shape, but this code never indexes or unwraps on it: a shape it does
//! not expect becomes an "internal error" diagnostic rather than a panic.

use pest::iterators::{Pair, Pairs};

use crate::ast::{
    Cond, CondKind, Family, HeaderTest, Mirror, Name, Policy, Service, Share, Span, Split, Sticky, StickyKind, Stmt,
    StmtKind, Text,
};
use crate::diagnostic::Diagnostic;
use crate::parser::Rule;

type Built<T> = Result<T, Diagnostic>;

/// Builds the AST from the pairs of a successful parse; `source` is the original text (for values).
///
/// Returns the tree together with the value errors found on the way (an invalid percentage is stored as
/// 0%), so that the checker can still report the other errors of the file in the same run.
pub fn build(mut pairs: Pairs<'_, Rule>, source: &str) -> Result<(Policy, Vec<Diagnostic>), Diagnostic> {
    let mut builder = Builder { source, errors: Vec::new() };
    let stmts = match pairs.next() {
        Some(file) => builder.stmts(file)?,
        None => Vec::new(),
    };
    Ok((Policy { stmts }, builder.errors))
}

struct Builder<'s> {
    /// The original source: pest parsed a copy whose bracketed newlines were blanked, and string values
    /// must come from the text the user wrote. Offsets are identical.
    source: &'s str,
    errors: Vec<Diagnostic>,
}

/// A pair's span without the whitespace and comments pest skips after its last token (a rule ending in
/// `x?` or `x*` keeps the skipped blanks even when nothing followed).
fn content_span(pair: &Pair<'_, Rule>) -> Span {
    let span = Span::from(pair.as_span());
    let end = pair.clone().into_inner().flatten().map(|p| p.as_span().end()).max();
    Span::new(span.start, end.unwrap_or(span.end))
}

fn internal(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(span, format!("internal error: unexpected parse tree ({what})"))
        .with_hint("please report this policy to the canary maintainers")
}

impl<'s> Builder<'s> {
    fn text_of(&self, span: Span) -> &'s str {
        self.source.get(span.start..span.end).unwrap_or_default()
    }

    /// The statements of a `file` or a `block`.
    fn stmts(&mut self, parent: Pair<'_, Rule>) -> Built<Vec<Stmt>> {
        let mut stmts = Vec::new();
        for pair in parent.into_inner() {
            let span = content_span(&pair);
            let mut profile = None;
            let kind = match pair.as_rule() {
                Rule::service => StmtKind::Service(self.service(pair)?),
                Rule::let_def => self.let_def(pair)?,
                Rule::default_def => StmtKind::Default { subset: self.name_in(pair, Rule::default_subset)? },
                Rule::mirror_def => StmtKind::Mirror(self.mirror(pair)?),
                Rule::settings_def => StmtKind::Settings { path: self.settings_path(pair)? },
                Rule::rule => {
                    if let Some(p) = pair.clone().into_inner().find(|p| p.as_rule() == Rule::profile) {
                        profile = Some(self.name_in(p, Rule::profile_name)?);
                    }
                    self.rule(pair)?
                }
                _ => continue, // `end`, braces, EOI
            };
            stmts.push(Stmt { kind, span, profile });
        }
        Ok(stmts)
    }

    fn service(&mut self, pair: Pair<'_, Rule>) -> Built<Service> {
        let span = Span::from(pair.as_span());
        let (mut name, mut tcp, mut keyword, mut block) = (None, None, None, None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::kw_service => keyword = Some(Span::from(p.as_span())),
                Rule::service_name => name = Some(self.name(&p)),
                Rule::kw_tcp => tcp = Some(Span::from(p.as_span())),
                Rule::block => block = Some(p),
                _ => {}
            }
        }
        let (Some(name), Some(keyword), Some(block)) = (name, keyword, block) else {
            return Err(internal(span, "service"));
        };
        let open_brace = block.clone().into_inner().next().map_or(span, |b| Span::from(b.as_span()));
        Ok(Service { name, tcp, stmts: self.stmts(block)?, keyword, open_brace })
    }

    fn let_def(&mut self, pair: Pair<'_, Rule>) -> Built<StmtKind> {
        let span = Span::from(pair.as_span());
        let (mut name, mut cond) = (None, None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::let_name => name = Some(self.name(&p)),
                Rule::cond => cond = Some(self.cond(p)?),
                _ => {}
            }
        }
        match (name, cond) {
            (Some(name), Some(cond)) => Ok(StmtKind::Let { name, cond }),
            _ => Err(internal(span, "let")),
        }
    }

    fn rule(&mut self, pair: Pair<'_, Rule>) -> Built<StmtKind> {
        let span = Span::from(pair.as_span());
        let (mut cond, mut subset, mut split) = (None, None, None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::cond => cond = Some(self.cond(p)?),
                Rule::route => subset = Some(self.name_in(p, Rule::route_subset)?),
                Rule::split => split = Some(self.split(p)?),
                _ => {}
            }
        }
        match (cond, subset, split) {
            (Some(cond), Some(subset), None) => Ok(StmtKind::Route { cond, subset }),
            (cond, None, Some(split)) => Ok(StmtKind::Split { cond, split }),
            _ => Err(internal(span, "rule")),
        }
    }

    fn mirror(&mut self, pair: Pair<'_, Rule>) -> Built<Mirror> {
        let span = Span::from(pair.as_span());
        let (mut percent, mut subset) = (None, None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::percent => percent = Some(Span::from(p.as_span())),
                Rule::mirror_subset => subset = Some(self.name(&p)),
                _ => {}
            }
        }
        let (Some(percent_span), Some(subset)) = (percent, subset) else {
            return Err(internal(span, "mirror"));
        };
        let number = self.text_of(percent_span).trim_end_matches('%');
        let basis_points = match basis_points(number) {
            Ok(bp) => bp,
            Err(e) => {
                self.errors.push(e.diagnostic(percent_span, number));
                1 // a placeholder the checker accepts: the error above already fails the policy
            }
        };
        Ok(Mirror { basis_points, percent_span, subset })
    }

    fn settings_path(&mut self, pair: Pair<'_, Rule>) -> Built<Text> {
        let span = Span::from(pair.as_span());
        match pair.into_inner().find(|p| p.as_rule() == Rule::settings_path) {
            Some(p) => self.text(p),
            None => Err(internal(span, "settings")),
        }
    }

    fn split(&mut self, pair: Pair<'_, Rule>) -> Built<Split> {
        let (mut shares, mut by) = (Vec::new(), None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::share => shares.push(self.share(p)?),
                Rule::sticky => by = Some(self.sticky(p)?),
                _ => {}
            }
        }
        let span = match (shares.first(), shares.last()) {
            (Some(first), Some(last)) => first.percent_span.to(last.subset.span),
            _ => return Err(internal(Span::default(), "split without shares")),
        };
        Ok(Split { shares, by, span })
    }

    fn share(&mut self, pair: Pair<'_, Rule>) -> Built<Share> {
        let span = Span::from(pair.as_span());
        let (mut percent, mut subset) = (None, None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::percent => percent = Some(Span::from(p.as_span())),
                Rule::share_subset => subset = Some(self.name(&p)),
                _ => {}
            }
        }
        let (Some(percent_span), Some(subset)) = (percent, subset) else {
            return Err(internal(span, "share"));
        };
        let number = self.text_of(percent_span).trim_end_matches('%');
        let basis_points = match basis_points(number) {
            Ok(bp) => bp,
            Err(e) => {
                self.errors.push(e.diagnostic(percent_span, number));
                0
            }
        };
        Ok(Share { basis_points, percent_span, subset })
    }

    fn sticky(&mut self, pair: Pair<'_, Rule>) -> Built<Sticky> {
        let span = Span::from(pair.as_span());
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::sticky_cookie => return Ok(Sticky { kind: StickyKind::Cookie, name: self.text(p)?, span }),
                Rule::sticky_header => {
                    let name = self.header_name(p)?;
                    return Ok(Sticky { kind: StickyKind::Header, name, span });
                }
                _ => {}
            }
        }
        Err(internal(span, "by"))
    }

    // ----- conditions ------------------------------------------------------------------------------

    fn cond(&mut self, pair: Pair<'_, Rule>) -> Built<Cond> {
        let span = content_span(&pair);
        match pair.as_rule() {
            Rule::cond => self.chain(pair, Rule::and_expr, CondKind::Or),
            Rule::and_expr => self.chain(pair, Rule::not_expr, CondKind::And),
            Rule::not_expr => {
                // `not not x` is `x`: a run of `not`s keeps only its parity, which also keeps the tree
                // shallow whatever the input.
                let mut first_not = None;
                let mut negate = false;
                for p in pair.into_inner() {
                    if p.as_rule() == Rule::kw_not {
                        first_not.get_or_insert(p.as_span().start());
                        negate = !negate;
                        continue;
                    }
                    let cond = self.cond(p)?;
                    return Ok(match first_not {
                        Some(start) if negate => {
                            let span = Span::new(start, cond.span.end);
                            Cond { kind: CondKind::Not(Box::new(cond)), span }
                        }
                        _ => cond,
                    });
                }
                Err(internal(span, "not"))
            }
            Rule::paren => match pair.into_inner().find(|p| p.as_rule() == Rule::cond) {
                Some(inner) => self.cond(inner),
                None => Err(internal(span, "parentheses")),
            },
            Rule::family => match Family::from_name(pair.as_str()) {
                Some(f) => Ok(Cond { kind: CondKind::Family(f), span }),
                None => Err(internal(span, "family")),
            },
            Rule::let_ref => Ok(Cond { kind: CondKind::Ref(self.name(&pair)), span }),
            Rule::header_cond => self.header_cond(pair),
            _ => self.keyword_cond(pair),
        }
    }

    /// `a or b or c` / `a and b`: one operand stays itself, several become `make(operands)`.
    fn chain(&mut self, pair: Pair<'_, Rule>, operand: Rule, make: fn(Vec<Cond>) -> CondKind) -> Built<Cond> {
        let span = content_span(&pair);
        let mut operands = Vec::new();
        for p in pair.into_inner().filter(|p| p.as_rule() == operand) {
            operands.push(self.cond(p)?);
        }
        match operands.len() {
            0 => Err(internal(span, "empty chain")),
            1 => Ok(operands.remove(0)),
            _ => Ok(Cond { kind: make(operands), span }),
        }
    }

    fn header_cond(&mut self, pair: Pair<'_, Rule>) -> Built<Cond> {
        let span = Span::from(pair.as_span());
        let (mut name, mut test) = (None, None);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::header_name => name = Some(self.header_name(p)?),
                Rule::eq_test => test = Some(HeaderTest::Eq(self.operand(p)?)),
                Rule::ne_test => test = Some(HeaderTest::Ne(self.operand(p)?)),
                Rule::regex_test => test = Some(HeaderTest::Regex(self.operand(p)?)),
                Rule::in_test => {
                    // From `[` to `]`, so "empty list" underlines the brackets rather than `in`.
                    let end = p.as_span().end();
                    let start =
                        p.clone().into_inner().find(|b| b.as_rule() == Rule::lbracket).map(|b| b.as_span().start());
                    let list_span = Span::new(start.unwrap_or(p.as_span().start()), end);
                    let mut values = Vec::new();
                    for v in p.into_inner().filter(|v| v.as_rule() == Rule::value) {
                        values.push(self.text(v)?);
                    }
                    test = Some(HeaderTest::In(values, list_span));
                }
                Rule::kw_present => test = Some(HeaderTest::Present),
                Rule::kw_absent => test = Some(HeaderTest::Absent),
                _ => {}
            }
        }
        match (name, test) {
            (Some(name), Some(test)) => Ok(Cond { kind: CondKind::Header { name, test }, span }),
            _ => Err(internal(span, "header")),
        }
    }

    /// The value of `= v`, `!= v` or `~ v`.
    fn operand(&self, test: Pair<'_, Rule>) -> Built<Text> {
        let span = Span::from(test.as_span());
        match test.into_inner().find(|v| v.as_rule() == Rule::value) {
            Some(v) => self.text(v),
            None => Err(internal(span, "header test")),
        }
    }

    /// `cookie`, `query`, `source` (name=value pairs) and `path`, `method`, `host` (one value).
    fn keyword_cond(&mut self, pair: Pair<'_, Rule>) -> Built<Cond> {
        let span = Span::from(pair.as_span());
        let which = pair.as_rule();
        let mut texts = Vec::new();
        for p in pair.into_inner() {
            let slot = matches!(
                p.as_rule(),
                Rule::cookie_name
                    | Rule::query_name
                    | Rule::source_label
                    | Rule::value
                    | Rule::path_value
                    | Rule::method_value
                    | Rule::host_value
            );
            if slot {
                texts.push(self.text(p)?);
            }
        }
        let mut texts = texts.into_iter();
        let kind = match (which, texts.next(), texts.next()) {
            (Rule::cookie_cond, Some(name), Some(value)) => CondKind::Cookie { name, value },
            (Rule::query_cond, Some(name), Some(value)) => CondKind::Query { name, value },
            (Rule::source_cond, Some(label), Some(value)) => CondKind::Source { label, value },
            (Rule::path_cond, Some(prefix), None) => CondKind::Path(prefix),
            (Rule::method_cond, Some(method), None) => CondKind::Method(method),
            (Rule::host_cond, Some(host), None) => CondKind::Host(host),
            _ => return Err(internal(span, "condition")),
        };
        Ok(Cond { kind, span })
    }

    // ----- words and values ------------------------------------------------------------------------

    /// A bare word (atomic rule) as a [`Name`].
    fn name(&self, pair: &Pair<'_, Rule>) -> Name {
        let span = Span::from(pair.as_span());
        Name { text: self.text_of(span).to_string(), span }
    }

    /// The name held by the child `rule` of `pair` (e.g. the subset of a `route`).
    fn name_in(&self, pair: Pair<'_, Rule>, slot: Rule) -> Built<Name> {
        let span = Span::from(pair.as_span());
        match pair.into_inner().find(|p| p.as_rule() == slot) {
            Some(p) => Ok(self.name(&p)),
            None => Err(internal(span, "name")),
        }
    }

    /// A value slot: a quoted string (unescaped) or a bare token, whichever the pair holds.
    fn text(&self, pair: Pair<'_, Rule>) -> Built<Text> {
        let span = Span::from(pair.as_span());
        if pair.as_rule() == Rule::string {
            return Ok(Text { text: unescape(self.string_body(&pair)), span, quoted: true });
        }
        match pair.into_inner().next() {
            Some(inner) => self.text(inner),
            None => Ok(Text { text: self.text_of(span).to_string(), span, quoted: false }),
        }
    }

    /// The characters between the quotes of a `string` pair, as written.
    fn string_body(&self, string: &Pair<'_, Rule>) -> &'s str {
        let span = Span::from(string.as_span());
        let raw = self.text_of(span);
        raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw)
    }

    /// Header names are case-insensitive: stored lowercase (as HTTP/2 and Envoy carry them).
    fn header_name(&self, pair: Pair<'_, Rule>) -> Built<Text> {
        let mut text = self.text(pair)?;
        text.text = text.text.to_ascii_lowercase();
        Ok(text)
    }
}

/// `\"` is a quote and `\\` a backslash; any other backslash is kept as written, so regexes such as
/// `"\d+"` or `"\.com"` read naturally.
pub fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Why a percentage literal is not a valid share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentError {
    TooManyDecimals,
    OverHundred,
}

impl PercentError {
    fn diagnostic(self, span: Span, number: &str) -> Diagnostic {
        match self {
            PercentError::TooManyDecimals => Diagnostic::error(span, format!("`{number}%` has more than two decimals"))
                .with_label("splits go in steps of 0.01%")
                .with_hint("round it to two decimals, e.g. `12.34%`"),
            PercentError::OverHundred => {
                Diagnostic::error(span, format!("`{number}%` is over 100%")).with_label("a share cannot exceed 100%")
            }
        }
    }
}

/// `"50"` → 5000, `"0.01"` → 1, `"12.5"` → 1250. At most two decimals and at most 100.
pub fn basis_points(number: &str) -> Result<u32, PercentError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 2 {
        return Err(PercentError::TooManyDecimals);
    }
    let digits =
        |s: &str| s.bytes().try_fold(0u64, |acc, b| acc.checked_mul(10)?.checked_add(u64::from(b.wrapping_sub(b'0'))));
    let whole = digits(whole).ok_or(PercentError::OverHundred)?;
    let cents = digits(&format!("{fraction:0<2}")).unwrap_or(0);
    let bp = whole.checked_mul(100).and_then(|w| w.checked_add(cents)).ok_or(PercentError::OverHundred)?;
    if bp > 10_000 {
        return Err(PercentError::OverHundred);
    }
    u32::try_from(bp).map_err(|_| PercentError::OverHundred)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_basis_points() {
        assert_eq!(basis_points("50"), Ok(5000));
        assert_eq!(basis_points("0.01"), Ok(1));
        assert_eq!(basis_points("12.5"), Ok(1250));
        assert_eq!(basis_points("100"), Ok(10_000));
        assert_eq!(basis_points("100.00"), Ok(10_000));
        assert_eq!(basis_points("100.01"), Err(PercentError::OverHundred));
        assert_eq!(basis_points("99999999999999999999999"), Err(PercentError::OverHundred));
        assert_eq!(basis_points("1.234"), Err(PercentError::TooManyDecimals));
    }

    #[test]
    fn unescapes_only_quote_and_backslash() {
        assert_eq!(unescape(r#"a\"b\\c\d"#), r#"a"b\c\d"#);
        assert_eq!(unescape(r"trailing\"), r"trailing\");
    }
}
