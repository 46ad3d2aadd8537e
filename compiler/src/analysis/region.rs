//! A request inside a region of request space: one that satisfies every `must` condition and none of the
//! `must_not` ones, as `canaryc eval` flags — or a proof that there is none.
//!
//! `canaryc diff` describes what moves as such a region (the old rule that decides, the new rule that
//! decides, and the earlier rules of both that must not match), and needs both answers: an example to show,
//! and "empty" to drop a region that cannot occur (`method GET` in the old policy, `method POST` in the new).
//!
//! The search never interprets a condition itself: every candidate is tested by the real evaluator
//! ([`Policy::decide`] on a one-rule policy), so what it finds is what the filter would do. It works one
//! attribute at a time — conditions on different attributes are independent — over a finite set of
//! candidate values per attribute: "absent", every constant the conditions mention, and a fresh value. For
//! equality-like tests (`=`, `!=`, `in`, `present`, cookies, queries, methods, hosts, sources) and path
//! prefixes, that set is *complete*: a test's truth depends only on which constants (prefixes) the value
//! equals (starts with), so if no candidate works, no value does, and the region is reported empty. A `~`
//! regex has no such finite set; its candidates are real user agents and strings built from the pattern,
//! and a failed search then says "unknown", never "empty".

use std::collections::BTreeMap;

use canary_eval::config::{Action, Cond, Config, Rule, RuleSet, Test};
use canary_eval::{literal_alternatives, Policy, CONFIG_VERSION};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::request::RequestSpec;

/// The outcome of a search.
#[derive(Debug, Clone)]
pub enum Search {
    /// A request (as `eval` flags) in the region, verified by the evaluator.
    Example(RequestSpec),
    /// No request can be in the region.
    Empty,
    /// None found, but the conditions include tests whose candidates are not exhaustive (regexes), or the
    /// search ran out of budget: the region may or may not be empty.
    Unknown,
}

/// Finds a request to `service` that matches every condition in `must` and none in `must_not`.
pub fn example(service: &str, must: &[&Cond], must_not: &[&Cond]) -> Search {
    let goals: Vec<Formula> =
        must.iter().map(|c| Formula::new(c, true)).chain(must_not.iter().map(|c| Formula::new(c, false))).collect();
    let mut search = Searcher { service, memo: BTreeMap::new(), budget: SEARCH_BUDGET, unknown: false };
    match search.run(goals, Vec::new()) {
        Some(spec) => Search::Example(spec),
        None if search.unknown => Search::Unknown,
        None => Search::Empty,
    }
}

/// Formulas visited before the search gives up with [`Search::Unknown`]: `not` of many `and`s multiplies
/// the alternatives, and a diff must answer in interactive time.
const SEARCH_BUDGET: usize = 20_000;

/// Candidates per attribute before an attribute's search is cut (and its answer becomes "unknown").
const MAX_CANDIDATES: usize = 4_096;

/// A condition in negation normal form: `not` only on single tests.
#[derive(Debug, Clone)]
enum Formula<'c> {
    Test(Literal<'c>),
    And(Vec<Formula<'c>>),
    Or(Vec<Formula<'c>>),
}

/// One test that must hold (`positive`) or fail.
#[derive(Debug, Clone, Copy)]
struct Literal<'c> {
    cond: &'c Cond,
    positive: bool,
}

impl<'c> Formula<'c> {
    fn new(c: &'c Cond, positive: bool) -> Self {
        match c {
            Cond::All(cs) if positive => Formula::And(cs.iter().map(|c| Formula::new(c, true)).collect()),
            Cond::All(cs) => Formula::Or(cs.iter().map(|c| Formula::new(c, false)).collect()),
            Cond::Any(cs) if positive => Formula::Or(cs.iter().map(|c| Formula::new(c, true)).collect()),
            Cond::Any(cs) => Formula::And(cs.iter().map(|c| Formula::new(c, false)).collect()),
            Cond::Not(inner) => Formula::new(inner, !positive),
            leaf => Formula::Test(Literal { cond: leaf, positive }),
        }
    }
}

/// The part of a request a test reads. Tests of one attribute are solved together; different attributes
/// are independent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Attribute {
    Header(String),
    /// The `cookie` header: `cookie NAME=V` tests and tests of the whole header.
    Cookies,
    /// `:path`: `path` prefixes, `query` parameters and tests of the whole header.
    Path,
    Method,
    Host,
    Source(String),
}

fn attribute(c: &Cond) -> Attribute {
    match c {
        Cond::Header { name, .. } => match name.as_str() {
            "cookie" => Attribute::Cookies,
            ":path" => Attribute::Path,
            ":method" => Attribute::Method,
            ":authority" => Attribute::Host,
            _ => Attribute::Header(name.clone()),
        },
        Cond::Cookie { .. } => Attribute::Cookies,
        Cond::Query { .. } | Cond::PathPrefix(_) => Attribute::Path,
        Cond::Method(_) => Attribute::Method,
        Cond::Host(_) => Attribute::Host,
        Cond::Source { label, .. } => Attribute::Source(label.clone()),
        Cond::All(_) | Cond::Any(_) | Cond::Not(_) => unreachable!("formulas hold only single tests"),
    }
}

/// What one attribute's search found.
#[derive(Debug, Clone)]
enum Solved {
    Found(Patch),
    Empty,
    Unknown,
}

/// A value for one attribute, written into the request as `eval` flags.
#[derive(Debug, Clone, PartialEq)]
enum Patch {
    Header(String, Option<String>),
    /// A raw `cookie` header (when the whole header is tested) and cookies.
    Cookies(Option<String>, Vec<(String, String)>),
    /// A path (`None`: eval's default `/`) and query parameters.
    Path(Option<String>, Vec<(String, String)>),
    /// `None`: eval's default `GET`.
    Method(Option<String>),
    /// `None`: eval's default, the service name.
    Host(Option<String>),
    Source(String, Option<String>),
}

impl Patch {
    fn apply(&self, spec: &mut RequestSpec) {
        match self.clone() {
            Patch::Header(name, value) => spec.headers.extend(value.map(|v| (name, v))),
            Patch::Cookies(raw, cookies) => {
                spec.headers.extend(raw.map(|v| ("cookie".to_string(), v)));
                spec.cookies.extend(cookies);
            }
            Patch::Path(path, queries) => {
                spec.path = path;
                spec.queries.extend(queries);
            }
            Patch::Method(m) => spec.method = m,
            Patch::Host(h) => spec.host = h,
            Patch::Source(label, value) => spec.sources.extend(value.map(|v| (label, v))),
        }
    }
}

struct Searcher<'s> {
    service: &'s str,
    /// Each attribute's answer for a set of tests (keyed by their debug text), so backtracking never
    /// solves the same set twice.
    memo: BTreeMap<(Attribute, String), Solved>,
    budget: usize,
    unknown: bool,
}

impl Searcher<'_> {
    /// Depth-first over the alternatives of `or`s: `goals` still to satisfy, `chosen` the tests taken so
    /// far. Single tests and `and`s are taken before any `or` is split, so an alternative is only tried
    /// against everything already required; a branch is cut as soon as one attribute's tests are proved
    /// contradictory.
    fn run<'c>(&mut self, mut goals: Vec<Formula<'c>>, mut chosen: Vec<Literal<'c>>) -> Option<RequestSpec> {
        loop {
            if self.budget == 0 {
                self.unknown = true;
                return None;
            }
            self.budget -= 1;
            let next = goals.iter().rposition(|g| !matches!(g, Formula::Or(_))).or(goals.len().checked_sub(1));
            let Some(goal) = next.map(|i| goals.remove(i)) else { return self.combine(&chosen) };
            match goal {
                Formula::Test(lit) => {
                    let attr = attribute(lit.cond);
                    chosen.push(lit);
                    if matches!(self.solve(&attr, &chosen), Solved::Empty) {
                        return None;
                    }
                }
                Formula::And(fs) => goals.extend(fs.into_iter().rev()),
                Formula::Or(fs) => {
                    for f in fs {
                        let mut branch = goals.clone();
                        branch.push(f);
                        if let Some(found) = self.run(branch, chosen.clone()) {
                            return Some(found);
                        }
                        if self.budget == 0 {
                            return None;
                        }
                    }
                    return None;
                }
            }
        }
    }

    /// One request from every attribute's first working value, verified as a whole.
    fn combine(&mut self, chosen: &[Literal<'_>]) -> Option<RequestSpec> {
        let mut attrs: Vec<Attribute> = chosen.iter().map(|l| attribute(l.cond)).collect();
        attrs.sort();
        attrs.dedup();
        let mut spec = RequestSpec::default();
        for attr in &attrs {
            match self.solve(attr, chosen) {
                Solved::Found(patch) => patch.apply(&mut spec),
                Solved::Empty => return None,
                Solved::Unknown => {
                    self.unknown = true;
                    return None;
                }
            }
        }
        // Attributes are independent by construction; checking the whole conjunction anyway means a
        // mistake in that reasoning shows as "unknown", never as a wrong example.
        let all: Vec<Literal<'_>> = chosen.to_vec();
        if holds(self.service, &all, &spec) {
            Some(spec)
        } else {
            self.unknown = true;
            None
        }
    }

    /// The first candidate value of `attr` that satisfies all of `chosen`'s tests of that attribute.
    fn solve(&mut self, attr: &Attribute, chosen: &[Literal<'_>]) -> Solved {
        let lits: Vec<Literal<'_>> = chosen.iter().copied().filter(|l| attribute(l.cond) == *attr).collect();
        let key = (attr.clone(), format!("{:?}", lits.iter().map(|l| (l.cond, l.positive)).collect::<Vec<_>>()));
        if let Some(known) = self.memo.get(&key) {
            return known.clone();
        }
        let (candidates, complete) = candidates(self.service, attr, &lits);
        let found = candidates.into_iter().find(|patch| {
            let mut spec = RequestSpec::default();
            patch.apply(&mut spec);
            holds(self.service, &lits, &spec)
        });
        let solved = match found {
            Some(patch) => Solved::Found(patch),
            None if complete => Solved::Empty,
            None => Solved::Unknown,
        };
        self.memo.insert(key, solved.clone());
        solved
    }
}

/// Whether the request `spec` describes satisfies every literal, asked of the evaluator: a one-rule policy
/// `all(literals) -> hit` decides the request, and the rule either decides or not.
fn holds(service: &str, lits: &[Literal<'_>], spec: &RequestSpec) -> bool {
    let conds: Vec<Cond> =
        lits.iter().map(|l| if l.positive { l.cond.clone() } else { Cond::Not(Box::new(l.cond.clone())) }).collect();
    let rule = Rule { line: 1, when: Some(Cond::All(conds)), then: Action::Route("hit".into()) };
    let config = Config {
        version: CONFIG_VERSION,
        global: RuleSet { rules: vec![rule], default: None },
        services: Vec::new(),
        settings: Default::default(),
    };
    let Ok(policy) = Policy::new(&config) else { return false };
    let req = spec.build(service);
    // A one-rule route never draws: the seed is irrelevant.
    policy.decide(policy.fallback(), &req, &mut SmallRng::seed_from_u64(0)).rule.is_some()
}

/// The values worth trying for one attribute, and whether they are exhaustive for these tests.
fn candidates(service: &str, attr: &Attribute, lits: &[Literal<'_>]) -> (Vec<Patch>, bool) {
    let whole: Vec<&Test> = lits
        .iter()
        .filter_map(|l| match l.cond {
            Cond::Header { test, .. } => Some(test),
            _ => None,
        })
        .collect();
    let regex = whole.iter().any(|t| matches!(t, Test::Regex(_)));
    match attr {
        Attribute::Header(name) => {
            let mut values = header_values(&whole);
            // Unanchored patterns that must all match often match one string holding an example of each.
            let patch = |v: &str| Patch::Header(name.clone(), Some(v.to_string()));
            let alone: Vec<String> = lits
                .iter()
                .filter(|l| l.positive && matches!(l.cond, Cond::Header { test: Test::Regex(_), .. }))
                .filter_map(|l| {
                    let Cond::Header { test: Test::Regex(re), .. } = l.cond else { return None };
                    regex_examples(re).into_iter().find(|e| {
                        let mut spec = RequestSpec::default();
                        patch(e).apply(&mut spec);
                        holds(service, &[*l], &spec)
                    })
                })
                .collect();
            if alone.len() > 1 {
                values.push(Some(alone.join(" ")));
            }
            (values.into_iter().map(|v| Patch::Header(name.clone(), v)).collect(), !regex)
        }
        Attribute::Source(label) => {
            let values = optional(lits.iter().filter_map(|l| match l.cond {
                Cond::Source { value, .. } => Some(value.clone()),
                _ => None,
            }));
            (values.into_iter().map(|v| Patch::Source(label.clone(), v)).collect(), true)
        }
        Attribute::Method => {
            let mut values = optional(lits.iter().filter_map(|l| match l.cond {
                Cond::Method(m) => Some(m.clone()),
                _ => None,
            }));
            values.extend(header_values(&whole).into_iter().flatten().map(Some));
            // A real method reads better than the fresh `x`, when one is free.
            let free = ["POST", "PUT", "DELETE"].into_iter().find(|m| !values.contains(&Some(m.to_string())));
            values.splice(1..1, free.map(|m| Some(m.to_string())));
            (dedup(values).into_iter().map(Patch::Method).collect(), !regex)
        }
        Attribute::Host => {
            let mut values = optional(lits.iter().filter_map(|l| match l.cond {
                Cond::Host(h) => Some(h.clone()),
                _ => None,
            }));
            values.extend(header_values(&whole).into_iter().flatten().map(Some));
            (dedup(values).into_iter().map(Patch::Host).collect(), !regex)
        }
        Attribute::Cookies => {
            let named = per_name(lits.iter().filter_map(|l| match l.cond {
                Cond::Cookie { name, value } => Some((name.clone(), value.clone())),
                _ => None,
            }));
            let (combos, capped) = product(&named);
            let mut out: Vec<Patch> = combos.into_iter().map(|c| Patch::Cookies(None, c)).collect();
            if !whole.is_empty() {
                out.extend(header_values(&whole).into_iter().flatten().map(|raw| Patch::Cookies(Some(raw), vec![])));
            }
            // Tests of the whole header next to `cookie NAME=V` tests: the combinations are not exhaustive.
            (out, !capped && (whole.is_empty() || named.is_empty()) && !regex)
        }
        Attribute::Path => {
            let prefixes: Vec<String> = lits
                .iter()
                .filter_map(|l| match l.cond {
                    Cond::PathPrefix(p) => Some(p.clone()),
                    _ => None,
                })
                .collect();
            // A value's truth under prefix tests is the set of prefixes it starts with; each prefix itself
            // (and "") realises every such set, so these paths are exhaustive.
            let mut paths: Vec<Option<String>> = vec![None];
            paths.extend(prefixes.iter().cloned().map(Some));
            paths.push(Some(String::new()));
            paths.extend(header_values(&whole).into_iter().flatten().map(Some));
            let named = per_name(lits.iter().filter_map(|l| match l.cond {
                Cond::Query { name, value } => Some((encode(name), encode(value))),
                _ => None,
            }));
            let (queries, capped) = product(&named);
            let mut out = Vec::new();
            'all: for path in dedup(paths) {
                for q in &queries {
                    if out.len() >= MAX_CANDIDATES {
                        break 'all;
                    }
                    out.push(Patch::Path(path.clone(), q.clone()));
                }
            }
            let complete = !capped && out.len() < MAX_CANDIDATES && whole.is_empty();
            (out, complete)
        }
    }
}

/// For each name, the values worth trying: absent, each constant, and a fresh one.
fn per_name(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, Vec<Option<String>>)> {
    let mut out: Vec<(String, Vec<Option<String>>)> = Vec::new();
    for (name, value) in pairs {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(Some(value)),
            None => out.push((name, vec![Some(value)])),
        }
    }
    for (_, values) in &mut out {
        let constants: Vec<String> = values.drain(..).flatten().collect();
        *values = optional(constants.into_iter());
    }
    out
}

/// Every combination of one value per name (absent values left out), and whether it was cut short.
fn product(named: &[(String, Vec<Option<String>>)]) -> (Vec<Vec<(String, String)>>, bool) {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in named {
        let mut next = Vec::new();
        for combo in &combos {
            for value in values {
                let mut c = combo.clone();
                c.extend(value.clone().map(|v| (name.clone(), v)));
                next.push(c);
                if next.len() >= MAX_CANDIDATES {
                    return (next, true);
                }
            }
        }
        combos = next;
    }
    (combos, false)
}

/// Absent, then each constant once, then a value equal to none of them.
fn optional(constants: impl Iterator<Item = String>) -> Vec<Option<String>> {
    let constants: Vec<String> = constants.collect();
    let mut values: Vec<Option<String>> = vec![None];
    values.extend(constants.iter().cloned().map(Some));
    values.push(Some(fresh(&constants)));
    dedup(values)
}

/// Values for tests of a whole header: absent, the constants, a fresh value, and strings the regexes may
/// match.
fn header_values(tests: &[&Test]) -> Vec<Option<String>> {
    let mut constants = Vec::new();
    let mut examples: Vec<Vec<String>> = Vec::new();
    for test in tests {
        match test {
            Test::Eq(v) | Test::Ne(v) => constants.push(v.clone()),
            Test::In(vs) => constants.extend(vs.iter().cloned()),
            Test::Present | Test::Absent => constants.push("1".into()),
            Test::Regex(re) => examples.push(regex_examples(re)),
        }
    }
    let mut values = optional(constants.into_iter());
    values.extend(examples.iter().flatten().cloned().map(Some));
    dedup(values)
}

/// Strings a pattern may match: real user agents (families are user-agent patterns), its literal texts,
/// and the pattern with its operators removed. Which of them match is the evaluator's call.
fn regex_examples(pattern: &str) -> Vec<String> {
    let mut out: Vec<String> = USER_AGENTS.iter().map(|s| s.to_string()).collect();
    if let Some(literals) = literal_alternatives(pattern) {
        out.extend(literals.into_iter().map(|l| String::from_utf8_lossy(&l).into_owned()));
    }
    out.push(pattern.chars().filter(|c| !"\\^$.*+?()[]{}|".contains(*c)).collect());
    out
}

/// User agents of the families' kinds (Android, iOS, desktop browsers, derivatives), so the family
/// conditions and their negations have examples.
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
    "curl/8.5.0",
];

/// A value equal to none of `constants` (nor a prefix of one, which keeps path tests apart).
fn fresh(constants: &[String]) -> String {
    (0..)
        .map(|i| if i == 0 { "x".to_string() } else { format!("x{i}") })
        .find(|v| !constants.contains(v))
        .unwrap_or_default()
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Percent-encodes a query name or value so that the evaluator, which decodes, reads back exactly `s`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(text: &str) -> Cond {
        let source = format!("{text} -> v2\n");
        crate::compile(&source, "t.canary").map_err(|_| ()).expect("compiles").config.global.rules[0]
            .when
            .clone()
            .expect("a condition")
    }

    fn find(must: &[&str], must_not: &[&str]) -> Search {
        let must: Vec<Cond> = must.iter().map(|c| cond(c)).collect();
        let must_not: Vec<Cond> = must_not.iter().map(|c| cond(c)).collect();
        example("web", &must.iter().collect::<Vec<_>>(), &must_not.iter().collect::<Vec<_>>())
    }

    fn args(search: Search) -> Vec<String> {
        match search {
            Search::Example(spec) => spec.args(),
            other => panic!("no example: {other:?}"),
        }
    }

    #[test]
    fn finds_the_plain_request_for_plain_conditions() {
        assert_eq!(args(find(&["cookie user=tester"], &[])), ["--cookie", "user=tester"]);
        assert_eq!(args(find(&[], &["cookie user=tester"])), Vec::<String>::new());
        assert_eq!(
            args(find(&["method POST", "path \"/api\""], &["query beta=1"])),
            ["--method", "POST", "--path", "/api"]
        );
        assert_eq!(args(find(&["query q=\"a b\""], &[])), ["--query", "q=a%20b"]);
    }

    #[test]
    fn negations_of_conjunctions_pick_a_working_alternative() {
        let found = args(find(&["header x present"], &["header x present and method GET"]));
        assert_eq!(found, ["--method", "POST", "--header", "x: 1"]);
    }

    #[test]
    fn contradictions_are_empty_and_regexes_are_unknown() {
        assert!(matches!(find(&["method GET", "method POST"], &[]), Search::Empty));
        assert!(matches!(find(&["cookie u=a"], &["cookie u=a or header h absent"]), Search::Empty));
        assert!(matches!(find(&["path \"/api\""], &["path \"/\""]), Search::Empty));
        assert!(matches!(
            find(&["header h in [\"a\", \"b\"]"], &["header h = \"a\"", "header h = \"b\""]),
            Search::Empty
        ));
        assert!(matches!(find(&["header h ~ \"^a$\"", "header h ~ \"^b$\""], &[]), Search::Unknown));
    }

    #[test]
    fn many_negated_conjunctions_do_not_make_the_search_exponential() {
        // Each `not (method POST and query beta=bN)` is an `or`; taking `not method POST` in each would only
        // fail at the end against `method POST`, 2^40 branches later.
        let negated: Vec<String> = (0..40).map(|n| format!("method POST and query beta=b{n}")).collect();
        let negated: Vec<&str> = negated.iter().map(String::as_str).collect();
        let found = args(find(&["method POST", "query beta=b99"], &negated));
        assert_eq!(found, ["--method", "POST", "--query", "beta=b99"]);
    }

    #[test]
    fn families_find_real_user_agents() {
        let found = args(find(&["android"], &["chrome"]));
        assert_eq!(found[0], "--header");
        assert!(found[1].contains("SamsungBrowser"), "{found:?}");
        assert!(matches!(find(&["ios", "android"], &[]), Search::Unknown));
    }
}
