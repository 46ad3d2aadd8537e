//! `--backend native|auto` for Istio: a service's [`NativeService`] written as the VirtualService routes an
//! operator writes by hand (the lab's form) — one route per rule named `rule-LINE`, its alternatives as the
//! `match` list (OR), each alternative's matchers as one match block (AND) — then `default`.
//!
//! Istio translates these fields one to one into the Envoy matchers the Envoy backend writes and
//! `tests/tests/envoy_native.rs` checks (pilot `route.go`, `TranslateRouteMatch`): `headers` is a matcher as
//! written (`{}` = present), `withoutHeaders` adds `invert_match` and, except for presence,
//! `treat_missing_header_as_empty` — exactly the envoy backend's rendering of an inverted [`Atom::Header`]; `uri`
//! is a `:path` prefix route match, `method` and `authority` are matchers on `:method` and `:authority`, and
//! `sourceLabels` keeps the route only in proxies whose labels match. A VirtualService has no `contains`, so a
//! literal becomes the RE2 full match `.*LITERAL.*` (Envoy's RE2 matches `.` against any byte, invalid UTF-8
//! included — checked in Envoy 1.40); Istio raises RE2's program-size cap to 32768.

use std::collections::BTreeMap;

use serde::Serialize;

use super::mesh::MeshService;
use super::routes::{settings_fields, Destination, PortSelector, RouteDestination};
use crate::manifest::envoy_routes::{contains_any_regex, host_regex, re2_escape};
use crate::native::istio::{slot, Slot};
use crate::native::{Atom, HeaderTest, NativeAction, NativeService};
use crate::route_settings::ServiceRoutes;

#[derive(Debug, Serialize)]
pub(crate) struct NativeHttpRoute {
    name: String,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    matches: Vec<MatchBlock>,
    route: Vec<RouteDestination>,
    /// Route settings and the mirror (`HTTPRoute` fields), empty without them.
    #[serde(flatten)]
    settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct MatchBlock {
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<StringMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<StringMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authority: Option<StringMatch>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, StringMatch>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    without_headers: BTreeMap<String, StringMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    source_labels: BTreeMap<String, String>,
}

/// Istio's `StringMatch`; all fields empty is `{}`, presence.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
struct StringMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct NativeTcpRoute {
    #[serde(rename = "match")]
    matches: Vec<MatchBlock>,
    route: Vec<RouteDestination>,
}

fn block(and: &[Atom]) -> MatchBlock {
    let mut out = MatchBlock::default();
    for atom in and {
        match atom {
            Atom::Header { test, .. } => {
                let m = string_match(test);
                match slot(atom) {
                    Slot::Uri => out.uri = Some(m),
                    Slot::Method => out.method = Some(m),
                    Slot::Authority => out.authority = Some(m),
                    Slot::WithoutHeader(name) => {
                        out.without_headers.insert(name.to_string(), m);
                    }
                    _ => {
                        if let Atom::Header { name, .. } = atom {
                            out.headers.insert(name.clone(), m);
                        }
                    }
                }
            }
            Atom::Source { label, value } => {
                out.source_labels.insert(label.clone(), value.clone());
            }
            Atom::Cookie { .. } => {}
        }
    }
    out
}

fn string_match(test: &HeaderTest) -> StringMatch {
    let regex = |r: String| StringMatch { regex: Some(r), ..StringMatch::default() };
    match test {
        HeaderTest::Exact(v) => StringMatch { exact: Some(v.clone()), ..StringMatch::default() },
        // Istio refuses an empty prefix on a header; `.*` is the same test.
        HeaderTest::Prefix(p) if p.is_empty() => regex(".*".into()),
        HeaderTest::Prefix(p) => StringMatch { prefix: Some(p.clone()), ..StringMatch::default() },
        HeaderTest::Contains(v) => regex(format!(".*{}.*", re2_escape(v))),
        HeaderTest::Present => StringMatch::default(),
        HeaderTest::Host(h) => regex(host_regex(h)),
        HeaderTest::ContainsAny(all) => regex(contains_any_regex(all)),
        HeaderTest::Regex { re2, .. } => regex(re2.clone()),
    }
}

/// The weights as Istio writes them: whole percents when every share is one (the lab's form, accepted by
/// every Istio), else the 0.01% steps themselves (relative weights: Istio ≥ 1.15 no longer needs a sum of
/// 100). The bool says whether the second form was needed.
fn weights(shares: &[(Option<String>, u32)]) -> (Vec<(Option<String>, u32)>, bool) {
    if shares.iter().all(|(_, w)| w % 100 == 0) {
        (shares.iter().map(|(s, w)| (s.clone(), w / 100)).collect(), false)
    } else {
        (shares.to_vec(), true)
    }
}

/// The service's HTTP routes. `destination` names a subset's destination (`None`: the mesh fallback).
/// Returns a note when the weights needed relative (non-percent) form.
pub(crate) fn http_routes(
    native: &NativeService,
    service: &MeshService,
    destination: &dyn Fn(&str) -> Destination,
    settings: &ServiceRoutes,
) -> Result<(Vec<NativeHttpRoute>, Option<String>), String> {
    let mut note = None;
    let mut routes = Vec::new();
    for r in &native.routes {
        let always = r.matches.iter().any(Vec::is_empty);
        let matches: Vec<MatchBlock> =
            if always { Vec::new() } else { r.matches.iter().map(|and| block(and)).collect() };
        let (route, relative) = action(&r.action, service, destination, None);
        if relative {
            note = Some(relative_note(&service.name));
        }
        let own = settings.for_rule(r.span);
        if own.rewrite.as_ref().is_some_and(|rw| rw.uri.is_some()) && matches.iter().any(|m| m.uri.is_some()) {
            // istiod's prefix_rewrite replaces the route's matched prefix: here the rule's `path`, while the
            // Envoy backend (which matches paths with header matchers) and the filter's routes replace `/`.
            return Err(format!(
                "service `{}`, rule on line {}: `rewrite.uri` on a route matching `uri` would replace the matched \
                 prefix in Istio but `/` on every other backend; select a profile without `rewrite.uri` for this \
                 rule, or use --backend filter",
                service.name, r.line
            ));
        }
        let fields = settings_fields(own, destination);
        routes.push(NativeHttpRoute { name: format!("rule-{}", r.line), matches, route, settings: fields });
    }
    let default = native.default.clone().unwrap_or_else(|| service.fallback.clone());
    routes.push(NativeHttpRoute {
        name: "default".into(),
        matches: Vec::new(),
        route: vec![RouteDestination { destination: destination(&default), weight: None }],
        settings: settings_fields(&settings.all, destination),
    });
    Ok((routes, note))
}

/// The service's TCP routes on its port: the rules whose `sourceLabels` hold on a proxy, in order, then the
/// default — Istio keeps the first that applies to a proxy's outbound listener.
pub(crate) fn tcp_routes(
    native: &NativeService,
    service: &MeshService,
    destination: &dyn Fn(&str) -> Destination,
) -> (Vec<NativeTcpRoute>, Option<String>) {
    let port = service.port;
    let mut note = None;
    let mut routes = Vec::new();
    let mut always = false;
    for r in &native.routes {
        always = r.matches.iter().any(Vec::is_empty);
        let matches = if always {
            vec![MatchBlock { port, ..MatchBlock::default() }]
        } else {
            r.matches.iter().map(|and| MatchBlock { port, ..block(and) }).collect()
        };
        let (route, relative) = action(&r.action, service, destination, port);
        if relative {
            note = Some(relative_note(&service.name));
        }
        routes.push(NativeTcpRoute { matches, route });
        if always {
            break;
        }
    }
    if !always {
        let default = native.default.clone().unwrap_or_else(|| service.fallback.clone());
        let route = vec![RouteDestination { destination: destination(&default), weight: None }];
        routes.push(NativeTcpRoute { matches: vec![MatchBlock { port, ..MatchBlock::default() }], route });
    }
    (routes, note)
}

fn relative_note(service: &str) -> String {
    format!(
        "`{service}`: a share is not a whole percent, so its VirtualService weights are written in 0.01% steps \
         (they sum to 10000; Istio accepts that from 1.15)"
    )
}

fn action(
    action: &NativeAction,
    service: &MeshService,
    destination: &dyn Fn(&str) -> Destination,
    port: Option<u16>,
) -> (Vec<RouteDestination>, bool) {
    let at = |subset: &str| {
        let mut d = destination(subset);
        if port.is_some() {
            d.port = port.map(|number| PortSelector { number });
        }
        d
    };
    match action {
        NativeAction::Subset(s) => (vec![RouteDestination { destination: at(s), weight: None }], false),
        // The planner refuses sticky splits for Istio: `by` is always `None` here.
        NativeAction::Split { weights: shares, .. } => {
            let (w, relative) = weights(shares);
            let route = w
                .into_iter()
                .map(|(s, weight)| RouteDestination {
                    destination: at(s.as_deref().unwrap_or(&service.fallback)),
                    weight: Some(weight),
                })
                .collect();
            (route, relative)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, test: HeaderTest, invert: bool) -> Atom {
        Atom::Header { name: name.into(), test, invert }
    }

    #[test]
    fn a_literal_is_searched_with_a_full_match() {
        assert_eq!(string_match(&HeaderTest::Contains("a.b".into())).regex.unwrap(), ".*a\\.b.*");
    }

    #[test]
    fn matchers_take_their_fields() {
        let and = vec![
            h(":path", HeaderTest::Prefix("/api".into()), false),
            h(":method", HeaderTest::Exact("GET".into()), false),
            h("x", HeaderTest::Present, false),
            h("x", HeaderTest::Exact("a".into()), true),
            Atom::Source { label: "version".into(), value: "v2".into() },
        ];
        let b = block(&and);
        assert_eq!(b.uri.unwrap().prefix.as_deref(), Some("/api"));
        assert_eq!(b.method.unwrap().exact.as_deref(), Some("GET"));
        assert_eq!(b.headers["x"], StringMatch::default());
        assert_eq!(b.without_headers["x"].exact.as_deref(), Some("a"));
        assert_eq!(b.source_labels["version"], "v2");
    }

    #[test]
    fn weights_are_percent_when_they_can_be() {
        let w = |v: &[u32]| v.iter().map(|w| (Some(format!("v{w}")), *w)).collect::<Vec<_>>();
        assert_eq!(weights(&w(&[2000, 8000])).0.iter().map(|x| x.1).collect::<Vec<_>>(), [20, 80]);
        let (fine, relative) = weights(&w(&[1250, 8750]));
        assert!(relative);
        assert_eq!(fine.iter().map(|x| x.1).collect::<Vec<_>>(), [1250, 8750]);
    }
}
