//! What a service's routing costs Envoy per request in each exact backend form, so `--backend auto` can pick the
//! cheapest rather than "native whenever it lowers": a native route list is tried route by route (Envoy's
//! `RouteMatcher` walks `virtual_hosts[].routes` in order, every `HeaderMatcher` of a route until one fails), so
//! 10,000 exact-header rules cost 30× what the filter's hash table does; ten of them cost less than the filter's
//! wasm boundary.
//!
//! The estimate is the **worst case**: the request decided by the most expensive position — every route tried
//! and the default taken, or a split's weighted clusters (and hash policy) after every route before it. It is
//! an estimate of Envoy's instructions per request on its worker thread, net of idle work, the figure callgrind
//! gives in `make bench-scale`, for a request like the benchmark's (seven headers, a cookie header of five
//! cookies); other requests shift the base, not the slope.
//!
//! The coefficients are a least-squares fit (relative error) to callgrind measurements of Envoy 1.40 over
//! policies of 10 … 10,000 rules of each kind: `bench/cost_fit.py` reads `bench/results/scale-*.json` and writes
//! `bench/results/cost-model.json`, whose figures are the constants below (a test keeps them equal) along with
//! the model's error on held-out policies (BENCHMARKS.md, "Scale").

use canary_eval::config::{Action, Cond, Config, Protocol, Rule, Test};
use canary_eval::{literal_alternatives, Policy};

use crate::native::tables::TableKind;
use crate::native::{Atom, HeaderTest, Layout, NativeAction, NativeRoute, NativeService, Segment};

/// The backend forms a service can be deployed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Form {
    /// Envoy's routes, tried in order.
    List,
    /// Envoy's routes with runs of table rules as matcher trees (`native::tables`): one lookup per table.
    Tree,
    /// The canary wasm filter, then a route on its subset header.
    Filter,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::List => "native route list",
            Form::Tree => "native matcher tree",
            Form::Filter => "filter",
        }
    }
}

/// Fitted coefficients, in Envoy instructions per request (see the module comment for their source).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    /// A native route list with only the default route: Envoy's request path, the router and the upstream.
    pub list_base: f64,
    /// One route tried whose first matcher is an exact header test (and each further matcher of that kind).
    pub list_exact: f64,
    /// … a `:path` prefix test.
    pub list_prefix: f64,
    /// … a cookie matcher (Envoy parses the `cookie` header for each).
    pub list_cookie: f64,
    /// … a `contains` test (a literal `~`).
    pub list_contains: f64,
    /// The route taken is a sticky split: the hash policy and the weighted clusters.
    pub list_sticky_split: f64,
    /// … a `safe_regex` test (a `~` with regex operators, lowered to RE2: `native/re2.rs`).
    pub list_regex: f64,
    /// A matcher tree's exact-map lookup, its comma guard on the header included (the chain's own overhead
    /// over `list_base`, which the tree form's final route list and default also pay).
    pub tree_exact_table: f64,
    /// A matcher tree's prefix-map lookup on `:path` (no guard: pseudo-headers are never repeated).
    pub tree_prefix_table: f64,
    /// The filter with no rule to try one by one: the proxy-wasm boundary, reading the request, the index
    /// lookups (an exact table, a literal or prefix index costs less than the base's spread between request
    /// shapes, ±4k, so it is not a term of its own) and writing the header.
    pub filter_base: f64,
    /// One rule tried on its own (not a regex). No training kind separates it any more (`in` joined the index):
    /// the figure fitted from the `in` tables before that (bench/cost_fit.py, `FIXED`).
    pub filter_rule: f64,
    /// One rule with a regex (the lazy DFA, unanchored search of the whole value) tried on its own.
    pub filter_regex: f64,
    /// The rule taken is a sticky split: hashing the key.
    pub filter_sticky_split: f64,
}

/// The fit of `bench/results/cost-model.json` (bench/cost_fit.py over bench/results/scale-*.json).
pub const CALIBRATED: Coefficients = Coefficients {
    list_base: 199255.3,
    list_exact: 621.9,
    list_prefix: 426.9,
    list_cookie: 410.6,
    list_contains: 734.7,
    list_sticky_split: 5444.8,
    list_regex: 1394.1,
    tree_exact_table: 3154.2,
    tree_prefix_table: 0.0,
    filter_base: 235713.8,
    filter_rule: 825.4,
    filter_regex: 1080.1,
    filter_sticky_split: 7594.2,
};

/// One candidate form and its estimated instructions per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub form: Form,
    pub instructions: f64,
}

/// A route list's worst case: the most expensive deciding position, every route before it tried.
pub fn list(service: &NativeService, k: &Coefficients) -> f64 {
    walk(&service.routes, k.list_base, k)
}

/// `routes` tried in order after `spent`: the dearest deciding position (a sticky split's hash policy, or every
/// route and then the default).
fn walk(routes: &[NativeRoute], spent: f64, k: &Coefficients) -> f64 {
    let mut tried = spent;
    let mut worst = tried;
    for route in routes {
        if let (NativeAction::Split { by: Some(_), .. }, Some(first)) = (&route.action, route.matches.first()) {
            worst = worst.max(tried + route_cost(first, k) + k.list_sticky_split);
        }
        tried += route.matches.iter().map(|and| route_cost(and, k)).sum::<f64>();
    }
    worst.max(tried)
}

/// A matcher-tree layout's worst case, the dearer of its two paths. Past the guard: every segment passed —
/// predicates tested, each table looked up without a hit — then the final route list walked to its dearest
/// position. Through the guard: any client can send a table's header twice (or with a comma) and so have the
/// whole service walked as the route list (`native::tables`, the guard), after the guard's own test (priced at a
/// table's overhead, 3.2k; measured 0.8–0.9k over the list at 100 and 1,000 rules: BENCHMARKS.md "Big tables"). A tree on a header is therefore never cheaper in the worst case than the
/// list it replaces; on `:path` (no guard) it is. `None` for a plain list layout (that is [`list`]'s case).
pub fn tree(service: &NativeService, layout: &Layout, k: &Coefficients) -> Option<f64> {
    if layout.is_list() {
        return None;
    }
    let guarded = (!layout.guard.is_empty()).then(|| walk(&service.routes, k.list_base + k.tree_exact_table, k));
    let mut spent = k.list_base;
    let mut last = &service.routes[..0];
    for segment in &layout.segments {
        match segment {
            // A predicate is the matcher a route would test; unmeasured in trees, so the route's figure.
            Segment::Predicates { routes, .. } => {
                let routes = service.routes.get(routes.clone()).unwrap_or_default();
                spent += routes.iter().flat_map(|r| &r.matches).map(|and| route_cost(and, k)).sum::<f64>();
            }
            Segment::Table(t) => {
                spent += match t.kind {
                    TableKind::Exact => k.tree_exact_table,
                    TableKind::Prefix => k.tree_prefix_table,
                }
            }
            Segment::List { routes, .. } => last = service.routes.get(routes.clone()).unwrap_or_default(),
        }
    }
    Some(walk(last, spent, k).max(guarded.unwrap_or(0.0)))
}

/// One Envoy route (an AND of matchers): each matcher tried, in the worst case all of them. An empty AND (an
/// unconditional route) costs an exact test's route: the route overhead is in every coefficient.
fn route_cost(and: &[Atom], k: &Coefficients) -> f64 {
    if and.is_empty() {
        return k.list_exact;
    }
    and.iter()
        .map(|atom| match atom {
            Atom::Cookie { .. } => k.list_cookie,
            Atom::Header { test: HeaderTest::Prefix(_), .. } => k.list_prefix,
            Atom::Header { test: HeaderTest::Contains(_) | HeaderTest::ContainsAny(_), .. } => k.list_contains,
            Atom::Header { test: HeaderTest::Regex { .. }, .. } => k.list_regex,
            // Exact, present, host (an RE2 full match on a short value): the exact test's figure, unmeasured.
            Atom::Header { .. } | Atom::Source { .. } => k.list_exact,
        })
        .sum()
}

/// The filter's worst case for `service` (of `policy`, built from `config`): every step of its evaluation plan
/// tried (indexes, rules one by one), then the most expensive action.
pub fn filter(policy: &Policy, config: &Config, service: &str, k: &Coefficients) -> f64 {
    let id = policy.service_or_global(service);
    let plan = policy.evaluation_plan(id);
    let mut cost = k.filter_base;
    let mut sticky = false;
    for rule in plan.rules.iter().filter_map(|&r| policy.config_rule(config, r)) {
        cost += if rule.when.as_ref().is_some_and(has_regex) { k.filter_regex } else { k.filter_rule };
        sticky |= is_sticky(rule);
    }
    // Indexed rules route (a split is never indexed: it has no condition to index on), so only a plain rule can
    // be a sticky split.
    if sticky {
        cost += k.filter_sticky_split;
    }
    cost
}

fn is_sticky(rule: &Rule) -> bool {
    matches!(&rule.then, Action::Split(split) if split.by.is_some())
}

/// Whether the condition runs a regex in the filter (a `~` with regex operators; literal ones are substring
/// searches).
fn has_regex(cond: &Cond) -> bool {
    match cond {
        Cond::All(cs) | Cond::Any(cs) => cs.iter().any(has_regex),
        Cond::Not(c) => has_regex(c),
        Cond::Header { test: Test::Regex(pattern), .. } => literal_alternatives(pattern).is_none(),
        _ => false,
    }
}

/// The cheapest of `candidates` (the exact forms of one service); the filter when it is alone. Ties go to the
/// earlier form in [`Form`]'s order (native first: no module to load).
pub fn cheapest(candidates: &[Estimate]) -> Option<Estimate> {
    candidates.iter().copied().min_by(|a, b| a.instructions.total_cmp(&b.instructions).then(a.form.cmp(&b.form)))
}

/// The estimates of a service's exact forms: the filter always; the route list when `native` lowered, and the
/// matcher tree when its layout has one.
pub fn estimates(
    policy: &Policy,
    config: &Config,
    service: &str,
    protocol: Protocol,
    native: Option<&NativeService>,
    k: &Coefficients,
) -> Vec<Estimate> {
    let mut out = Vec::new();
    if protocol == Protocol::Tcp {
        // A connection is decided once, by `source` constants or a split: no per-request route walk to weigh.
        return out;
    }
    if let Some(native) = native {
        out.push(Estimate { form: Form::List, instructions: list(native, k) });
        if let Some(instructions) = tree(native, &native.layout, k) {
            out.push(Estimate { form: Form::Tree, instructions });
        }
    }
    out.push(Estimate { form: Form::Filter, instructions: filter(policy, config, service, k) });
    out
}

/// `1234567.0` as `1,235k`: the figure `auto` prints.
pub fn kilo(instructions: f64) -> String {
    let k = (instructions / 1000.0).round() as u64;
    let digits = k.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out + "k"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{lower_service, EnvoyVersion, TableForm, Target};

    fn policy_of(rules: &[String]) -> canary_compiler::Compiled {
        let src = format!("service svc {{\n{}\n  default v1\n}}\n", rules.join("\n"));
        canary_compiler::compile(&src, "t.canary").unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn tenants(n: usize, rule: impl Fn(usize) -> String) -> Vec<String> {
        (0..n).map(rule).collect()
    }

    /// The estimates for service `svc`, its tables written as `tables` says.
    fn estimates_with(c: &canary_compiler::Compiled, tables: TableForm) -> Vec<Estimate> {
        let target = Target { tables, ..Target::envoy(EnvoyVersion::LATEST) };
        let native = lower_service(&c.config, &c.spans, "svc", Protocol::Http, &target);
        let policy = Policy::new(&c.config).unwrap();
        estimates(&policy, &c.config, "svc", Protocol::Http, native.as_ref().ok(), &CALIBRATED)
    }

    fn estimates_for(c: &canary_compiler::Compiled) -> Vec<Estimate> {
        estimates_with(c, TableForm::DEFAULT)
    }

    fn of(estimates: &[Estimate], form: Form) -> f64 {
        estimates.iter().find(|e| e.form == form).map(|e| e.instructions).unwrap()
    }

    #[test]
    fn the_constants_are_the_fit_in_bench_results() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/results/cost-model.json");
        let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let k = &model["coefficients"];
        let c = CALIBRATED;
        let ours = [
            ("list_base", c.list_base),
            ("list_exact", c.list_exact),
            ("list_prefix", c.list_prefix),
            ("list_cookie", c.list_cookie),
            ("list_contains", c.list_contains),
            ("list_sticky_split", c.list_sticky_split),
            ("list_regex", c.list_regex),
            ("tree_exact_table", c.tree_exact_table),
            ("tree_prefix_table", c.tree_prefix_table),
            ("filter_base", c.filter_base),
            ("filter_rule", c.filter_rule),
            ("filter_regex", c.filter_regex),
            ("filter_sticky_split", c.filter_sticky_split),
        ];
        for (name, value) in ours {
            let fitted = k[name].as_f64().unwrap_or_else(|| panic!("{name} missing from {path}"));
            assert!((fitted - value).abs() < 0.05, "{name}: cost.rs has {value}, the fit {fitted}");
        }
    }

    #[test]
    fn a_short_table_stays_a_list_and_a_long_one_becomes_a_tree_or_the_filter() {
        let exact = |n| policy_of(&tenants(n, |i| format!("  header x-tenant = \"tenant-{i:05}\" -> v2")));
        let short = estimates_with(&exact(10), TableForm::List);
        assert_eq!(cheapest(&short).unwrap().form, Form::List, "{short:?}");
        let long = estimates_with(&exact(10_000), TableForm::List);
        assert_eq!(cheapest(&long).unwrap().form, Form::Filter, "{long:?}");
        // The filter's table is one lookup whatever its length; the list walks every route.
        assert_eq!(of(&short, Form::Filter), of(&long, Form::Filter));
        let per_route = (of(&long, Form::List) - of(&short, Form::List)) / 9_990.0;
        assert!((per_route - CALIBRATED.list_exact).abs() < 1e-6, "{per_route}");
        // A tree on a header is one map lookup past its guard, but any client can send the header twice and be
        // walked through the whole list: its worst case is the list's, and the filter stays the pick.
        let long = estimates_for(&exact(10_000));
        assert_eq!(cheapest(&long).unwrap().form, Form::Filter, "{long:?}");
        let guarded = of(&long, Form::List) + CALIBRATED.tree_exact_table;
        assert!((of(&long, Form::Tree) - guarded).abs() < 1e-6, "{long:?}");
        // On `:path` (never repeated, no guard) the tree is flat and cheaper than both.
        let prefix = |n| policy_of(&tenants(n, |i| format!("  path \"/t{i:05}/\" -> v2")));
        let long = estimates_for(&prefix(10_000));
        assert_eq!(cheapest(&long).unwrap().form, Form::Tree, "{long:?}");
        assert_eq!(of(&long, Form::Tree), of(&estimates_for(&prefix(100)), Form::Tree));
        let cookies = estimates_for(&policy_of(&tenants(10_000, |i| format!("  cookie t=t{i} -> v2"))));
        assert!(cookies.iter().all(|e| e.form != Form::Tree), "a cookie has no matcher input: {cookies:?}");
        assert_eq!(cheapest(&cookies).unwrap().form, Form::Filter, "{cookies:?}");
    }

    #[test]
    fn in_lists_join_the_filters_index_and_regexes_are_tried_rule_by_rule() {
        let ins = policy_of(&tenants(100, |i| format!("  header x in [\"a{i}\", \"b{i}\"] -> v2")));
        let policy = Policy::new(&ins.config).unwrap();
        let plan = policy.evaluation_plan(policy.service("svc").unwrap());
        assert_eq!((plan.rules.len(), plan.indexes), (0, 1));
        let e = estimates_for(&ins);
        assert_eq!(of(&e, Form::Filter), CALIBRATED.filter_base);
        // Two routes per rule natively.
        assert!((of(&e, Form::List) - CALIBRATED.list_base - 200.0 * CALIBRATED.list_exact).abs() < 1e-6);
        let regexes = policy_of(&tenants(20, |i| format!("  header x ~ \"^t{i}[0-9]$\" -> v2")));
        let e = estimates_for(&regexes);
        let expected = CALIBRATED.filter_base + 20.0 * CALIBRATED.filter_regex;
        assert!((of(&e, Form::Filter) - expected).abs() < 1e-6);
        // They lower to RE2, each route an RE2 full match.
        assert!((of(&e, Form::List) - CALIBRATED.list_base - 20.0 * CALIBRATED.list_regex).abs() < 1e-6, "{e:?}");
    }

    #[test]
    fn the_worst_case_is_the_dearest_deciding_position() {
        let mut rules = tenants(10, |i| format!("  header x-tenant = \"t{i}\" -> v2"));
        rules.push("  50% v2 by header x-user".into());
        let c = policy_of(&rules);
        let e = estimates_for(&c);
        // The split is unconditional: the default is never reached; the split after ten exact routes is.
        let split = CALIBRATED.list_base + 11.0 * CALIBRATED.list_exact + CALIBRATED.list_sticky_split;
        assert!((of(&e, Form::List) - split).abs() < 1e-6, "{e:?}");
        let policy = Policy::new(&c.config).unwrap();
        let plan = policy.evaluation_plan(policy.service("svc").unwrap());
        assert_eq!((plan.rules.len(), plan.indexes), (1, 1));
        let filter = CALIBRATED.filter_base + CALIBRATED.filter_rule + CALIBRATED.filter_sticky_split;
        assert!((of(&e, Form::Filter) - filter).abs() < 1e-6);
    }

    #[test]
    fn tcp_services_have_no_per_request_estimate() {
        let c = canary_compiler::compile("service t tcp {\n  20% v2\n  default v1\n}\n", "t.canary").unwrap();
        let policy = Policy::new(&c.config).unwrap();
        assert!(estimates(&policy, &c.config, "t", Protocol::Tcp, None, &CALIBRATED).is_empty());
        assert_eq!(cheapest(&[]), None);
    }

    #[test]
    fn figures_print_in_thousands() {
        assert_eq!(kilo(206_149.0), "206k");
        assert_eq!(kilo(6_391_400.0), "6,391k");
        assert_eq!(kilo(12_345_678.0), "12,346k");
        assert_eq!(kilo(400.0), "0k");
    }
}
