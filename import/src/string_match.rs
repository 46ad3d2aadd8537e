//! Istio's `StringMatch` (`{exact|prefix|regex}`, or `{}` for "present") on one request attribute, as the
//! canary condition that holds on exactly the same requests.
//!
//! Istio turns each into an Envoy `HeaderMatcher` (`translateHeaderMatch`): `{}` and `regex: "*"` become
//! `present_match`, the others a `string_match` whose regex is an RE2 *full* match. canary's `header` tests
//! follow the same rule that an absent header matches nothing but `absent`, so a positive match maps one to
//! one; negation (`withoutHeaders`) is [`negate`]'s business.

use canary_eval::config::{Cond, Test};
use canary_eval::literal_alternatives;

use super::re2::{self, Idiom, Scope};
use super::report::Report;
use super::yaml::{Field, Node, Path};

/// One `StringMatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    Present,
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// Reads a `StringMatch` at `node` (`null` reads as `{}`).
pub fn read(node: Node<'_>, report: &mut Report) -> Option<StringMatch> {
    if node.value.is_null() {
        return Some(StringMatch::Present);
    }
    let schema = [Field::Read("exact"), Field::Read("prefix"), Field::Read("regex")];
    let fields = node.fields(report, &schema, "a string match")?;
    let mut found = Vec::new();
    for name in ["exact", "prefix", "regex"] {
        if let Some((value, path)) = fields.get(name) {
            let text = Node::new(value, path).str(report, name)?;
            found.push(match name {
                "exact" => StringMatch::Exact(text.to_string()),
                "prefix" => StringMatch::Prefix(text.to_string()),
                _ if text == "*" => StringMatch::Present,
                _ => StringMatch::Regex(text.to_string()),
            });
        }
    }
    match found.len() {
        0 => Some(StringMatch::Present),
        1 => found.pop(),
        _ => {
            report.error(node.path, "a string match has one of `exact`, `prefix`, `regex`, not several");
            None
        }
    }
}

/// The condition on header `name` (lowercase; pseudo-headers too) that `m` stands for. Warnings (a regex
/// and errors go to `report` at `path`, the `StringMatch`'s own.
pub fn header(name: &str, m: &StringMatch, path: &Path, report: &mut Report) -> Option<Cond> {
    let test = value_test(m, path, report)?;
    Some(Cond::Header { name: name.to_string(), test })
}

/// The canary test for a `StringMatch` on a whole value.
fn value_test(m: &StringMatch, path: &Path, report: &mut Report) -> Option<Test> {
    match m {
        StringMatch::Present => Some(Test::Present),
        StringMatch::Exact(v) => Some(Test::Eq(dsl_text(v, &path.key("exact"), report)?)),
        StringMatch::Prefix(p) => {
            let at = path.key("prefix");
            if p.is_empty() {
                report.error(&at, "an empty prefix (Istio refuses it)");
                return None;
            }
            Some(Test::Regex(anchored_prefix(std::slice::from_ref(p), &at, report)?))
        }
        StringMatch::Regex(re) => {
            let at = path.key("regex");
            match re2::idiom(re) {
                Some(Idiom::Any) => Some(Test::Present),
                Some(Idiom::Exact(mut values)) => {
                    values.dedup();
                    for v in &values {
                        dsl_text(v, &at, report)?;
                    }
                    Some(match values.len() {
                        1 => Test::Eq(values.remove(0)),
                        _ => Test::In(values),
                    })
                }
                Some(Idiom::Contains(literals)) => match contains(&literals) {
                    Some(pattern) => Some(Test::Regex(pattern)),
                    None => carried(re, Scope::Value, &at, report).map(Test::Regex),
                },
                Some(Idiom::Prefix(prefixes)) => Some(Test::Regex(anchored_prefix(&prefixes, &at, report)?)),
                None => carried(re, Scope::Value, &at, report).map(Test::Regex),
            }
        }
    }
}

/// The condition a `uri` match stands for: Envoy matches the path *without* its query string and fragment
/// (`PathMatcher::match` strips them for `exact`, `prefix` and `regex` alike; checked in Envoy 1.40), as
/// canary's `path` does; `None` inside `Ok` when it holds for every request (`prefix: /`, `regex: .*`).
/// `ignore_case` is `ignoreUriCase`, which Envoy applies to `exact` and `prefix` (ASCII) and ignores for
/// regexes.
pub fn uri(m: &StringMatch, ignore_case: bool, path: &Path, report: &mut Report) -> Result<Option<Cond>, ()> {
    let on_path = |test: Test| Some(Cond::Header { name: ":path".into(), test });
    match m {
        StringMatch::Present => Ok(None),
        StringMatch::Exact(x) => {
            exact_path(std::slice::from_ref(x), ignore_case, &path.key("exact"), report).map(on_path)
        }
        StringMatch::Prefix(p) => {
            let at = path.key("prefix");
            if p.is_empty() || p == "/" {
                return Ok(None);
            }
            never_in_path(p, &at, report)?;
            if ignore_case && p.bytes().any(|b| b.is_ascii_alphabetic()) {
                let pattern = format!("^(?i:{})", re2::escape_literal(p));
                return Ok(on_path(Test::Regex(dsl_text(&pattern, &at, report).ok_or(())?)));
            }
            Ok(Some(path_prefix(p, &at, report)?))
        }
        StringMatch::Regex(re) => {
            let at = path.key("regex");
            match re2::idiom(re) {
                Some(Idiom::Any) => Ok(None),
                Some(Idiom::Exact(values)) => exact_path(&values, false, &at, report).map(on_path),
                Some(Idiom::Prefix(prefixes)) => {
                    let conds = prefixes.iter().map(|p| path_prefix(p, &at, report)).collect::<Result<Vec<_>, _>>()?;
                    Ok(Some(any(conds)))
                }
                Some(Idiom::Contains(_)) | None => {
                    carried(re, Scope::Path, &at, report).map(|p| on_path(Test::Regex(p))).ok_or(())
                }
            }
        }
    }
}

/// The path (query string excluded) starting with `p`: canary's `path`, or for a prefix that does not start
/// with `/` (which canary's `path` refuses) an anchored regex on `:path` — a prefix without `?` or `#` cannot
/// reach into the query string, so `:path` and the bare path start with it alike.
fn path_prefix(p: &str, at: &Path, report: &mut Report) -> Result<Cond, ()> {
    never_in_path(p, at, report)?;
    if p.starts_with('/') {
        return Ok(Cond::PathPrefix(dsl_text(p, at, report).ok_or(())?));
    }
    let pattern = dsl_text(&format!("^{}", re2::escape_literal(p)), at, report).ok_or(())?;
    Ok(Cond::Header { name: ":path".into(), test: Test::Regex(pattern) })
}

/// A `?` or `#` never occurs in the path Envoy matches (the query string and fragment are cut off).
fn never_in_path(text: &str, at: &Path, report: &mut Report) -> Result<(), ()> {
    if text.contains(['?', '#']) {
        report.error(at, format!("{text:?} never matches: Envoy matches the path without its query string"));
        return Err(());
    }
    Ok(())
}

/// The path without its query string is one of `values` (ASCII case-insensitively with `ignore_case`).
fn exact_path(values: &[String], ignore_case: bool, at: &Path, report: &mut Report) -> Result<Test, ()> {
    for v in values {
        never_in_path(v, at, report)?;
    }
    let alternatives: Vec<String> = values.iter().map(|v| re2::escape_literal(v)).collect();
    let body = match (alternatives.len(), ignore_case) {
        (1, false) => alternatives[0].clone(),
        (_, false) => format!("(?:{})", alternatives.join("|")),
        (_, true) => format!("(?i:{})", alternatives.join("|")),
    };
    let pattern = format!("^{body}(?:[?#]|$)");
    dsl_text(&pattern, at, report).map(Test::Regex).ok_or(())
}

/// `^a` / `^(?:a|b)`: the value starts with one of `prefixes`.
fn anchored_prefix(prefixes: &[String], at: &Path, report: &mut Report) -> Option<String> {
    let escaped: Vec<String> = prefixes.iter().map(|p| re2::escape_literal(p)).collect();
    let pattern = match escaped.as_slice() {
        [one] => format!("^{one}"),
        many => format!("^(?:{})", many.join("|")),
    };
    dsl_text(&pattern, at, report)
}

/// `.*(a|b).*` as canary's literal `~ "a|b"`: a substring search over the whole value (memmem), which is what
/// RE2's full match of `.*a.*` is (`.` matches every byte but `\n`, which Envoy never lets into a header).
/// `None` when a literal cannot be written so that canary reads it as a literal.
fn contains(literals: &[String]) -> Option<String> {
    let mut alternatives = Vec::with_capacity(literals.len());
    for lit in literals {
        if lit.contains(['\n', '\r']) {
            return None;
        }
        let mut escaped = String::new();
        for c in lit.chars() {
            if "\\.+*?()|[]{}^$".contains(c) {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        alternatives.push(escaped);
    }
    let pattern = alternatives.join("|");
    let read_back = literal_alternatives(&pattern)?;
    let wanted: Vec<Vec<u8>> = literals.iter().map(|l| l.as_bytes().to_vec()).collect();
    (read_back == wanted).then_some(pattern)
}

/// A regex kept as a regex: translated and anchored. Exact: canary's `~` searches the whole value in bytes, as
/// Envoy's RE2 matches it, and `re2::full_match` refuses what the two would read differently.
fn carried(re: &str, scope: Scope, at: &Path, report: &mut Report) -> Option<String> {
    match re2::full_match(re, scope) {
        Ok(pattern) => dsl_text(&pattern, at, report),
        Err(why) => {
            report.error(at, format!("{}: {why}", super::render::string(re)));
            None
        }
    }
}

/// A value as a canary string can hold it (no line breaks; Envoy never lets one into a header anyway).
fn dsl_text(text: &str, at: &Path, report: &mut Report) -> Option<String> {
    if text.contains(['\n', '\r']) {
        report.error(at, "a line break in a value: canary strings cannot hold one (and no header carries one)");
        return None;
    }
    Some(text.to_string())
}

/// Whether a test passes on the empty value (what Envoy's `treat_missing_header_as_empty` turns an absent
/// header into).
pub fn matches_empty(test: &Test) -> bool {
    match test {
        Test::Eq(v) => v.is_empty(),
        Test::Ne(v) => !v.is_empty(),
        Test::In(vs) => vs.iter().any(String::is_empty),
        Test::Present => true,
        Test::Absent => false,
        Test::Regex(p) => match literal_alternatives(p) {
            Some(literals) => literals.iter().any(Vec::is_empty),
            None => canary_eval::compile_regex(p).is_ok_and(|re| re.is_match(b"")),
        },
    }
}

/// `withoutHeaders: {name: m}`: Envoy inverts the matcher and reads an absent header as `""`
/// (`treat_missing_header_as_empty`), except for a presence matcher (`m` is `{}` or `regex: "*"`), where an
/// absent header is what matches. A value test that canary writes as `present` (`regex: .*`) is not a presence
/// matcher in Envoy: it also matches `""`, so its inversion matches nothing, and reads so here.
pub fn negate(m: &StringMatch, positive: Cond) -> Cond {
    match positive {
        Cond::Header { name, test: Test::Present } if *m == StringMatch::Present => {
            Cond::Header { name, test: Test::Absent }
        }
        Cond::Header { name, test: Test::Eq(v) } if v.is_empty() => Cond::Header { name, test: Test::Ne(v) },
        Cond::Header { name, test } if matches_empty(&test) => Cond::All(vec![
            Cond::Header { name: name.clone(), test: Test::Present },
            Cond::Not(Box::new(Cond::Header { name, test })),
        ]),
        other => Cond::Not(Box::new(other)),
    }
}

fn any(mut conds: Vec<Cond>) -> Cond {
    match conds.len() {
        1 => conds.remove(0),
        _ => Cond::Any(conds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_of(m: StringMatch) -> (Option<Test>, Report) {
        let mut report = Report::new("t.yaml", "doc 1");
        let path = Path::root().key("headers").key("x");
        (value_test(&m, &path, &mut report), report)
    }

    fn regex(p: &str) -> (Option<Test>, Report) {
        test_of(StringMatch::Regex(p.into()))
    }

    #[test]
    fn idioms_become_plain_tests() {
        assert_eq!(regex(".*Chrome.*").0, Some(Test::Regex("Chrome".into())));
        assert_eq!(regex(".*(Edg/|Edge/).*").0, Some(Test::Regex("Edg/|Edge/".into())));
        assert_eq!(regex(".*a\\.b.*").0, Some(Test::Regex("a\\.b".into())));
        assert_eq!(regex("v1").0, Some(Test::Eq("v1".into())));
        assert_eq!(regex("v1|v2").0, Some(Test::In(vec!["v1".into(), "v2".into()])));
        assert_eq!(regex("Mozilla.*").0, Some(Test::Regex("^Mozilla".into())));
        assert_eq!(regex(".*").0, Some(Test::Present));
        assert_eq!(regex("*").0, None, "`*` is read as presence before it gets here");
        let (test, report) = regex(".*Chrome.*");
        assert!(test.is_some() && report.messages.is_empty(), "an idiom is exact: no warning");
    }

    #[test]
    fn other_regexes_are_carried_exactly() {
        let (test, report) = regex("^(.*?;)?(user=tester)(;.*)?$");
        assert_eq!(test, Some(Test::Regex("^(?:(.*?;)?(user=tester)(;.*)?)$".into())));
        assert!(report.messages.is_empty(), "whole value, bytes: nothing left to warn about: {:?}", report.messages);
        let (test, report) = regex("\\pL+");
        assert_eq!(test, None);
        assert!(report.has_errors());
    }

    #[test]
    fn prefixes_and_exact_values() {
        assert_eq!(test_of(StringMatch::Prefix("a.b".into())).0, Some(Test::Regex("^a\\.b".into())));
        assert_eq!(test_of(StringMatch::Prefix(String::new())).0, None);
        assert_eq!(test_of(StringMatch::Exact("a\"b".into())).0, Some(Test::Eq("a\"b".into())));
        assert_eq!(test_of(StringMatch::Exact("a\nb".into())).0, None);
    }

    #[test]
    fn negation_reads_absent_as_empty() {
        let h = |test| Cond::Header { name: "x".into(), test };
        let value = StringMatch::Exact("a".into());
        assert_eq!(negate(&StringMatch::Present, h(Test::Present)), h(Test::Absent));
        let dot_star = StringMatch::Regex(".*".into());
        assert_eq!(
            negate(&dot_star, h(Test::Present)),
            Cond::All(vec![h(Test::Present), Cond::Not(Box::new(h(Test::Present)))]),
            "`.*` matches the empty value an absent header reads as: the inversion never holds"
        );
        assert_eq!(negate(&value, h(Test::Eq("a".into()))), Cond::Not(Box::new(h(Test::Eq("a".into())))));
        assert_eq!(negate(&value, h(Test::Eq(String::new()))), h(Test::Ne(String::new())));
        let any_value = h(Test::Regex("^(?:a*)$".into()));
        assert_eq!(
            negate(&value, any_value.clone()),
            Cond::All(vec![h(Test::Present), Cond::Not(Box::new(any_value))])
        );
    }

    #[test]
    fn uris() {
        let mut report = Report::new("t.yaml", "doc 1");
        let at = Path::root().key("uri");
        let mut uri = |m: StringMatch, case: bool| uri(&m, case, &at, &mut report);
        assert_eq!(uri(StringMatch::Prefix("/api".into()), false), Ok(Some(Cond::PathPrefix("/api".into()))));
        assert_eq!(uri(StringMatch::Prefix("/".into()), false), Ok(None));
        let rx = |p: &str| Ok(Some(Cond::Header { name: ":path".into(), test: Test::Regex(p.into()) }));
        assert_eq!(uri(StringMatch::Prefix("/a?b".into()), false), Err(()), "Envoy cuts the query off first");
        assert_eq!(uri(StringMatch::Prefix("api".into()), false), rx("^api"));
        assert_eq!(uri(StringMatch::Prefix("/API".into()), true), rx("^(?i:/API)"));
        assert_eq!(uri(StringMatch::Prefix("/123".into()), true), Ok(Some(Cond::PathPrefix("/123".into()))));
        assert_eq!(uri(StringMatch::Exact("/login".into()), false), rx("^/login(?:[?#]|$)"));
        assert_eq!(uri(StringMatch::Exact("/login".into()), true), rx("^(?i:/login)(?:[?#]|$)"));
        assert_eq!(uri(StringMatch::Exact("/a?b".into()), false), Err(()));
        assert_eq!(uri(StringMatch::Regex("/static/.*".into()), false), Ok(Some(Cond::PathPrefix("/static/".into()))));
        assert_eq!(uri(StringMatch::Regex(".*".into()), false), Ok(None));
        assert_eq!(uri(StringMatch::Regex("/v[0-9]+".into()), false), rx("^(?:/v[0-9]+)(?:[?#]|$)"));
    }
}
