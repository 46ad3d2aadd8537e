//! A service's [`Layout`] written as a virtual host's generic matcher (`xds.type.matcher.v3.Matcher`): the
//! guard, then the segments chained by `on_no_match`, the last a `RouteList` ending in the default route. Why
//! each piece decides as the list form does is in [`crate::native::tables`]; this module only spells it.

use serde_json::{json, Value};

use super::{contains_any_regex, host_regex};
use crate::native::tables::{Pred, Segment, TableKind, Value as Match};
use crate::native::{tables, NativeService};

const HEADER_INPUT: &str = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput";
const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.Route";
const ROUTE_LIST: &str = "type.googleapis.com/envoy.config.route.v3.RouteList";

/// The matcher for `service` (whose layout is not a plain list), from its list-form routes: `rules[i]` are
/// route `i`'s alternatives, `default` the default route.
pub(super) fn matcher(service: &NativeService, rules: &[Vec<Value>], default: &Value) -> Value {
    let list = |range: std::ops::Range<usize>| -> Value {
        let mut routes: Vec<Value> = rules.get(range).unwrap_or_default().iter().flatten().cloned().collect();
        routes.push(default.clone());
        action("routes", ROUTE_LIST, json!({ "routes": routes }))
    };
    // Built from the end: each segment's `on_no_match` is the matcher after it.
    let mut next = json!({ "action": Value::Null });
    for segment in service.layout.segments.iter().rev() {
        let matcher = match segment {
            Segment::List { routes, .. } => {
                next = json!({ "action": list(routes.clone())["action"].clone() });
                continue;
            }
            Segment::Table(table) => {
                let map: serde_json::Map<String, Value> = table
                    .entries
                    .iter()
                    .map(|(key, route)| (key.clone(), json!({ "action": decided(service, rules, *route) })))
                    .collect();
                let kind = match table.kind {
                    TableKind::Exact => "exact_match_map",
                    TableKind::Prefix => "prefix_match_map",
                };
                json!({ "matcher_tree": { "input": input(&table.header), kind: { "map": map } } })
            }
            Segment::Predicates { routes, .. } => {
                let mut matchers = Vec::new();
                for index in routes.clone() {
                    let Some(route) = service.routes.get(index) else { continue };
                    for and in &route.matches {
                        let preds: Vec<Pred> = and.iter().filter_map(tables::predicate).collect();
                        let pred = match preds.len() {
                            1 => preds.into_iter().next().unwrap_or(Pred::And(Vec::new())),
                            _ => Pred::And(preds),
                        };
                        matchers.push(json!({
                            "predicate": predicate(&pred),
                            "on_match": { "action": decided(service, rules, index) },
                        }));
                    }
                }
                json!({ "matcher_list": { "matchers": matchers } })
            }
        };
        let mut matcher = matcher;
        matcher["on_no_match"] = next;
        next = json!({ "matcher": matcher });
    }
    let chain = next["matcher"].take();
    match service.layout.guard_predicate() {
        None => chain,
        Some(guard) => json!({
            "matcher_list": { "matchers": [{
                "predicate": predicate(&guard),
                "on_match": list(0..rules.len()),
            }] },
            "on_no_match": { "matcher": chain },
        }),
    }
}

/// The action of route `index` decided by a matcher: its first list-form route, matching every request (Envoy
/// still evaluates a `Route` action's own `match`).
fn decided(service: &NativeService, rules: &[Vec<Value>], index: usize) -> Value {
    let mut route = rules.get(index).and_then(|alts| alts.first()).cloned().unwrap_or(Value::Null);
    route["match"] = json!({ "prefix": "/" });
    if let Some(r) = service.routes.get(index) {
        // One route for the rule, whichever alternative led here.
        route["name"] = json!(format!("{}-line{}", service.name, r.line));
    }
    action("route", ROUTE, route)["action"].take()
}

/// `{ "action": TypedExtensionConfig }` with `body` as the typed config's fields.
fn action(name: &str, r#type: &str, body: Value) -> Value {
    let mut typed = json!({ "@type": r#type });
    if let (Some(t), Some(b)) = (typed.as_object_mut(), body.as_object()) {
        t.extend(b.clone());
    }
    json!({ "action": { "name": name, "typed_config": typed } })
}

fn input(header: &str) -> Value {
    json!({ "name": "header", "typed_config": { "@type": HEADER_INPUT, "header_name": header } })
}

fn predicate(pred: &Pred) -> Value {
    match pred {
        Pred::Single { header, value } => json!({ "single_predicate": {
            "input": input(header),
            "value_match": string_matcher(value),
        } }),
        Pred::Not(inner) => json!({ "not_matcher": predicate(inner) }),
        Pred::And(all) => json!({ "and_matcher": { "predicate": all.iter().map(predicate).collect::<Vec<_>>() } }),
        Pred::Or(any) => json!({ "or_matcher": { "predicate": any.iter().map(predicate).collect::<Vec<_>>() } }),
    }
}

/// An `xds.type.matcher.v3.StringMatcher`: unlike Envoy's own, its `RegexMatcher` requires the engine
/// (`google_re2`, the only one).
fn string_matcher(value: &Match) -> Value {
    let re2 = |regex: String| json!({ "safe_regex": { "google_re2": {}, "regex": regex } });
    match value {
        Match::Exact(v) => json!({ "exact": v }),
        Match::Prefix(v) => json!({ "prefix": v }),
        Match::Contains(v) => json!({ "contains": v }),
        Match::Any => re2("(?s).*".into()),
        Match::Host(h) => re2(host_regex(h)),
        Match::ContainsAny(all) => re2(contains_any_regex(all)),
        Match::Regex(regex) => re2(regex.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{http_route_table, RouteTable};
    use crate::native::{lower_service, EnvoyVersion, TableForm, Target};
    use crate::route_settings::{Mirror, ServiceRoutes};
    use canary_eval::config::Protocol;
    use canary_settings::{Duration, RouteSettings};
    use serde_json::Value;

    const SRC: &str = "service f {\n  header x = \"a\" -> v2\n  header x in [\"b\", \"c\"] -> v3\n  \
                       header x = \"d\": 30% v2 by header u\n  header x = \"e\" -> v2\n  default v1\n}\n";

    fn timeout(ms: u64) -> RouteSettings {
        RouteSettings { timeout: Some(Duration(ms)), ..RouteSettings::default() }
    }

    /// The tree's actions are the list form's routes: cluster, sticky split, the rule's profile, the mirror.
    #[test]
    fn table_actions_carry_splits_settings_and_the_mirror() {
        let c = canary_compiler::compile(SRC, "t.canary").unwrap_or_else(|d| panic!("{d:?}"));
        let target = Target { tables: TableForm::DEFAULT, ..Target::envoy(EnvoyVersion::LATEST) };
        let native = lower_service(&c.config, &c.spans, "f", Protocol::Http, &target).unwrap();
        let second = native.routes[1].span;
        let settings = ServiceRoutes {
            all: RouteSettings { mirror: Some(Mirror { basis_points: 100, subset: "v3".into() }), ..timeout(500) },
            by_rule: [(second.start, timeout(2000))].into(),
        };
        let cluster = |s: Option<&str>| format!("c-{}", s.unwrap_or("v1"));
        let mirror = |s: &str| format!("c-{s}");
        let RouteTable::Matcher(m) = http_route_table(&native, &cluster, &settings, &mirror).unwrap() else {
            panic!("a table of 5 entries is a tree")
        };
        // guard: `x` sent twice → the whole list, the default last
        let guard = &m["matcher_list"]["matchers"][0];
        assert_eq!(guard["predicate"]["single_predicate"]["value_match"]["contains"], ",");
        let list = guard["on_match"]["action"]["typed_config"]["routes"].as_array().unwrap();
        assert_eq!(list.len(), 6);
        assert_eq!(list[5]["name"], "f-default");
        let chain = &m["on_no_match"]["matcher"];
        let map = &chain["matcher_tree"]["exact_match_map"]["map"];
        let route = |key: &str| -> &Value { &map[key]["action"]["typed_config"] };
        assert_eq!(map.as_object().unwrap().len(), 5);
        assert_eq!(route("a")["route"]["cluster"], "c-v2");
        assert_eq!(route("a")["match"], serde_json::json!({ "prefix": "/" }));
        assert_eq!(route("a")["route"]["timeout"], "0.5s");
        assert_eq!(route("c")["route"]["timeout"], "2s", "the rule's profile");
        assert_eq!(route("c")["name"], "f-line3");
        assert!(route("e")["route"]["request_mirror_policies"][0]["cluster"] == "c-v3");
        let split = &route("d")["route"];
        assert_eq!(split["hash_policy"][0]["header"]["header_name"], "u");
        assert_eq!(split["weighted_clusters"]["use_hash_policy"], true);
        assert_eq!(split["weighted_clusters"]["clusters"][0]["weight"], 3000);
        // the end of the chain: the default alone
        let tail = &chain["on_no_match"]["action"]["typed_config"];
        assert_eq!(tail["@type"], "type.googleapis.com/envoy.config.route.v3.RouteList");
        assert_eq!(tail["routes"].as_array().unwrap().len(), 1);
        assert_eq!(tail["routes"][0]["route"]["timeout"], "0.5s");
    }
}
