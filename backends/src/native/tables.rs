//! Big tables as Envoy matcher trees: how a service's native routes are grouped into segments that Envoy
//! decides by one lookup (a table) or walks in order (a list), keeping the evaluator's first-match order.
//!
//! Envoy walks a virtual host's `routes` one by one, so a service of N `header x-tenant = "…"` rules costs
//! ~620 instructions per route it passes (README "Backends"). A virtual host may instead carry a generic
//! `matcher` (an `xds.type.matcher.v3.Matcher`), whose `matcher_tree` looks a header up in an
//! `exact_match_map` or `prefix_match_map` at once. `matcher` and `routes` are mutually exclusive, so a service
//! that uses a tree is written entirely as one matcher, a chain linked by `on_no_match`:
//!
//! 1. a guard ([`Layout::guard`]): Envoy's matcher input (`HttpRequestHeaderMatchInput`) joins a header sent
//!    several times with `,` (checked in Envoy 1.40: `x: a` + `x: b` reads `a,b`), where route matchers and the
//!    evaluator test each value. A request where any header the chain reads contains `,` — sent several times,
//!    or one value with a comma — takes the whole service as a route list (a `RouteList` action): the list form,
//!    exact by the arguments of [`super::cond`]. Pseudo-headers (`:path`, `:method`, `:authority`) are never
//!    repeated and need no guard. Past the guard every header the chain reads has at most one value;
//! 2. [`Segment::Predicates`]: rules before a table that are not table rules, each alternative a `FieldMatcher`
//!    whose predicate is its AND of matchers ([`predicate`]: exact for a header with at most one value; a
//!    cookie has no matcher input in Envoy, so a cookie rule ends the chain);
//! 3. [`Segment::Table`]: a run of consecutive rules that each test one header (the same one) for exact values
//!    (`=`, `in`), or `:path` for prefixes. A key repeated in a run keeps its first rule; a prefix that an
//!    earlier prefix of the run starts with is dropped (that rule can never decide), so among the prefixes left,
//!    the longest that matches (`prefix_match_map`) is the first in rule order. An absent header finds nothing
//!    in the map and goes on (checked in Envoy 1.40), as no rule of the run holds for it;
//! 4. [`Segment::List`]: the rules after the last table and the default as a `RouteList` action, which ends
//!    the chain (a route list's no-match does not fall through, so only the last segment may be one).
//!
//! Each action is the very `Route` the list form writes (cluster, weighted clusters, sticky hash policy, route
//! settings), so a request decided by a tree gets what the list form gives it. Envoy evaluates the action's
//! own `match` too (`getRouteFromRoutes`, source/common/router/config_impl.cc), so it is `prefix: "/"`.
//!
//! Versions: `VirtualHost.matcher` is in Envoy 1.21's API (absent from 1.20's), the `RouteList` action in
//! 1.25's (https://www.envoyproxy.io/docs/envoy/v1.25.0/api-v3/http_routes/http_routes, absent from v1.24.1):
//! the tree form needs both ([`super::Feature::MatcherTree`]); older targets keep lists.

use std::collections::BTreeSet;
use std::ops::Range;

use super::{Atom, Dialect, Feature, HeaderTest, NativeRoute, Target};

/// How table runs are written for Envoy (`--native-tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableForm {
    /// Every rule a route in the virtual host's route list (the form before trees existed).
    List,
    /// A run of at least `min_entries` table entries becomes a matcher tree, where the target Envoy has one.
    Tree { min_entries: usize },
}

impl TableForm {
    /// `--native-tables tree`, the default: trees from the measured crossover on.
    pub const DEFAULT: TableForm = TableForm::Tree { min_entries: TREE_MIN_ENTRIES };
}

/// Table entries from which a tree is cheaper than the list it replaces (callgrind, Envoy 1.40:
/// `bench/envoy-tables.sh`, BENCHMARKS.md "Big tables").
pub const TREE_MIN_ENTRIES: usize = 4;

/// Tables one service's chain may hold. Each costs two levels of nesting in the configuration (Envoy parses
/// it as JSON with a bounded depth), and a policy alternating short tables with other rules gains little.
pub const MAX_TABLES: usize = 8;

/// One service's routes as Envoy decides them: a route list, or a chain of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Headers (lowercase, no pseudo-headers) whose value, containing `,`, sends a request to the whole
    /// service as a route list. Empty when the layout is a plain list or reads only pseudo-headers.
    pub guard: Vec<String>,
    /// In rule order, covering every route once; the last is always a [`Segment::List`] (possibly of no
    /// routes: the default alone).
    pub segments: Vec<Segment>,
}

/// A stretch of the service's routes (indices into `NativeService::routes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Walked in order as matcher predicates; `alternatives` native matchers in all.
    Predicates { routes: Range<usize>, alternatives: usize },
    /// One lookup.
    Table(Table),
    /// Walked in order as routes, then the default route: the virtual host's `routes` when it is the only
    /// segment, else a `RouteList` action ending the chain. `alternatives` routes, the default not counted.
    List { routes: Range<usize>, alternatives: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `exact_match_map` on a header's value.
    Exact,
    /// `prefix_match_map` on `:path` (longest prefix wins; shadowed prefixes are dropped).
    Prefix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    /// The header looked up (`:path` for prefixes).
    pub header: String,
    pub routes: Range<usize>,
    /// Key → the route that decides it, first rule first; keys unique, shadowed prefixes gone.
    pub entries: Vec<(String, usize)>,
}

impl Layout {
    /// The whole service as one route list.
    pub fn list(routes: &[NativeRoute]) -> Layout {
        Layout {
            guard: Vec::new(),
            segments: vec![Segment::List { routes: 0..routes.len(), alternatives: alternatives(routes) }],
        }
    }

    /// Whether Envoy gets the service as a virtual host's `routes` (no tree).
    pub fn is_list(&self) -> bool {
        matches!(self.segments.as_slice(), [Segment::List { .. }])
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Table(t) => Some(t),
            _ => None,
        })
    }
}

impl Segment {
    /// Matchers Envoy may test in this segment: a table's map entries, a list's routes.
    pub fn entries(&self) -> usize {
        match self {
            Segment::Predicates { alternatives, .. } | Segment::List { alternatives, .. } => *alternatives,
            Segment::Table(t) => t.entries.len(),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Segment::Predicates { .. } => "predicates",
            Segment::Table(Table { kind: TableKind::Exact, .. }) => "exact-table",
            Segment::Table(Table { kind: TableKind::Prefix, .. }) => "prefix-table",
            Segment::List { .. } => "list",
        }
    }
}

fn alternatives(routes: &[NativeRoute]) -> usize {
    routes.iter().map(|r| r.matches.len()).sum()
}

/// The layout of an HTTP service's `routes` for `target`: trees where the target allows them and a run has at
/// least the form's `min_entries`, else one list.
pub fn layout(routes: &[NativeRoute], target: &Target<'_>) -> Layout {
    let TableForm::Tree { min_entries } = target.tables else { return Layout::list(routes) };
    if target.dialect != Dialect::Envoy || target.require(Feature::MatcherTree).is_err() {
        return Layout::list(routes);
    }
    let mut segments = Vec::new();
    let mut start = 0; // first route not yet in a segment
    let mut i = 0;
    let mut tables = 0;
    while i < routes.len() && tables < MAX_TABLES {
        let Some((kind, header)) = routes.get(i).and_then(table_shape) else {
            i += 1;
            continue;
        };
        let mut end = i + 1;
        while routes.get(end).and_then(table_shape).is_some_and(|s| s.0 == kind && s.1 == header) {
            end += 1;
        }
        let entries = entries(routes, i..end, kind);
        let before = routes.get(start..i).unwrap_or_default();
        if entries.len() >= min_entries.max(1) {
            if !before.iter().all(expressible) {
                break; // a cookie or catch-all rule first: the rest stays a list
            }
            if i > start {
                segments.push(Segment::Predicates { routes: start..i, alternatives: alternatives(before) });
            }
            segments.push(Segment::Table(Table { kind, header: header.to_string(), routes: i..end, entries }));
            tables += 1;
            start = end;
        }
        i = end;
    }
    if segments.is_empty() {
        return Layout::list(routes);
    }
    let rest = routes.get(start..).unwrap_or_default();
    segments.push(Segment::List { routes: start..routes.len(), alternatives: alternatives(rest) });
    let mut guard = BTreeSet::new();
    for segment in &segments {
        match segment {
            Segment::Table(t) => {
                guard.insert(t.header.clone());
            }
            Segment::Predicates { routes: range, .. } => {
                for atom in
                    routes.get(range.clone()).unwrap_or_default().iter().flat_map(|r| r.matches.iter().flatten())
                {
                    if let Atom::Header { name, .. } = atom {
                        guard.insert(name.clone());
                    }
                }
            }
            Segment::List { .. } => {}
        }
    }
    guard.retain(|h| !h.starts_with(':'));
    Layout { guard: guard.into_iter().collect(), segments }
}

/// `(kind, header)` when every alternative of the route is one non-inverted exact test of the same header, or
/// one prefix test of `:path`. `host` (case-insensitive, port stripped: an RE2, not a key) never is.
fn table_shape(route: &NativeRoute) -> Option<(TableKind, &str)> {
    let mut shape: Option<(TableKind, &str)> = None;
    for and in &route.matches {
        let this = match and.as_slice() {
            [Atom::Header { name, test: HeaderTest::Exact(_), invert: false }] => (TableKind::Exact, name.as_str()),
            [Atom::Header { name, test: HeaderTest::Prefix(_), invert: false }] if name == ":path" => {
                (TableKind::Prefix, name.as_str())
            }
            _ => return None,
        };
        if shape.is_some_and(|s| s != this) {
            return None;
        }
        shape = Some(this);
    }
    shape
}

/// The run's keys in rule order, each with the first route that has it; for prefixes, without those an
/// earlier key of the run is a prefix of (never the first match, and the longest-prefix lookup would pick them).
fn entries(routes: &[NativeRoute], run: Range<usize>, kind: TableKind) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for index in run {
        let Some(route) = routes.get(index) else { continue };
        for and in &route.matches {
            let Some(Atom::Header { test: HeaderTest::Exact(key) | HeaderTest::Prefix(key), .. }) = and.first() else {
                continue;
            };
            let shadowed = match kind {
                TableKind::Exact => out.iter().any(|(k, _)| k == key),
                TableKind::Prefix => out.iter().any(|(k, _)| key.starts_with(k.as_str())),
            };
            if !shadowed {
                out.push((key.clone(), index));
            }
        }
    }
    out
}

/// Whether every alternative of the route has a matcher predicate ([`predicate`]) and is not a catch-all (a
/// catch-all ends the chain: nothing after it is reachable, so it belongs in the final list).
pub fn expressible(route: &NativeRoute) -> bool {
    route.matches.iter().all(|and| !and.is_empty() && and.iter().all(|a| predicate(a).is_some()))
}

/// A matcher predicate over one header value, as a small tree [`Pred`] the writer turns into
/// `xds.type.matcher.v3.Matcher.MatcherList.Predicate`. Exact where the header has at most one value (the
/// guard sees to it): `HttpRequestHeaderMatchInput` gives no data for an absent header, and a single predicate
/// without data does not match (Envoy 1.40), so `not` of a value test holds for an absent header — what the
/// list form's `invert_match` + `treat_missing_header_as_empty` says. Cookies have no matcher input: `None`.
pub fn predicate(atom: &Atom) -> Option<Pred> {
    let Atom::Header { name, test, invert } = atom else { return None };
    let value = |test: &HeaderTest| -> Value {
        match test {
            HeaderTest::Exact(v) => Value::Exact(v.clone()),
            HeaderTest::Prefix(v) if !v.is_empty() => Value::Prefix(v.clone()),
            HeaderTest::Contains(v) if !v.is_empty() => Value::Contains(v.clone()),
            HeaderTest::Prefix(_) | HeaderTest::Contains(_) | HeaderTest::Present => Value::Any,
            HeaderTest::Host(h) => Value::Host(h.clone()),
            HeaderTest::ContainsAny(all) => Value::ContainsAny(all.clone()),
            HeaderTest::Regex { re2, .. } => Value::Regex(re2.clone()),
        }
    };
    let single = |v: Value| Pred::Single { header: name.clone(), value: v };
    Some(match (invert, test.matches_empty()) {
        (false, _) => single(value(test)),
        // Absent counts as "" (which fails the test): the inverted test holds.
        (true, false) => Pred::Not(Box::new(single(value(test)))),
        // Envoy's inverted matcher without `treat_missing_header_as_empty` fails on an absent header.
        (true, true) if *test == HeaderTest::Present => Pred::Not(Box::new(single(Value::Any))),
        (true, true) => Pred::And(vec![single(Value::Any), Pred::Not(Box::new(single(value(test))))]),
    })
}

/// A matcher predicate (see [`predicate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pred {
    Single { header: String, value: Value },
    Not(Box<Pred>),
    And(Vec<Pred>),
    Or(Vec<Pred>),
}

/// A `StringMatcher` on a present header's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Exact(String),
    Prefix(String),
    Contains(String),
    /// Any value (a present header): the RE2 `(?s).*`.
    Any,
    /// The `host` RE2 of the list form.
    Host(String),
    /// The Istio form of several literals; not produced for Envoy targets, written as the same RE2.
    ContainsAny(Vec<String>),
    /// A `~` with operators: the list form's RE2 full match (`native::re2`).
    Regex(String),
}

impl Layout {
    /// The guard's predicate: some guarded header's value contains `,`.
    pub fn guard_predicate(&self) -> Option<Pred> {
        let mut singles: Vec<Pred> =
            self.guard.iter().map(|h| Pred::Single { header: h.clone(), value: Value::Contains(",".into()) }).collect();
        match singles.len() {
            0 => None,
            1 => singles.pop(),
            _ => Some(Pred::Or(singles)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{lower_service, EnvoyVersion, NativeService};
    use canary_eval::config::Protocol;

    fn lower(src: &str, tables: TableForm, envoy: EnvoyVersion) -> NativeService {
        let c = canary_compiler::compile(src, "t.canary").unwrap_or_else(|d| panic!("{d:?}"));
        let target = Target { tables, ..Target::envoy(envoy) };
        lower_service(&c.config, &c.spans, "f", Protocol::Http, &target).unwrap()
    }

    fn kinds(l: &Layout) -> Vec<(&'static str, usize)> {
        l.segments.iter().map(|s| (s.kind_name(), s.entries())).collect()
    }

    const TREE1: TableForm = TableForm::Tree { min_entries: 1 };

    #[test]
    fn runs_become_tables_between_predicates_and_a_final_list() {
        let src =
            "service f {\n  header a = \"1\" -> v2\n  header x in [\"k\", \"l\"] -> v2\n  header x = \"m\" -> v3\n  \
                   header x = \"k\" -> v3\n  header b present -> v2\n  path \"/a\" -> v2\n  path \"/ab\" -> v3\n  \
                   path \"/b\" -> v3\n  cookie c=d -> v2\n  header y = \"q\" -> v3\n  default v1\n}\n";
        let n = lower(src, TREE1, EnvoyVersion::LATEST);
        let l = &n.layout;
        // `a = 1` alone is a one-entry table of its own header; cookie ends the chain: `y` stays in the list.
        assert_eq!(
            kinds(l),
            vec![("exact-table", 1), ("exact-table", 3), ("predicates", 1), ("prefix-table", 2), ("list", 2)]
        );
        let Segment::Table(x) = &l.segments[1] else { panic!() };
        assert_eq!(x.entries, vec![("k".into(), 1), ("l".into(), 1), ("m".into(), 2)], "`k` keeps its first rule");
        let Segment::Table(p) = &l.segments[3] else { panic!() };
        assert_eq!(p.entries, vec![("/a".into(), 5), ("/b".into(), 7)], "`/ab` is shadowed by `/a`");
        assert_eq!(l.guard, vec!["a", "b", "x"]);
        assert!(!l.is_list());
    }

    #[test]
    fn small_runs_old_envoys_and_list_form_keep_lists() {
        let src = "service f {\n  header x = \"1\" -> v2\n  header x = \"2\" -> v2\n  default v1\n}\n";
        assert!(lower(src, TableForm::DEFAULT, EnvoyVersion::LATEST).layout.is_list());
        assert!(!lower(src, TREE1, EnvoyVersion::LATEST).layout.is_list());
        assert!(lower(src, TREE1, EnvoyVersion::new(1, 24)).layout.is_list());
        assert!(lower(src, TableForm::List, EnvoyVersion::LATEST).layout.is_list());
    }

    #[test]
    fn a_catch_all_or_cookie_before_a_table_keeps_it_in_the_list() {
        let src = "service f {\n  20% v2\n  header x = \"1\" -> v2\n  default v1\n}\n";
        assert!(lower(src, TREE1, EnvoyVersion::LATEST).layout.is_list());
        let src = "service f {\n  cookie c=d -> v3\n  header x = \"1\" -> v2\n  default v1\n}\n";
        assert!(lower(src, TREE1, EnvoyVersion::LATEST).layout.is_list());
    }

    #[test]
    fn predicates_say_what_the_list_form_says() {
        let h = |test: HeaderTest, invert: bool| Atom::Header { name: "x".into(), test, invert };
        let single = |v: Value| Pred::Single { header: "x".into(), value: v };
        assert_eq!(predicate(&h(HeaderTest::Exact("a".into()), false)), Some(single(Value::Exact("a".into()))));
        assert_eq!(
            predicate(&h(HeaderTest::Exact("a".into()), true)),
            Some(Pred::Not(Box::new(single(Value::Exact("a".into())))))
        );
        assert_eq!(predicate(&h(HeaderTest::Present, true)), Some(Pred::Not(Box::new(single(Value::Any)))));
        assert_eq!(
            predicate(&h(HeaderTest::Exact(String::new()), true)),
            Some(Pred::And(vec![single(Value::Any), Pred::Not(Box::new(single(Value::Exact(String::new()))))]))
        );
        let cookie = Atom::Cookie { name: "c".into(), value: "v".into(), invert: false };
        assert_eq!(predicate(&cookie), None);
    }
}
