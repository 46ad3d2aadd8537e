//! A rule's condition as native matchers: an OR of ANDs (one Envoy route per AND), with every `not` pushed
//! down onto a matcher that Envoy can invert. Each translation below is exact —
//! the matcher agrees with the evaluator on every request — or it is refused with the reason; there is no
//! third case.

use canary_eval::config::{Cond, Test};
use canary_eval::literal_alternatives;

use super::{Dialect, Feature, Target};

/// One native matcher.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Atom {
    /// An Envoy `HeaderMatcher` on `name` (lowercase; pseudo-headers `:path`, `:method`, `:authority` too).
    /// `invert` is `invert_match`; see [`value`] for how an absent header still satisfies it.
    Header { name: String, test: HeaderTest, invert: bool },
    /// `RouteMatch.cookies`: parsed as the evaluator parses cookies (`canary_eval::cookie_value` follows
    /// Envoy's parser); an inverted cookie matcher holds when the cookie is absent, as `not` does.
    Cookie { name: String, value: String, invert: bool },
    /// Istio's `sourceLabels`: the route exists only in proxies whose workload has `label: value` (never
    /// inverted — a VirtualService cannot negate it). Envoy targets get `source` as a constant instead.
    Source { label: String, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HeaderTest {
    Exact(String),
    /// A literal occurs anywhere in the value (the evaluator's substring search over the whole value).
    Contains(String),
    /// One of several literals occurs: Istio's form of several inverted [`HeaderTest::Contains`] on one header
    /// (`not (a or b)`), which a match block cannot hold separately. An RE2 `.*(?:a|b).*`.
    ContainsAny(Vec<String>),
    Prefix(String),
    Present,
    /// `:authority` whose host part (port stripped) equals this lowercase name, ASCII case-insensitively:
    /// written as an RE2 full match with explicit `[hH]` classes (`(?i)` would fold Unicode, e.g. `k` and
    /// the Kelvin sign).
    Host(String),
    /// A `~` with regex operators: `re2` is the RE2 full match that searches the value as the evaluator does
    /// ([`super::re2::full_match`]); `matches_empty` says whether the pattern matches `""`.
    Regex {
        re2: String,
        matches_empty: bool,
    },
}

/// OR of ANDs. `vec![]` is false; `vec![vec![]]` is true.
pub type Dnf = Vec<Vec<Atom>>;

/// The longest `regex` Istio's validation accepts in a VirtualService (it bounds RE2's program size by length;
/// `canary-import` reads the same limit).
pub const ISTIO_MAX_REGEX_LEN: usize = 1024;

/// Native routes one rule may expand to before it is cheaper (and clearer) to leave it to the filter.
pub const MAX_ALTERNATIVES: usize = 64;

/// The native form of `cond` (or of `not cond` when `negated`) for `target`, or why there is none.
pub fn lower(cond: &Cond, negated: bool, target: &Target<'_>) -> Result<Dnf, String> {
    let dnf = match (cond, negated) {
        (Cond::All(cs), false) | (Cond::Any(cs), true) => {
            let mut acc: Dnf = vec![vec![]];
            for c in cs {
                acc = and(acc, lower(c, negated, target)?)?;
            }
            acc
        }
        (Cond::Any(cs), false) | (Cond::All(cs), true) => {
            let mut acc: Dnf = vec![];
            for c in cs {
                acc.extend(lower(c, negated, target)?);
                if acc.len() > MAX_ALTERNATIVES {
                    return Err(too_many());
                }
            }
            acc
        }
        (Cond::Not(inner), _) => lower(inner, !negated, target)?,
        (Cond::Header { name, test }, _) => header(name, test, negated, target)?,
        (Cond::Cookie { name, value }, _) => {
            if target.dialect == Dialect::Istio {
                return Err("a VirtualService has no cookie matcher (a regex on the `cookie` header does not parse \
                            cookies as Envoy and canary do)"
                    .into());
            }
            target.require(Feature::CookieMatcher)?;
            vec![vec![Atom::Cookie { name: name.clone(), value: value.clone(), invert: negated }]]
        }
        (Cond::Query { .. }, _) => {
            return Err(
                "`query` values are matched without percent-decoding by Envoy (and only the first occurrence), \
                        while canary compares them decoded"
                    .into(),
            )
        }
        (Cond::PathPrefix(prefix), _) => {
            if prefix.contains(['?', '#']) {
                return Err("a `path` prefix with `?` or `#` is compared with the query string by Envoy, without it \
                            by canary"
                    .into());
            }
            value(":path", HeaderTest::Prefix(prefix.clone()), negated)?
        }
        (Cond::Method(method), _) => value(":method", HeaderTest::Exact(method.clone()), negated)?,
        (Cond::Host(host), _) => {
            let plain = !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
            if !plain {
                return Err("only plain DNS names (letters, digits, `-`, `.`) lower to a native `host` match".into());
            }
            value(":authority", HeaderTest::Host(host.clone()), negated)?
        }
        (Cond::Source { label, value }, _) if target.labels.is_none() && target.dialect == Dialect::Istio => {
            if negated {
                return Err("a VirtualService cannot negate `sourceLabels`".into());
            }
            vec![vec![Atom::Source { label: label.clone(), value: value.clone() }]]
        }
        (Cond::Source { label, value }, _) => {
            let labels = target.labels.ok_or(
                "`source` reads the proxy's own labels: pass --node-label K=V to specialise the routes for that proxy",
            )?;
            let holds = labels.iter().any(|(k, v)| k == label && v == value);
            if holds != negated {
                vec![vec![]]
            } else {
                vec![]
            }
        }
    };
    Ok(dnf)
}

fn too_many() -> String {
    format!("this condition expands to more than {MAX_ALTERNATIVES} native routes")
}

/// A condition on one header, by the evaluator's rules: an absent header matches only `absent` (so `!=` is
/// "present and different"), and `not X` holds whenever `X` does not (absent included).
fn header(name: &str, test: &Test, negated: bool, target: &Target<'_>) -> Result<Dnf, String> {
    let exact = |v: &String| HeaderTest::Exact(v.clone());
    match test {
        Test::Eq(v) => value(name, exact(v), negated),
        Test::Ne(v) if !negated => and(single(name, HeaderTest::Present, false), value(name, exact(v), true)?),
        Test::Ne(v) => Ok([single(name, HeaderTest::Present, true), value(name, exact(v), false)?].concat()),
        Test::In(values) => either(name, values.iter().map(exact).collect(), negated),
        Test::Regex(pattern) => {
            let Some(literals) = literal_alternatives(pattern) else {
                let re2 = super::re2::full_match(pattern)
                    .map_err(|why| format!("`~ \"{}\"` has no RE2 form: {why}", pattern.escape_default()))?;
                if target.dialect == Dialect::Istio && re2.len() > ISTIO_MAX_REGEX_LEN {
                    return Err(format!(
                        "`~ \"{}\"` is {} characters as RE2, past the {ISTIO_MAX_REGEX_LEN} Istio's validation accepts",
                        pattern.escape_default(),
                        re2.len()
                    ));
                }
                let matches_empty = canary_eval::compile_regex(pattern).is_ok_and(|re| re.is_match(b""));
                return value(name, HeaderTest::Regex { re2, matches_empty }, negated);
            };
            let tests = literals
                .into_iter()
                .map(|l| {
                    String::from_utf8(l)
                        .map(HeaderTest::Contains)
                        .map_err(|_| "a literal that is not UTF-8".to_string())
                })
                .collect::<Result<Vec<_>, String>>()?;
            either(name, tests, negated)
        }
        Test::Present => Ok(single(name, HeaderTest::Present, negated)),
        Test::Absent => Ok(single(name, HeaderTest::Present, !negated)),
    }
}

/// A value test, or its negation. Envoy's inverted value matcher does not match an absent header, but
/// `not` must: the renderer adds `treat_missing_header_as_empty` (absent = `""`, which such a test never
/// matches), and a test that does match `""` gets "absent" as an alternative of its own instead.
fn value(name: &str, test: HeaderTest, negated: bool) -> Result<Dnf, String> {
    let matches_empty = test.matches_empty();
    let atom = Atom::Header { name: name.into(), test, invert: negated };
    Ok(if negated && matches_empty {
        vec![vec![Atom::Header { name: name.into(), test: HeaderTest::Present, invert: true }], vec![atom]]
    } else {
        vec![vec![atom]]
    })
}

/// Alternatives on one header: any of them, or (negated) none of them.
fn either(name: &str, tests: Vec<HeaderTest>, negated: bool) -> Result<Dnf, String> {
    let mut acc: Dnf = if negated { vec![vec![]] } else { vec![] };
    for test in tests {
        let one = value(name, test, negated)?;
        acc = if negated { and(acc, one)? } else { [acc, one].concat() };
        if acc.len() > MAX_ALTERNATIVES {
            return Err(too_many());
        }
    }
    Ok(acc)
}

impl HeaderTest {
    /// Whether an empty value passes the test.
    pub fn matches_empty(&self) -> bool {
        match self {
            HeaderTest::Exact(v) | HeaderTest::Prefix(v) | HeaderTest::Contains(v) => v.is_empty(),
            HeaderTest::ContainsAny(vs) => vs.iter().any(String::is_empty),
            HeaderTest::Present => true,
            HeaderTest::Host(_) => false,
            HeaderTest::Regex { matches_empty, .. } => *matches_empty,
        }
    }
}

fn single(name: &str, test: HeaderTest, invert: bool) -> Dnf {
    vec![vec![Atom::Header { name: name.into(), test, invert }]]
}

/// The AND of two DNFs (every pair of alternatives), refused past [`MAX_ALTERNATIVES`].
fn and(a: Dnf, b: Dnf) -> Result<Dnf, String> {
    if a.len().saturating_mul(b.len()) > MAX_ALTERNATIVES {
        return Err(too_many());
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in &a {
        for y in &b {
            let mut both = x.clone();
            both.extend(y.iter().cloned());
            both.sort();
            both.dedup();
            out.push(both);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVOY: Target<'static> = Target::envoy(super::super::EnvoyVersion::LATEST);

    fn h(name: &str, test: HeaderTest, invert: bool) -> Atom {
        Atom::Header { name: name.into(), test, invert }
    }

    #[test]
    fn not_is_pushed_onto_invertible_matchers() {
        let ne = Cond::Header { name: "x".into(), test: Test::Ne("a".into()) };
        assert_eq!(
            lower(&ne, false, &ENVOY).unwrap(),
            vec![vec![h("x", HeaderTest::Exact("a".into()), true), h("x", HeaderTest::Present, false)]]
        );
        assert_eq!(
            lower(&Cond::Not(Box::new(ne)), false, &ENVOY).unwrap(),
            vec![vec![h("x", HeaderTest::Present, true)], vec![h("x", HeaderTest::Exact("a".into()), false)]]
        );
    }

    #[test]
    fn literal_alternatives_become_contains_and_regexes_re2() {
        let android = Cond::All(vec![
            Cond::Header { name: "user-agent".into(), test: Test::Regex("Android|Silk/".into()) },
            Cond::Not(Box::new(Cond::Header { name: "user-agent".into(), test: Test::Regex("iPhone|CrKey".into()) })),
        ]);
        let dnf = lower(&android, false, &ENVOY).unwrap();
        assert_eq!(dnf.len(), 2);
        assert!(dnf.iter().all(|and| and.len() == 3));
        let re = Cond::Header { name: "user-agent".into(), test: Test::Regex("Chrome/[0-9]+".into()) };
        let re2 = HeaderTest::Regex { re2: r"(?s:.*)(?:Chrome\/(?:[0-9])+)(?s:.*)".into(), matches_empty: false };
        assert_eq!(lower(&re, false, &ENVOY).unwrap(), vec![vec![h("user-agent", re2.clone(), false)]]);
        // `not` of a pattern that matches "" also holds for an absent header: "absent" is its own alternative.
        let empty = Cond::Header { name: "x".into(), test: Test::Regex("^a*$".into()) };
        let dnf = lower(&empty, true, &ENVOY).unwrap();
        assert_eq!(dnf.len(), 2);
        assert_eq!(dnf[0], vec![h("x", HeaderTest::Present, true)]);
        let long = Cond::Header { name: "x".into(), test: Test::Regex("[a-z]{500}".into()) };
        assert!(lower(&long, false, &ENVOY).unwrap_err().contains("no RE2 form"));
    }

    #[test]
    fn source_is_a_constant_once_specialised() {
        let labels = [("version".to_string(), "v2".to_string())];
        let cx = Target { labels: Some(&labels), ..ENVOY };
        let src = Cond::Source { label: "version".into(), value: "v2".into() };
        assert_eq!(lower(&src, false, &cx).unwrap(), vec![vec![]]);
        assert_eq!(lower(&src, true, &cx).unwrap(), Vec::<Vec<Atom>>::new());
        assert!(lower(&src, false, &ENVOY).unwrap_err().contains("--node-label"));
    }

    #[test]
    fn query_and_big_expansions_are_refused() {
        let q = Cond::Query { name: "a".into(), value: "b".into() };
        assert!(lower(&q, false, &ENVOY).unwrap_err().contains("percent-decoding"));
        let in9 = |n: &str| Cond::Header { name: n.into(), test: Test::In((0..9).map(|i| i.to_string()).collect()) };
        let big = Cond::All(vec![in9("a"), in9("b")]);
        assert!(lower(&big, false, &ENVOY).unwrap_err().contains("more than"));
    }
}
